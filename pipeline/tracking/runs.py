"""MLflow tracking (docs/spec.md §11): one experiment per task, one run per (model, seed).

The store is the project's (:attr:`pipeline.config.project.Project.tracking_uri`):
``sqlite:///<project>/mlflow.db`` with artifacts under ``<project>/mlartifacts`` (absolute, so
DVC stages and Prefect tasks started from other directories agree); ``MLFLOW_TRACKING_URI``
overrides it when the user sets it. Every function that opens the store takes the project root;
nothing falls back to the current directory. Telemetry is switched off. Everything goes through
an explicit :class:`mlflow.MlflowClient` and run ids: no global active run.

Metric names are slash-namespaced: ``train/loss``, ``val/roc_auc``, ``test/pr_auc``,
``robust/white_noise/snr_10/roc_auc``.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import logging
import os
import platform
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import torch
import torchaudio

from pipeline.config.params import flatten
from pipeline.config.project import RUN_TIME_SECTIONS, tracking_uri
from pipeline.core.io_utils import sha256_file
from pipeline.core.lazy import lazy
from pipeline.core.settings import settings
from pipeline.models.checkpoint import read_card, read_run_id

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient

    from pipeline.config.params import Params
    from pipeline.core.paths import Layout

log = logging.getLogger(__name__)

mlflow = lazy("mlflow")
"""Imported at first use, after :func:`quiet_mlflow_env`: MLflow reads its telemetry switches at import."""
mlflow_entities = lazy("mlflow.entities")

MODEL_ARTIFACT_DIR = "model"
"""Where a training run keeps its packaged model (``model.pt``, ``model.json``, ``history.csv``)."""
MODEL_SHA_TAG = "musicrep.model_sha256"
"""Run tag: the sha256 of the ``model.pt`` under :data:`MODEL_ARTIFACT_DIR`; the registry registers
those files instead of storing them again (:func:`pipeline.tracking.registry.register_model`)."""

_QUIET_MLFLOW_ENV = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}


def mlflow_errors() -> tuple[type[BaseException], ...]:
    """What a failing MLflow store raises: its own exception, a SQL store's database error
    (locked, half-migrated), an unreachable server, a bad URI."""
    return (lazy("mlflow.exceptions").MlflowException, lazy("sqlalchemy.exc").SQLAlchemyError, ImportError, OSError, ValueError)


def quiet_mlflow_env() -> None:
    """Switch MLflow's telemetry and progress bars off unless the user set them (docs/spec.md §10.3).

    MLflow reads its telemetry switch once, when it is imported, so this runs before the first
    ``import mlflow`` (:func:`client` calls it); values already in the environment win.
    """
    for name, value in _QUIET_MLFLOW_ENV.items():
        os.environ.setdefault(name, value)


def artifact_root(root: Path) -> str | None:
    """Where new experiments keep artifacts: ``$MUSICREP_ARTIFACT_ROOT``, the project's ``mlartifacts/``,
    or ``None`` against a tracking server (``http(s)://``): the server's root, proxied ``mlflow-artifacts:/``,
    which every worker reaches (``make mlflow-server``, docs/scaling.md)."""
    env = settings().artifact_root
    if env:
        return env
    if tracking_uri(root).startswith(("http://", "https://")):
        return None
    return (Path(root).resolve() / "mlartifacts").as_uri()


def client(root: Path) -> MlflowClient:
    """The MLflow client of the project at ``root`` (:func:`tracking_uri`; one per URI, reused)."""
    return _client_for(tracking_uri(root))


@functools.lru_cache(maxsize=4)
def _client_for(uri: str) -> MlflowClient:
    quiet_mlflow_env()

    if uri.startswith("sqlite:///"):
        return _open_sqlite_store(uri, Path(uri[len("sqlite:///") :]))
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


def _open_sqlite_store(uri: str, db: Path) -> MlflowClient:
    """Create/migrate a local SQLite store under a file lock.

    MLflow creates its tables and runs its migrations on first use; two processes doing that at
    once (two grid cells started side by side on a fresh project) make one fail with a
    SQLAlchemy ``CircularDependencyError``. The first process holds ``<db>.init.lock`` while it
    opens the store; the others wait for it, then find the schema in place.
    """

    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.with_name(db.name + ".init.lock"), "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            c = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
            c.search_experiments(max_results=1)  # forces the store (and its schema) into being
            c.search_registered_models(max_results=1)
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
    return c


def experiment_id(c: MlflowClient, task: str, root: Path) -> str:
    """Id of the task's experiment, created (with an absolute artifact location) if needed."""
    exp = c.get_experiment_by_name(task)
    if exp is not None:
        return exp.experiment_id
    try:
        base = artifact_root(root)
        return c.create_experiment(task, artifact_location=f"{base}/{task}" if base else None)
    except Exception:  # noqa: BLE001 - created concurrently by another process
        exp = c.get_experiment_by_name(task)
        if exp is None:
            raise
        return exp.experiment_id


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def cpu_name() -> str:
    """The processor's model name (``/proc/cpuinfo`` on Linux, else :func:`platform.processor`)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def environment_tags() -> dict[str, str]:
    """Library and device versions recorded with every run."""

    tags = {
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchaudio": torchaudio.__version__,
        "platform": platform.platform(),
        "cuda": torch.version.cuda or "none",  # the build of torch, not the device (see "device", "cpu", "gpu")
        "cpu": cpu_name(),
        "cpu_cores": str(os.cpu_count()),
    }
    if torch.cuda.is_available():
        tags["gpu"] = torch.cuda.get_device_name(0)
    return tags


class TrainingRun:
    """The MLflow run of one (task, model) training; resumable by run id.

    Args:
        task: dataset name (= experiment name).
        model_name: grid model name (= run name).
        params: validated params (logged flattened).
        run_id: an existing run to continue (after ``--resume``).
        tags: extra tags (device, data hash, ...).
        root: the project root (whose MLflow store holds the run).
    """

    def __init__(
        self,
        task: str,
        model_name: str,
        params: Params,
        run_id: str | None = None,
        tags: dict[str, str] | None = None,
        seed: int | None = None,
        *,
        root: Path,
    ) -> None:
        self.client = client(root)
        self.task, self.model_name = task, model_name
        exp = experiment_id(self.client, task, root)
        existing = None
        if run_id:
            try:
                existing = self.client.get_run(run_id)
            except Exception:  # noqa: BLE001 - deleted or other store
                existing = None
        if existing is not None:
            self.run_id = run_id
            self.client.update_run(run_id, status="RUNNING")
            return
        seed = params.grid.seeds[0] if seed is None else seed
        run = self.client.create_run(
            exp,
            run_name=run_name(model_name, seed),
            tags={
                "task": task,
                "model": model_name,
                "seed": str(seed),
                "data_seed": str(params.seed),
                "profile": params.profile,
                **environment_tags(),
                **run_time_tags(params),
                **(tags or {}),
            },
        )
        self.run_id = run.info.run_id
        flat = flatten(params.model_dump(mode="json", exclude={"datasets", "grid", *RUN_TIME_SECTIONS}))
        flat["dataset"] = task
        flat["model"] = model_name
        flat["train_seed"] = seed
        self.client.log_batch(self.run_id, params=[mlflow_entities.Param(k, str(v)[:6000]) for k, v in flat.items()])

    def log_epoch(self, epoch: int, record: dict[str, float]) -> None:
        """Log one epoch's ``train_loss``, ``val_loss`` and ``val_<metric>`` as ``train/``, ``val/``."""

        now = int(time.time() * 1000)
        metrics = []
        for key, value in record.items():
            if key == "epoch" or value != value:  # skip NaN
                continue
            name = key.replace("train_", "train/", 1) if key.startswith("train_") else key.replace("val_", "val/", 1)
            metrics.append(mlflow_entities.Metric(name, float(value), now, epoch))
        self.client.log_batch(self.run_id, metrics=metrics)

    def finish_training(self, model_dir: Path, history: pd.DataFrame, best: dict[str, Any], seconds: float) -> None:
        """Log the best epoch, the training wall time and the packaged model's files, and close the run.

        The wall time (``train/seconds``) lives only here: the packaged model, a DVC output, holds
        nothing that differs between two runs of the same cell, so a re-run leaves git clean.
        """
        self.client.log_metric(self.run_id, "best/epoch", best["epoch"])
        self.client.log_metric(self.run_id, "train/seconds", float(seconds))
        self.client.log_metric(self.run_id, "best/val_loss", best["val_loss"])
        for name in ("model.json", "history.csv"):
            if (model_dir / name).exists():
                self.client.log_artifact(self.run_id, str(model_dir / name), MODEL_ARTIFACT_DIR)
        self.client.log_artifact(self.run_id, str(model_dir / "model.pt"), MODEL_ARTIFACT_DIR)
        self.client.set_tag(self.run_id, MODEL_SHA_TAG, sha256_file(model_dir / "model.pt"))
        # no figure here: MLflow draws the logged per-epoch metrics itself, and the report logs its
        # training-curve PNG into this run (figures/), so the cell skips matplotlib (~1.4 CPU-s)
        self.client.set_terminated(self.run_id, "FINISHED")

    def end(self, status: str = "FINISHED") -> None:
        self.client.set_terminated(self.run_id, status)


def run_name(model_name: str, seed: int) -> str:
    """The MLflow run name of a cell, unique in its task's experiment: ``fcn · seed 0``."""
    return f"{model_name} · seed {seed}"


def run_time_tags(params: Params) -> dict[str, str]:
    """``runtime.*`` and ``flow.*`` as tags (``runtime.device: auto``): how the run ran, no params of its result."""

    flat = flatten(params.model_dump(mode="json", include=set(RUN_TIME_SECTIONS)))
    return {k: str(v)[:5000] for k, v in flat.items()}


@contextlib.contextmanager
def ended_on_failure(run: TrainingRun | None) -> Iterator[None]:
    """End ``run`` as KILLED (interrupted) or FAILED (an error) when the block raises, so no run stays RUNNING."""
    try:
        yield
    except BaseException as exc:
        if run is not None:
            status = "KILLED" if isinstance(exc, KeyboardInterrupt | SystemExit) else "FAILED"
            try:
                run.end(status)
            except Exception as err:  # noqa: BLE001 - the store itself may be the fault (locked, disk full)
                log.warning("could not mark MLflow run %s %s (%s)", run.run_id, status, err)
        raise


def log_to_run(
    run_id: str | None, metrics: dict[str, float], artifacts: list[Path] = (), artifact_dir: str | None = None, *, root: Path
) -> None:
    """Add metrics/artifacts to an existing run of the project at ``root`` (evaluate, robustness). No-op without a run id."""
    if not run_id:
        log.debug("no MLflow run id; skipping logging")
        return

    c = client(root)
    now = int(time.time() * 1000)
    c.log_batch(run_id, metrics=[mlflow_entities.Metric(k, float(v), now, 0) for k, v in metrics.items() if v == v])
    for path in artifacts:
        if Path(path).exists():
            c.log_artifact(run_id, str(path), artifact_dir)


def run_id_of(task: str, model_name: str, layout: Layout, seed: int = 0) -> str | None:
    """MLflow run id recorded in the packaged model's card (None if absent)."""

    try:
        model_dir = layout.model(task, model_name, seed)
        return read_run_id(model_dir, read_card(model_dir))
    except Exception:  # noqa: BLE001
        return None


def log_robustness(
    task: str,
    model_name: str,
    metrics: dict[str, float],
    artifacts: list[Path],
    params: Params,
    layout: Layout,
    seed: int = 0,
    noise_source: str | None = None,
) -> None:
    """Log ``robust/<perturbation>/<level>/<metric>`` values and tables into the model's run.

    The noise source of the background-noise points is recorded as the run tag
    ``robust_noise_source``, so results made with another noise bank are never mixed up.
    """
    named = {k if k.startswith("robust/") else f"robust/{k}": v for k, v in metrics.items()}
    run_id = run_id_of(task, model_name, layout, seed)
    log_to_run(run_id, named, artifacts, "robustness", root=layout.root)
    if run_id and noise_source:
        client(layout.root).set_tag(run_id, "robust_noise_source", noise_source)


SEARCH_MAX_RESULTS = 50_000
"""Runs one ``search_runs`` call returns at most (MLflow's own ceiling for one page)."""


def runs_table(root: Path, tasks: list[str] | None = None) -> pd.DataFrame:
    """Latest run per (task, model, seed) in the store of the project at ``root``, with its metrics, for ``musicrep compare``.

    One ``search_runs`` over the experiments of ``tasks`` (every experiment when ``None``; one
    experiment per task), newest first, so each cell keeps its latest run.
    """

    c = client(root)
    names = {e.experiment_id: e.name for e in c.search_experiments() if tasks is None or e.name in tasks}
    rows = []
    if names:
        runs = c.search_runs(list(names), order_by=["attributes.start_time DESC"], max_results=SEARCH_MAX_RESULTS)
        for run in runs:
            if run.data.tags.get("musicrep.kind") == "probe":  # probes have their own transfer table (pipeline.evaluation.probe)
                continue
            row = {
                "task": names[run.info.experiment_id],
                "model": run.data.tags.get("model", run.info.run_name),  # the run name adds the seed
                "seed": run.data.tags.get("seed", "0"),
                "status": run.info.status,
                "run_id": run.info.run_id,
                "start_time": run.info.start_time,
                "params": run.data.tags.get("n_params"),
            }
            row.update(run.data.metrics)
            rows.append(row)
    if not rows:
        return pd.DataFrame(columns=["task", "model"])
    df = pd.DataFrame(rows)
    df = (
        df.sort_values("start_time", ascending=False)
        .drop_duplicates(["task", "model", "seed"])
        .sort_values(["task", "model", "seed"])
    )
    return df.reset_index(drop=True)
