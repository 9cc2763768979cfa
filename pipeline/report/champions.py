"""The registry's answer to "which model should I use": per task and front-end family, the
``champion`` alias on the variant the report's summary names best (clean test split, seed-averaged
scores, :mod:`pipeline.evaluation.family_summary`), at its seed with the highest clean primary metric.

``models:/musicrep-<task>-family-<family>@champion`` then loads it anywhere that sees the store
(:func:`pipeline.tracking.registry.set_champion` says why one registered model per family).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from pipeline.core.task_kinds import MULTILABEL
from pipeline.evaluation.family_summary import TaskSummary
from pipeline.evaluation.metrics import primary_metric
from pipeline.report.collect import Entry
from pipeline.tracking.registry import set_champion
from pipeline.tracking.runs import mlflow_errors

log = logging.getLogger(__name__)


def _best_seed(cells: list[Entry], task: str) -> Entry:
    """The cell with the highest clean primary metric (``test/<primary>`` of its ``eval.json``)."""
    key = f"test/{primary_metric(cells[0].kind or MULTILABEL, task)}"

    def score(e: Entry) -> float:
        value = e.metric(key)
        return float(value) if value is not None else -math.inf

    return max(cells, key=score)


def crown_champions(
    summaries: dict[str, TaskSummary | None], entries: list[Entry], client: Any, root: Path
) -> dict[str, list[str]]:
    """Set the ``champion`` alias of every (task, family) of ``summaries`` whose best variant is registered.

    Args:
        summaries: the report's first-screen summary per task (``None``: nothing evaluated).
        entries: the report's cells, with ``registry_uri`` set where registered.
        client: the MLflow client (``None``: nothing is set).
        root: the project.

    Returns:
        Per task, ``models:/...@champion`` of each family crowned; a failing registry costs a warning.
    """
    out: dict[str, list[str]] = {}
    for task, summary in summaries.items():
        for row in summary.rows if summary is not None and client is not None else []:
            cells = [e for e in entries if e.task == task and e.model == row.model and e.registry_uri]
            if not cells:
                continue
            best = _best_seed(cells, task)
            note = f"best {row.family} variant: {row.model}, clean {summary.metric} {row.clean.value:.3f} (seed-averaged); seed {best.seed}"
            try:
                out.setdefault(task, []).append(set_champion(best.registry_uri, task, row.family, note, client, root))
            except mlflow_errors() as exc:
                log.warning("could not set the %s champion of %s: %s", row.family, task, exc)
    return out
