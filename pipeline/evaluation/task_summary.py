"""``metrics/<task>.json``: one line of ``dvc metrics show`` per task.

The task's primary metric (:func:`pipeline.evaluation.metrics.primary_metric`) on the clean test
split, per grid model the mean over the seeds evaluated (4 decimals), beside ``metric`` (its name)
and ``seeds`` (how many the grid has). Read from the cells' ``eval.json`` files, which stay tracked
but are no DVC metrics: at 33 cells their keys made ``dvc exp show`` 1,053 columns wide. Every task
file has the same keys (the grid's models), so ``dvc metrics show`` is a table with a row per task
and a column per model.
"""

from __future__ import annotations

import json
from pathlib import Path
from statistics import fmean
from typing import TYPE_CHECKING, Any

from pipeline.core.io_utils import write_json
from pipeline.core.paths import Layout
from pipeline.evaluation.metrics import primary_metric
from pipeline.models.grid import grid_models

if TYPE_CHECKING:
    from pipeline.config.params import Params


def _eval(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.exists() else None


def task_summary(params: Params, layout: Layout, task: str) -> dict[str, Any]:
    """``{"metric": "accuracy", "seeds": 1, "fcn": 0.972, ...}``: the seed-mean primary metric per model.

    Args:
        params: validated params (``grid.models``, ``grid.seeds``).
        layout: project layout (``metrics/<task>/<model>/seed<k>/eval.json``).
        task: the task.

    Returns:
        The summary; a model without an evaluated seed is left out, ``metric`` is ``"none"``
        while no cell of the task is evaluated.
    """
    metric, out = None, {}
    for model in grid_models(params):
        values = []
        for seed in params.grid.seeds:
            ev = _eval(layout.metrics(task, model, seed) / "eval.json")
            if ev is None:
                continue
            metric = metric or primary_metric("single" if "test/accuracy" in ev else "multilabel", task)
            if ev.get(f"test/{metric}") is not None:
                values.append(float(ev[f"test/{metric}"]))
        if values:
            out[model] = round(fmean(values), 4)
    return {"metric": metric or "none", "seeds": len(params.grid.seeds), **out}


def write_task_summary(params: Params, layout: Layout, task: str) -> Path:
    """Write :func:`task_summary` to ``metrics/<task>.json`` (atomically); its path."""
    path = layout.task_summary(task)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, task_summary(params, layout, task))
    return path
