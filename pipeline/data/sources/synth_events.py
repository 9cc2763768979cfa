"""Embedded synthetic dataset `synth_events` (events, multilabel); see :mod:`pipeline.data.synth`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline.data.sources._synthetic import SyntheticSource

if TYPE_CHECKING:
    from pipeline.config.params import Params


def make_source(params: Params | None = None) -> SyntheticSource:
    seconds = params.datasets.synth_events.clip_seconds if params is not None else 4.0
    return SyntheticSource(name="synth_events", kind="multilabel", task="events", clip_seconds=seconds)
