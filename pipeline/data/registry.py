"""Dataset registry: every dataset (synthetic or real) is a :class:`DatasetSource`.

A source knows how to *fetch* its raw files into ``data/raw/<name>/`` (download, extract,
or generate) and how to *catalog* them: a table of clips with their split and labels that
the ``segment`` stage turns into waveform shards. Sources live one per module in
:mod:`pipeline.data.sources`, each exposing ``SOURCE``; the registry finds them by name.

Catalog contract (``Catalog.clips`` columns):

========== ======= ==========================================================
clip_id    str     unique id
path       str     audio file, absolute or relative to the raw directory
split      str     ``train`` | ``val`` | ``test``
labels     list    class names (one for single-label tasks)
start_s    float   offset into the file in seconds (0 = start)
duration_s float   seconds to read (NaN = to the end of the file)
========== ======= ==========================================================
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

import pandas as pd

from pipeline.errors import UserError

if TYPE_CHECKING:
    from pipeline.config import Params

TaskKind = Literal["multilabel", "single"]
CATALOG_COLUMNS = ["clip_id", "path", "split", "labels", "start_s", "duration_s"]


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
    """

    clips: pd.DataFrame
    labels: list[str]
    expected: int | None = None
    missing: list[str] = field(default_factory=list)
    kind: TaskKind | None = None
    durations: dict[str, float] | None = None
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        absent = [c for c in CATALOG_COLUMNS if c not in self.clips.columns]
        if absent:
            raise ValueError(f"catalog lacks columns {absent}")


class DatasetSource(Protocol):
    """A dataset the pipeline can fetch and catalog."""

    name: str
    kind: TaskKind  # multilabel (sigmoid/BCE, ROC-AUC/PR-AUC) or single (softmax, accuracy)
    task: Literal["tagging", "keywords", "events"]
    clip_seconds: float  # nominal clip length; segment crops longer audio to this

    def fetch(self, raw_dir: Path, params: "Params") -> None:
        """Bring the raw files into ``raw_dir`` (idempotent, resumable)."""

    def catalog(self, raw_dir: Path, params: "Params") -> Catalog:
        """List the clips in ``raw_dir``; raise UserError naming what is missing."""


def available() -> list[str]:
    """Names of every registered dataset."""
    import pipeline.data.sources as pkg

    return sorted(m.name for m in pkgutil.iter_modules(pkg.__path__) if not m.name.startswith("_"))


def own_datasets(params: "Params | None") -> list[str]:
    """Names of the named own datasets in ``params`` (``datasets.<name>: {kind: folder}``)."""
    return sorted(params.datasets.own()) if params is not None else []


def get_source(name: str, params: "Params | None" = None) -> DatasetSource:
    """Return the source called ``name`` (configured from ``params`` where it needs it).

    ``name`` is a registered source (:func:`available`) or a named own dataset of ``params``,
    which is served by the folder source under its own name.
    """
    if name not in available():
        if name in own_datasets(params):
            from pipeline.data.sources.folder import make_source

            return make_source(params, name)
        own = own_datasets(params)
        raise UserError(f"unknown dataset {name!r}; available: {', '.join(available() + own)} "
                        f"(or add datasets.{name}: {{kind: folder, path: DIR}} to params.yaml for your own audio).")
    module = importlib.import_module(f"pipeline.data.sources.{name}")
    return module.make_source(params) if hasattr(module, "make_source") else module.SOURCE
