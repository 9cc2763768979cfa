"""What a dataset source hands the pipeline: the :class:`Catalog` of its clips and the
:class:`DatasetSource` protocol.

Kept apart from :mod:`pipeline.data.registry` so that the sources can import these types
while the registry imports the sources (one direction, no cycle).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal, Protocol

import pandas as pd

from pipeline.core.task_kinds import TaskKind

if TYPE_CHECKING:
    from pipeline.config.params import Params

CATALOG_COLUMNS = ["clip_id", "path", "split", "labels", "start_s", "duration_s"]
UNRECORDED = "not recorded (segments written by an older musicrep: re-run `musicrep segment`)"
SOURCE_KEYS = ("split_source", "vocabulary_source")


def data_sources(meta: dict) -> dict[str, str]:
    """``{"split_source": ..., "vocabulary_source": ...}`` of a segment's ``meta.json`` (:data:`UNRECORDED` if absent)."""
    return {key: str(meta.get(key) or UNRECORDED) for key in SOURCE_KEYS}


@dataclass
class Catalog:
    """What a raw dataset holds.

    Attributes:
        clips: one row per clip, columns :data:`CATALOG_COLUMNS`.
        labels: label vocabulary in model output order.
        expected: number of clips the publisher lists (``None`` if unknown); with
            ``len(clips)`` it gives the coverage recorded in the manifest.
        missing: ids of expected clips whose audio is absent.
        kind: task kind decided while cataloguing (own datasets infer it from the labels);
            ``None`` = the source's ``kind``.
        durations: seconds of every listed audio file (``path`` as in ``clips``), where known;
            ``segment`` reports the fraction of these seconds written to the shards.
        info: how the split was made etc. (``split_method``, group counts), copied into
            ``report.json`` and ``meta.json``.
        split_source: where the split comes from, in words (``"reference lists (sota-compatible)"``,
            ``"rule: ..."``); ``segment`` logs it and writes it to ``meta.json``, ``evaluate`` to ``eval.json``.
        vocabulary_source: where the label vocabulary and its order come from, in words (as ``split_source``).
    """

    clips: pd.DataFrame
    labels: list[str]
    expected: int | None = None
    missing: list[str] = field(default_factory=list)
    kind: TaskKind | None = None
    durations: dict[str, float] | None = None
    info: dict = field(default_factory=dict)
    split_source: str = UNRECORDED
    vocabulary_source: str = UNRECORDED

    def __post_init__(self) -> None:
        absent = [c for c in CATALOG_COLUMNS if c not in self.clips.columns]
        if absent:
            raise ValueError(f"catalog lacks columns {absent}")


@dataclass
class SourceInfo:
    """What every source states (:class:`DatasetSource`): the real and the generated sources extend it."""

    origin: ClassVar[str] = "real"
    name: str
    kind: TaskKind
    task: Literal["tagging", "keywords", "events"]
    clip_seconds: float


class DatasetSource(Protocol):
    """A dataset the pipeline can fetch and catalog."""

    origin: ClassVar[str]  # where the audio comes from, for the report: "real", "synthetic" (generated) or "rendered"
    name: str
    kind: TaskKind  # multilabel (sigmoid/BCE, ROC-AUC/PR-AUC) or single (softmax, accuracy)
    task: Literal["tagging", "keywords", "events"]
    clip_seconds: float  # nominal clip length; segment crops longer audio to this

    def fetch(self, raw_dir: Path, params: Params) -> None:
        """Bring the raw files into ``raw_dir`` (idempotent, resumable)."""

    def catalog(self, raw_dir: Path, params: Params) -> Catalog:
        """List the clips in ``raw_dir``; raise UserError naming what is missing."""
