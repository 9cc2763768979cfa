"""The pipeline's stages, one function each: one implementation per stage.

``dvc.yaml`` (through the ``musicrep`` CLI) and the Prefect flow (``flows/``) are thin
views on these functions; :data:`STAGES` lists them in pipeline order and
``tests/test_stages.py`` checks that ``dvc.yaml`` and the flow follow it.

Data stages run once per dataset (``download``, ``segment``, ``features``); a grid *cell*
``(task, model, seed)`` runs ``train -> evaluate -> robustness`` in one process
(:func:`cell`), so the start-up cost (torch, MLflow) is paid once per cell, not per step.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.core.paths import Layout

if TYPE_CHECKING:
    from pipeline.config.params import Params

log = logging.getLogger(__name__)


def resolve_params(params: Params, layout: Layout) -> Path:
    """Write every parameter (``params.yaml`` over its profile) to ``params.resolved.yaml``.

    ``layout.root`` is the folder of the params file (and of its ``dvc.yaml``).
    The other stages of ``dvc.yaml`` track their params in this file, so a profile default is
    tracked although ``params.yaml`` does not spell it out. Rewritten only when it changes.
    """
    from pipeline.config.params import RESOLVED_PARAMS, render_resolved
    from pipeline.core.io_utils import write_text_if_changed

    out = layout.root / RESOLVED_PARAMS
    write_text_if_changed(out, render_resolved(params))
    return out


@contextlib.contextmanager
def _data_stage(stage: str, dataset: str, layout: Layout, reads: str | None = None) -> Iterator[None]:
    """Hold ``stage``'s lock on ``dataset`` (and ``reads``' lock: its inputs stay put), clean a killed run's
    temporaries first, and this run's own when it fails (disk full, permissions...): nothing half-written stays."""
    from pipeline.core.locks import clean_stage_leftovers, stage_lock

    with contextlib.ExitStack() as held:
        held.enter_context(stage_lock(stage, dataset, root=layout.root))  # two runs never share temporaries
        if reads:
            held.enter_context(stage_lock(reads, dataset, root=layout.root, holder=f"musicrep {stage} {dataset}"))
        clean_stage_leftovers(stage, dataset, layout)
        try:
            yield
        except BaseException:
            clean_stage_leftovers(stage, dataset, layout)
            raise


def download(dataset: str, params: Params, layout: Layout) -> Path:
    """Fetch (or generate) a dataset's raw files into ``data/raw/<dataset>/``."""
    from pipeline.data.registry import get_source

    with _data_stage("download", dataset, layout):
        raw = layout.raw(dataset)
        raw.mkdir(parents=True, exist_ok=True)
        get_source(dataset, params, layout).fetch(raw, params)
    return raw


def segment(dataset: str, params: Params, layout: Layout) -> Path:
    """Decode a raw dataset into waveform shards + manifest (``data/segments/<dataset>/``)."""
    from pipeline.data.segment import segment_dataset

    with _data_stage("segment", dataset, layout, reads="download"):  # raw files stay put
        return segment_dataset(dataset, params, layout)


def features(dataset: str, params: Params, layout: Layout) -> Path:
    """Cache the grid's fixed front-end outputs (``data/features/<dataset>/``)."""
    from pipeline.features.cache import build_features

    with _data_stage("features", dataset, layout, reads="segment"):  # segments stay put
        return build_features(dataset, params, layout)


def cell_lock(step: str, task: str, model: str, seed: int | None, params: Params, layout: Layout) -> AbstractContextManager:
    """The one lock of a grid cell ``(task, model, seed)``, taken by ``train``, ``evaluate``, ``robustness`` and ``cell``.

    Re-entrant in one thread: ``cell`` holds it and calls the three steps in-process. A second
    process is refused naming the holder's pid (or waits, with ``musicrep --wait``).
    """
    from pipeline.core.locks import stage_lock

    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and os.environ.get("RANK", "0") != "0":
        return contextlib.nullcontext()  # under torchrun, rank 0 holds the cell's lock for the whole process group
    seed = params.grid.seeds[0] if seed is None else int(seed)
    return stage_lock("cell", task, model, seed, root=layout.root, holder=f"musicrep {step} {task} {model} --seed {seed}")


def train(task: str, model: str, params: Params, layout: Layout, resume: bool = True, seed: int | None = None) -> Path:
    """Train one model on one task (``models/<task>/<model>/seed<k>/``); resumes a matching checkpoint."""
    with cell_lock("train", task, model, seed, params, layout):
        from pipeline.training.train import train_model  # after the lock: a refused run never pays for importing torch

        return train_model(task, model, params, layout, resume=resume, seed=seed).model_dir


