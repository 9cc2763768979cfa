"""One grid cell ``(task, model, seed)``: ``train -> evaluate -> robustness`` in one process, then registration.

Apart from the other stages (:mod:`pipeline.orchestration.stages`), so that a cell imports only
the code it runs: its DVC dependencies and checkpoint fingerprint
(:func:`pipeline.training.code.cell_sources`) are the import closure of this module and the model's files.
The start-up cost (torch, MLflow) is paid once per cell, not per step.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, TypeVar

from pipeline.config.params import Params
from pipeline.core.locks import stage_lock
from pipeline.core.paths import Layout
from pipeline.evaluation.evaluate import evaluate_model
from pipeline.models.runtime import resolve_runtime
from pipeline.robustness.noises import load_noise, noise_dependencies
from pipeline.robustness.stage import run_robustness
from pipeline.tracking.registry import register_models
from pipeline.tracking.runs import client, mlflow_errors
from pipeline.training.train import train_model

log = logging.getLogger(__name__)

Step = TypeVar("Step")


def cell_lock(step: str, task: str, model: str, seed: int | None, params: Params, layout: Layout) -> AbstractContextManager:
    """The one lock of a grid cell ``(task, model, seed)``, taken by ``train``, ``evaluate``, ``robustness`` and ``cell``.

    Re-entrant in one thread: ``cell`` holds it and calls the three steps in-process. A second
    process is refused naming the holder's pid (or waits, with ``musicrep --wait``).
    """

    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and os.environ.get("RANK", "0") != "0":
        return contextlib.nullcontext()  # under torchrun, rank 0 holds the cell's lock for the whole process group
    seed = params.grid.seeds[0] if seed is None else int(seed)
    return stage_lock("cell", task, model, seed, root=layout.root, holder=f"musicrep {step} {task} {model} --seed {seed}")


def locked_step(step: str, run: Callable[..., Step]) -> Callable[..., Step]:
    """``run``, a stage function ``(task, model, params, layout, *, seed, ...)``, under the cell's lock (:func:`cell_lock`).

    The step keeps ``run``'s signature and docs: its options (``runtime``, ``label_map``, ...) pass through as they are.
    """

    @functools.wraps(run)
    def under_lock(task: str, model: str, params: Params, layout: Layout, *, seed: int | None = None, **options: Any) -> Step:
        with cell_lock(step, task, model, seed, params, layout):
            return run(task, model, params, layout, seed=seed, **options)

    under_lock.__name__ = under_lock.__qualname__ = step
    return under_lock


evaluate = locked_step("evaluate", evaluate_model)
"""Test metrics (``metrics/<task>/<model>/seed<k>/eval.json``): :func:`~pipeline.evaluation.evaluate.evaluate_model` under the cell's lock."""

robustness = locked_step("robustness", run_robustness)
"""Metrics under perturbations (``metrics/<task>/<model>/seed<k>/robustness.*``): :func:`~pipeline.robustness.stage.run_robustness`
under the cell's lock; ``model`` may be a published ``sota:`` one."""

_train = locked_step("train", train_model)


def train(task: str, model: str, params: Params, layout: Layout, *, resume: bool = True, **options: Any) -> Path:
    """Train one model on one task (``models/<task>/<model>/seed<k>/``); resumes a matching checkpoint by default.

    ``options``: those of :func:`~pipeline.training.train.train_model` (``seed``, ``runtime``, ...); returns the model's folder.
    """
    return _train(task, model, params, layout, resume=resume, **options).model_dir


def check_noise(params: Params, layout: Layout) -> None:
    """Load the robustness noise bank before training, so that a missing one (e.g. Speech Commands not
    downloaded) stops the cell at once with the fix, not after hours of training (a cell run outside DVC)."""

    if noise_dependencies(params):
        load_noise(params.robustness.noise_source, layout, seed=params.seed)


def cell(task: str, model: str, params: Params, layout: Layout, seed: int | None = None, resume: bool = True) -> dict[str, float]:
    """One grid cell: train, evaluate and robustness of ``(task, model, seed)``.

    Returns the test metrics. Each step writes its outputs atomically, so a killed cell
    re-run resumes training from its last epoch checkpoint and rewrites the rest. The
    :class:`~pipeline.models.runtime.Runtime` (device, bf16, threads) is resolved once and passed to the three steps.
    """

    seed = params.grid.seeds[0] if seed is None else int(seed)
    with cell_lock("cell", task, model, seed, params, layout):  # two runs of one cell never interleave
        check_noise(params, layout)
        runtime = resolve_runtime(params)
        t0 = time.perf_counter()
        train(task, model, params, layout, resume=resume, seed=seed, runtime=runtime)
        t1 = time.perf_counter()
        result = evaluate(task, model, params, layout, seed=seed, runtime=runtime)
        t2 = time.perf_counter()
        robustness(task, model, params, layout, seed=seed, reuse_clean=True, runtime=runtime)  # clean point: evaluate's scores
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

    try:
        result = register_models([model_dir], client(root), root)[model_dir]
    except mlflow_errors() as exc:
        log.warning("could not register %s: %s", model_dir, exc)
        return None
    return result if isinstance(result, str) else None


STEPS: dict[str, Callable[..., Any]] = {"train": train, "evaluate": evaluate, "robustness": robustness}
"""The steps inside a cell, also runnable alone (``musicrep train|evaluate|robustness``)."""
