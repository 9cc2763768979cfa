"""The pipeline's stages, one function each: one implementation per stage.

``dvc.yaml`` (through the ``musicrep`` CLI) and the Prefect flow (``flows/``) are thin
views on these functions; :data:`STAGES` lists them in pipeline order and
``tests/test_stages.py`` checks that ``dvc.yaml`` and the flow follow it.

Data stages run once per dataset (``download``, ``segment``, ``features``); a grid *cell*
``(task, model, seed)`` runs ``train -> evaluate -> robustness`` in one process
(:func:`pipeline.orchestration.cell.cell`, a module of its own so that a cell imports only what it runs).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pipeline.config.params import RESOLVED_PARAMS, Params, render_resolved
from pipeline.core.io_utils import write_text_if_changed
from pipeline.core.locks import clean_stage_leftovers, stage_lock
from pipeline.core.paths import Layout
from pipeline.data.registry import get_source
from pipeline.data.segment import segment_dataset
from pipeline.evaluation.task_summary import write_task_summary
from pipeline.features.cache import build_features
from pipeline.orchestration.cell import STEPS, cell, cell_lock, evaluate, register, robustness, train  # noqa: F401 - the stages' one namespace
from pipeline.report.build import build_report

log = logging.getLogger(__name__)


def resolve_params(params: Params, layout: Layout) -> Path:
    """Write every parameter (``params.yaml`` over its profile) to ``params.resolved.yaml``.

    ``layout.root`` is the folder of the params file (and of its ``dvc.yaml``).
    The other stages of ``dvc.yaml`` track their params in this file, so a profile default is
    tracked although ``params.yaml`` does not spell it out. Rewritten only when it changes.
    """

    out = layout.root / RESOLVED_PARAMS
    write_text_if_changed(out, render_resolved(params))
    return out


@contextlib.contextmanager
def _data_stage(stage: str, dataset: str, layout: Layout, reads: str | None = None) -> Iterator[None]:
    """Hold ``stage``'s lock on ``dataset`` (and ``reads``' lock: its inputs stay put), clean a killed run's
    temporaries first, and this run's own when it fails (disk full, permissions...): nothing half-written stays."""

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

    with _data_stage("download", dataset, layout):
        raw = layout.raw(dataset)
        raw.mkdir(parents=True, exist_ok=True)
        get_source(dataset, params, layout).fetch(raw, params)
    return raw


def segment(dataset: str, params: Params, layout: Layout) -> Path:
    """Decode a raw dataset into waveform shards + manifest (``data/segments/<dataset>/``)."""

    with _data_stage("segment", dataset, layout, reads="download"):  # raw files stay put
        return segment_dataset(dataset, params, layout)


def features(dataset: str, params: Params, layout: Layout) -> Path:
    """Cache the grid's fixed front-end outputs (``data/features/<dataset>/``)."""

    with _data_stage("features", dataset, layout, reads="segment"):  # segments stay put
        return build_features(dataset, params, layout)


def summary(task: str, params: Params, layout: Layout) -> Path:
    """The task's summary metrics, ``metrics/<task>.json``: the primary metric per model, seed-averaged."""
    return write_task_summary(params, layout, task)


def report(params: Params, layout: Layout) -> Path:
    """Comparison report (``reports/index.md``, ``reports/index.html``, figures)."""

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
