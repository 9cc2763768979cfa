"""Embedded rendered-music dataset `corpus_tags` (tagging, multilabel); see :mod:`pipeline.data.rendered`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline.data.sources._synthetic import RenderedSource

if TYPE_CHECKING:
    from pipeline.config.params import Params


def make_source(params: Params | None = None) -> RenderedSource:
    seconds = params.datasets.corpus_tags.clip_seconds if params is not None else 3.0
    return RenderedSource(name="corpus_tags", kind="multilabel", task="tagging", clip_seconds=seconds)
