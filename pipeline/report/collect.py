"""What the report knows about each grid cell: files under ``models/`` and ``metrics/``, and
the cell's MLflow run (one client, one runs query for the whole grid).

Nothing here draws or renders; :mod:`pipeline.report.render` formats what :func:`collect`
returns, :mod:`pipeline.report.build` writes the report.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from pipeline.core.errors import UserError
from pipeline.core.paths import Layout
from pipeline.core.task_kinds import METRIC_TITLES, MULTILABEL, PRIMARY_METRIC, TABLE_METRICS, kind_of
from pipeline.data.registry import data_origin
from pipeline.models.checkpoint import read_card, read_run_id
from pipeline.models.grid import cell_keys
from pipeline.robustness.stage import robustness_summary
from pipeline.tracking.runs import client, mlflow_errors
from pipeline.training.convergence import still_improving

if TYPE_CHECKING:
    from pipeline.config.params import Params

log = logging.getLogger(__name__)

NOT_RUN = "not run"
METRICS = {kind: [(f"test/{m}", METRIC_TITLES[m]) for m in names] for kind, names in TABLE_METRICS.items()}
"""The report's metric columns per task kind: (logged name, title)."""


ORIGINS = {
    "synthetic": "synthetic (generated)",
    "rendered": "rendered (real scores, soundfont audio)",
    "real": "real",
}
"""What the report says of a task's audio, by the source's ``origin``."""


def is_synthetic(task: str) -> bool:
    """The task's audio is not recordings (generated or rendered): its numbers test the pipeline, not the paper."""
    return data_origin(task) != "real"


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text()) if path.exists() else None
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable %s (%s)", path, exc)
        return None


@dataclass
class Entry:
    """Everything the report knows about one cell (task, model, seed) of the grid."""

    task: str
    model: str
    model_dir: Path
    seed: int = 0
    card: dict[str, Any] | None = None
    eval: dict[str, Any] | None = None
    history: pd.DataFrame | None = None
    robustness: pd.DataFrame | None = None
    run: dict[str, Any] = field(default_factory=dict)  # MLflow: tags, metrics
    registry_uri: str | None = None
    figures: list[tuple[str, Path]] = field(default_factory=list)  # (caption, png)
    notes: list[str] = field(default_factory=list)

    @property
    def trained(self) -> bool:
        return self.card is not None

    @property
    def kind(self) -> str | None:
        if self.card:
            return self.card.get("metadata", {}).get("kind") or (kind_of(bool(self.card["config"].get("multilabel"))))
        return None

    @property
    def run_id(self) -> str | None:
        return read_run_id(self.model_dir, self.card) or self.run.get("run_id")

    def metric(self, key: str) -> Any:
        if self.eval is not None and key in self.eval:
            return self.eval[key]
        return self.run.get("metrics", {}).get(key)

    @property
    def evaluated(self) -> bool:
        return self.eval is not None or any(k.startswith("test/") for k in self.run.get("metrics", {}))

    @property
    def n_params(self) -> Any:
        if self.eval and "params" in self.eval:
            return int(self.eval["params"])
        tag = self.run.get("tags", {}).get("n_params")
        return int(tag) if tag and str(tag).isdigit() else None

    @property
    def still_improving(self) -> bool:
        """The best validation epoch is among the last ones (:mod:`pipeline.training.convergence`):
        the card's ``still_improving``, or (older cards) its ``best_epoch`` against ``history.csv``."""

        meta = (self.card or {}).get("metadata", {})
        if "still_improving" in meta:
            return bool(meta["still_improving"])
        epochs = meta.get("epochs_run", len(self.history) if self.history is not None else None)
        return still_improving(meta.get("best_epoch"), epochs)

    @property
    def status(self) -> str:
        if not self.trained:
            return NOT_RUN
        return "evaluated" if self.evaluated else "trained"


# ----------------------------------------------------------------------------- MLflow
def mlflow_client(root: Path) -> Any:
    """The MLflow client of the project at ``root``, or None (with a warning) when the store cannot be opened."""
    try:
        return client(root)
    except mlflow_errors() as exc:
        log.warning("MLflow unavailable for the report (%s: %s)", type(exc).__name__, exc)
        return None


def _run_dict(run: Any) -> dict[str, Any]:
    return {"run_id": run.info.run_id, "tags": dict(run.data.tags), "metrics": dict(run.data.metrics), "status": run.info.status}