def evaluate(task: str, model: str, params: Params, layout: Layout, seed: int | None = None) -> dict[str, float]:
    """Test metrics (``metrics/<task>/<model>/seed<k>/eval.json``)."""
    with cell_lock("evaluate", task, model, seed, params, layout):
        from pipeline.evaluation.evaluate import evaluate_model  # after the lock: a refused run never pays for importing torch

        return evaluate_model(task, model, params, layout, seed=seed)


def robustness(
    task: str,
    model: str,
    params: Params,
    layout: Layout,
    seed: int | None = None,
    label_map: dict | None = None,
    reuse_clean: bool = False,
) -> Any:
    """Metrics under perturbations (``metrics/<task>/<model>/seed<k>/robustness.*``); ``model`` may be a
    published ``sota:`` one, scored through the labels it shares with ``task`` (or ``label_map``).
    ``reuse_clean``: the clean point takes the scores ``evaluate`` has just written (:func:`cell`)."""
    with cell_lock("robustness", task, model, seed, params, layout):
        from pipeline.robustness.stage import run_robustness  # after the lock: a refused run never pays for importing torch

        return run_robustness(task, model, params, layout, seed=seed, label_map=label_map, reuse_clean=reuse_clean)


def check_noise(params: Params, layout: Layout) -> None:
    """Load the robustness noise bank before training, so that a missing one (e.g. Speech Commands not
    downloaded) stops the cell at once with the fix, not after hours of training (a cell run outside DVC)."""
    from pipeline.robustness.noises import load_noise, noise_dependencies

    if noise_dependencies(params):
        load_noise(params.robustness.noise_source, layout, seed=params.seed)


def cell(task: str, model: str, params: Params, layout: Layout, seed: int | None = None, resume: bool = True) -> dict[str, float]:
    """One grid cell: train, evaluate and robustness of ``(task, model, seed)``.

    Returns the test metrics. Each step writes its outputs atomically, so a killed cell
    re-run resumes training from its last epoch checkpoint and rewrites the rest.
    """
    import time

    seed = params.grid.seeds[0] if seed is None else int(seed)
    with cell_lock("cell", task, model, seed, params, layout):  # two runs of one cell never interleave
        check_noise(params, layout)
        t0 = time.perf_counter()
        train(task, model, params, layout, resume=resume, seed=seed)
        t1 = time.perf_counter()
        result = evaluate(task, model, params, layout, seed=seed)
        t2 = time.perf_counter()
        robustness(task, model, params, layout, seed=seed, reuse_clean=True)  # clean point: evaluate's scores
        t3 = time.perf_counter()
        register(layout.model(task, model, seed), layout.root)
    log.info(
        "cell %s/%s seed%d done in %.1f s (train %.1f s, evaluate %.1f s, robustness %.1f s)",
        task,
        model,
        seed,
        t3 - t0,
        t1 - t0,
        t2 - t1,
        t3 - t2,
    )
    return result


def register(model_dir: Path, root: Path) -> str | None:
    """Register a cell's packaged model in the MLflow registry (idempotent); its ``models:/`` URI, or None.

    The cell registers its own model, so the registry is complete however the grid ran (DVC,
    the Prefect flow, one ``musicrep cell``); the report stage registers again what DVC restored
    from a cache without running the cell. A registry that cannot be reached costs a warning,
    not the cell's results.
    """
    from pipeline.tracking.registry import register_models
    from pipeline.tracking.runs import client, mlflow_errors

    try:
        result = register_models([model_dir], client(root), root)[model_dir]
    except mlflow_errors() as exc:
        log.warning("could not register %s: %s", model_dir, exc)
        return None
    return result if isinstance(result, str) else None


def summary(task: str, params: Params, layout: Layout) -> Path:
    """The task's summary metrics, ``metrics/<task>.json``: the primary metric per model, seed-averaged."""
    from pipeline.evaluation.task_summary import write_task_summary  # here: the grid's registry imports torch

    return write_task_summary(params, layout, task)


def report(params: Params, layout: Layout) -> Path:
    """Comparison report (``reports/index.md``, ``reports/index.html``, figures)."""
    from pipeline.core.locks import clean_stage_leftovers, stage_lock
    from pipeline.report import build_report

    with stage_lock("report", root=layout.root):
        clean_stage_leftovers("report", params.report.out_dir, layout)
        return build_report(params, layout)


STAGES: dict[str, Callable[..., Any]] = {
    "params": resolve_params,
    "download": download,
    "segment": segment,
    "features": features,
    "cell": cell,
    "summary": summary,
    "report": report,
}
"""The pipeline in order, as ``dvc.yaml`` and the Prefect flow run it."""

STEPS: dict[str, Callable[..., Any]] = {"train": train, "evaluate": evaluate, "robustness": robustness}
"""The steps inside a cell, also runnable alone (``musicrep train|evaluate|robustness``)."""
