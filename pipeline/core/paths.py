"""Where every stage reads and writes, relative to the project root.

One grid *cell* is ``(task, model, seed)``; its outputs live in per-seed folders::

    models/<task>/<model>/seed<k>/       packaged model (model.pt, model.json, history.csv)
    metrics/<task>/<model>/seed<k>/      eval.json, predictions.parquet, robustness.*
    metrics/probes/<dataset>/<rep>/seed<k>/  probe.json, scores.npz (musicrep probe)
    .checkpoints/<task>/<model>/seed<k>/ resumable training state
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

REPORT_STAMP = "cells.json"
"""The report stage's declared output (``reports/cells.json``): the grid's cells and their test metrics.

The page itself names its MLflow runs, timings and build time, so a hash of it in ``dvc.lock``
would dirty git after every rebuild; this file holds only what the tracked ``eval.json`` files
hold, so its hash is the same on every machine. Declared uncached (``reports/`` is git-ignored)
and ``persist`` (which keeps it out of DVC's run cache): where it is missing (a fresh clone,
``rm -rf reports``, a ``dvc pull``) DVC runs the report stage, whatever ``dvc.lock`` says."""


def seed_dir(seed: int) -> str:
    """Folder name of one training seed (``seed0``, ``seed1``, ...)."""
    return f"seed{int(seed)}"


def probe_slug(task_model: str, random_init: bool = False) -> str:
    """Folder name of a probed representation: ``TASK__MODEL`` (``__random-init`` for the baseline)."""
    base = re.sub(r"[^A-Za-z0-9_.+-]+", "__", task_model)
    return base + ("__random-init" if random_init else "")


@dataclass(frozen=True)
class Layout:
    """File layout of one project directory.

    Args:
        root: the project root (where ``params.yaml`` and ``dvc.yaml`` live); always given, never the
            current directory by default (``pipeline.config.project.find_root`` finds it for a command).
    """

    root: Path

    def raw(self, dataset: str) -> Path:
        return self.root / "data" / "raw" / dataset

    def segments(self, dataset: str) -> Path:
        return self.root / "data" / "segments" / dataset

    def features(self, dataset: str) -> Path:
        return self.root / "data" / "features" / dataset

    def model(self, task: str, model: str, seed: int = 0) -> Path:
        """Packaged model of one cell: ``models/<task>/<model>/seed<k>``."""
        return self.root / "models" / task / model / seed_dir(seed)

    def metrics(self, task: str, model: str, seed: int = 0) -> Path:
        """Metrics of one cell: ``metrics/<task>/<model>/seed<k>``."""
        return self.root / "metrics" / task / model / seed_dir(seed)

    def task_summary(self, task: str) -> Path:
        """The task's summary metrics (:mod:`pipeline.evaluation.task_summary`): ``metrics/<task>.json``."""
        return self.root / "metrics" / f"{task}.json"

    def checkpoints(self, task: str, model: str, seed: int = 0) -> Path:
        """Resumable training state of one cell (ignored by git and DVC)."""
        return self.root / ".checkpoints" / task / model / seed_dir(seed)

    def probe(self, dataset: str, slug: str, seed: int = 0) -> Path:
        """One probe's results: ``metrics/probes/<dataset>/<representation slug>/seed<k>``."""
        return self.root / "metrics" / "probes" / dataset / slug / seed_dir(seed)

    def reports(self) -> Path:
        return self.root / "reports"