def mlflow_runs(c: Any, tasks: Sequence[str]) -> dict[tuple[str, str, int], dict[str, Any]]:
    """Latest run per (task, model, seed) from MLflow: ``{"run_id", "tags", "metrics"}``; empty on failure.

    One ``search_runs`` over the experiments of every task (one experiment per task, named
    after it), newest first (the latest run of a cell wins).
    """
    if c is None:
        return {}
    try:
        experiments = {}
        for task in tasks:
            exp = c.get_experiment_by_name(task)
            if exp is not None:
                experiments[exp.experiment_id] = task
        if not experiments:
            return {}
        out: dict[tuple[str, str, int], dict[str, Any]] = {}
        runs = c.search_runs(
            list(experiments), order_by=["attributes.start_time DESC"], max_results=min(2000 * len(experiments), 50_000)
        )
        for run in runs:
            model = run.data.tags.get("model", run.info.run_name)  # the run name adds the seed
            key = (experiments[run.info.experiment_id], model, int(run.data.tags.get("seed", 0) or 0))
            out.setdefault(key, _run_dict(run))
        return out
    except mlflow_errors() as exc:  # no store, locked DB...
        log.warning("MLflow runs unavailable for the report (%s: %s)", type(exc).__name__, exc)
        return {}


def run_by_id(c: Any, run_id: str) -> dict[str, Any]:
    if c is None:
        return {}
    try:
        return _run_dict(c.get_run(run_id))
    except mlflow_errors():  # deleted run, other store
        return {}


# ----------------------------------------------------------------------------- files
def collect(params: Params, layout: Layout, client: Any = None) -> list[Entry]:
    """One :class:`Entry` per cell (task, model, seed) of ``params.grid``, in grid order (``client``: MLflow, or None)."""

    runs = mlflow_runs(client, params.grid.tasks)
    entries = []
    for task, model, seed in cell_keys(params):
        e = Entry(task, model, layout.model(task, model, seed), seed)
        if (e.model_dir / "model.json").exists():
            try:
                e.card = read_card(e.model_dir)
            except UserError as exc:  # corrupt card
                e.notes.append(f"model card unreadable ({exc})")
        e.eval = read_json(layout.metrics(task, model, seed) / "eval.json")
        hist = e.model_dir / "history.csv"
        if hist.exists():
            try:
                e.history = pd.read_csv(hist)
            except (OSError, ValueError, pd.errors.EmptyDataError):
                e.history = None
        rob = layout.metrics(task, model, seed) / "robustness.parquet"
        if rob.exists():
            try:
                e.robustness = pd.read_parquet(rob)
            except (OSError, ValueError) as exc:  # pyarrow's errors derive from these
                e.notes.append(f"robustness table unreadable ({exc})")
        run_id = read_run_id(e.model_dir, e.card) if e.card else None
        e.run = (run_by_id(client, run_id) if run_id else {}) or (runs.get((task, model, seed), {}) if e.card else {})
        entries.append(e)
    return entries


def results_frame(entries: list[Entry]) -> pd.DataFrame:
    """``reports/results.csv``: one row per (task, model), raw numbers (NaN/empty when not run)."""
    rows = []
    for e in entries:
        meta = (e.card or {}).get("metadata", {})
        tags = e.run.get("tags", {})
        row: dict[str, Any] = {
            "task": e.task,
            "model": e.model,
            "seed": e.seed,
            "synthetic": is_synthetic(e.task),
            "origin": data_origin(e.task),
            "status": e.status,
            "kind": e.kind or "",
            "variant": (e.card or {}).get("config", {}).get("variant", ""),
        }
        for key in sorted({k for ks in METRICS.values() for k, _ in ks} | {"test/loss", "test/n_clips", "test/seconds"}):
            v = e.metric(key) if e.trained else None
            row[key] = float(v) if v is not None else math.nan
        row.update(
            {
                "params": e.n_params if e.n_params is not None else math.nan,
                "train_seconds": _train_seconds(e),
                "epochs": len(e.history) if e.history is not None else math.nan,
                "best_epoch": meta.get("best_epoch", math.nan),
                "still_improving": e.still_improving if e.trained else "",
                "best_val_loss": meta.get("best_val_loss", math.nan),
                "device": meta.get("device", tags.get("device", "")),
                "git_commit": tags.get("git_commit", ""),
                "torch": tags.get("torch", ""),
                "mlflow_run_id": e.run_id or "",
                "registry_uri": e.registry_uri or "",
                "robustness": e.robustness is not None,
            }
        )
        if e.robustness is not None and len(e.robustness):
            s = robustness_summary([e.robustness])
            kind = e.kind or MULTILABEL
            s = s[s["metric"] == PRIMARY_METRIC.get(kind, PRIMARY_METRIC[MULTILABEL])]
            for r in s.itertuples(index=False):
                row[f"robust/{r.perturbation}/{r.unit}_{r.level:g}/relative_degradation"] = r.relative_degradation
        rows.append(row)
    return pd.DataFrame(rows)


def _train_seconds(e: Any) -> float:
    """Training wall time of a cell: the run's ``train/seconds`` (older model cards kept it as ``train_seconds``)."""
    v = e.metric("train/seconds") if e.trained else None
    if v is None:
        v = ((e.card or {}).get("metadata") or {}).get("train_seconds")
    return float(v) if v is not None else math.nan
