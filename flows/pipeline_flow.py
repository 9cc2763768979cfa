"""Prefect flow running the same stages as ``dvc.yaml``, in the order of :mod:`pipeline.orchestration.dag`.

Per dataset: download -> segment -> features; then one task per grid cell
``(task, model, seed)`` (train -> evaluate -> robustness in one call, as ``musicrep cell``),
fanned out over the flow's task runner; then each task's summary metrics and the report. Downloads are retried; a retried
cell resumes training from its last epoch checkpoint. Task runs are named by stage, dataset,
model and seed (``cell fcn@synth_tags seed 0``), and the pipeline's own log lines are sent to
the Prefect API, so they show in the UI next to each task run. A failing cell is a failed task
run (its one-line error is the state's message); the other cells and the report still run,
then the flow run fails naming the failed cells.

Run it: ``musicrep flow`` (or ``python -m flows.pipeline_flow``). Without
``PREFECT_API_URL`` Prefect starts a temporary local server; see README for the UI.
"""

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.context import FlowRunContext
from prefect.futures import as_completed
from prefect.logging.handlers import APILogHandler
from prefect.task_runners import ThreadPoolTaskRunner

from pipeline.config.params import load_params
from pipeline.config.project import without_run_time
from pipeline.core.paths import Layout
from pipeline.models.grid import cell_keys
from pipeline.orchestration import stages
from pipeline.orchestration.dag import DATA_STAGES
from pipeline.orchestration.runners import (
    GPU_TAG,
    cell_gpu,
    ensure_gpu_limit,
    flow_settings,
    gpu_cells,
    gpu_request,
    task_runner,
)

# No `from __future__ import annotations` in this module: Prefect builds the flow's parameter model
# from these annotations in the process that runs a deployment, where a string annotation naming a
# module-level alias cannot be resolved ("Musicrep_PipelineModel is not fully defined").
Overrides = dict[str, Any] | None
"""The ``--set`` values of the command that started the flow, as a nested dict: a flow parameter
every task applies over the params file (``musicrep --project DIR --set runtime.threads=1 flow``)."""


def _ctx(params_path: str, root: str, overrides: Overrides) -> tuple[Any, Layout]:
    return load_params(params_path, overrides or None), Layout(Path(root))


@task(name="params", task_run_name="params")
def params_task(params_path: str, root: str, overrides: Overrides = None) -> str:
    # written beside its params file, where `musicrep dag` puts dvc.yaml; a run-time --set is not a tracked value
    params = load_params(params_path, without_run_time(overrides) or None)
    return str(stages.resolve_params(params, Layout(Path(params_path).parent)))


@task(name="download", task_run_name="download-{dataset}", retries=3, retry_delay_seconds=[2, 10, 30])
def download_task(dataset: str, params_path: str, root: str, overrides: Overrides = None) -> str:
    params, layout = _ctx(params_path, root, overrides)
    return str(stages.download(dataset, params, layout))


@task(name="segment", task_run_name="segment-{dataset}")
def segment_task(dataset: str, params_path: str, root: str, overrides: Overrides = None) -> str:
    params, layout = _ctx(params_path, root, overrides)
    return str(stages.segment(dataset, params, layout))


@task(name="features", task_run_name="features-{dataset}")
def features_task(dataset: str, params_path: str, root: str, overrides: Overrides = None) -> str:
    params, layout = _ctx(params_path, root, overrides)
    return str(stages.features(dataset, params, layout))


@task(name="cell", task_run_name="cell {model}@{dataset} seed {seed}", retries=1, retry_delay_seconds=5)
def cell_task(dataset: str, model: str, seed: int, params_path: str, root: str, overrides: Overrides = None) -> dict[str, float]:
    params, layout = _ctx(params_path, root, overrides)
    with cell_gpu(params, f"cell {model}@{dataset} seed {seed}"):  # cells in threads of one process share its GPUs
        return stages.cell(dataset, model, params, layout, seed=seed, resume=True)


@task(name="summary", task_run_name="summary-{dataset}")
def summary_task(dataset: str, params_path: str, root: str, overrides: Overrides = None) -> str:
    params, layout = _ctx(params_path, root, overrides)
    return str(stages.summary(dataset, params, layout))


@task(name="report", task_run_name="report")
def report_task(params_path: str, root: str, overrides: Overrides = None) -> str:
    params, layout = _ctx(params_path, root, overrides)
    return str(stages.report(params, layout))


FLOW_STEPS = {
    "params": params_task,
    "download": download_task,
    "segment": segment_task,
    "features": features_task,
    "cell": cell_task,
    "summary": summary_task,
    "report": report_task,
}
"""One Prefect task per stage of :data:`pipeline.orchestration.stages.STAGES` (a test checks they agree)."""


@contextlib.contextmanager
def _pipeline_logs_to_prefect() -> Iterator[None]:
    """Forward the ``pipeline`` logger to the Prefect API for the duration of a flow run."""

    logger = logging.getLogger("pipeline")
    handler = APILogHandler()
    logger.addHandler(handler)
    old_level = logger.level
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


@flow(name="musicrep-pipeline", task_runner=ThreadPoolTaskRunner(max_workers=1), log_prints=False)
def musicrep_pipeline(
    params_path: str = "params.yaml", root: str = ".", report: bool = True, overrides: Overrides = None
) -> dict[str, Any]:
    """The whole grid of ``params.yaml``: datasets x models x seeds, then the report.

    The cells fan out over the flow's task runner (``flow:`` in params.yaml, or ``musicrep flow
    --task-runner thread|dask|ray --address ... --max-workers N``; :mod:`pipeline.orchestration.runners`);
    GPU cells are tagged ``gpu`` and capped by the ``gpu`` concurrency limit (``flow.gpu_concurrency`` GPUs x ``runtime.gpu_cells``).
    """
    params_path = str(Path(params_path).resolve())
    root = str(Path(root).resolve())
    params = load_params(params_path, overrides or None)
    cell_run, gpu_runner = cell_task, None
    if gpu_cells(params):  # GPU cells wait for a slot of the `gpu` limit; data stages run freely
        ensure_gpu_limit(params.flow.gpu_concurrency * params.runtime.gpu_cells)  # runtime.gpu_cells per GPU
        cell_run = cell_task.with_options(tags=[GPU_TAG])
        gpu_runner = FlowRunContext.get().task_runner  # on Ray each GPU cell asks for its GPU (gpu_request)
    with _pipeline_logs_to_prefect():
        params_task.submit(params_path, root, overrides).result()  # the resolved values, as dvc.yaml's stages track them
        prepared = {}
        for dataset in params.grid.tasks:
            future = None
            for name in DATA_STAGES:
                future = FLOW_STEPS[name].submit(dataset, params_path, root, overrides, wait_for=[future] if future else [])
            prepared[dataset] = future
        # a dataset's cells are submitted once its data stages are done: no Dask/Ray data dependency, so
        # the scheduler spreads them over all workers instead of queueing them where `features` ran
        cells = {}
        dataset_of = {fut: dataset for dataset, fut in prepared.items()}
        for done in as_completed(list(prepared.values())):
            t = dataset_of[done]
            upstream = [] if done.state.is_completed() else [done]  # a failed data stage: its cells are NotReady
            with gpu_request(params, gpu_runner):
                cells.update(
                    {
                        (t, m, s): cell_run.submit(t, m, s, params_path, root, overrides, wait_for=upstream)
                        for tt, m, s in cell_keys(params)
                        if tt == t
                    }
                )
        cells = {key: cells[key] for key in cell_keys(params)}  # pipeline order
        metrics, failed = _cell_results(cells)
        done = [fut for fut in cells.values() if fut.state.is_completed()]
        summaries = {t: summary_task.submit(t, params_path, root, overrides, wait_for=done) for t in params.grid.tasks}
        if report:
            report_task.submit(params_path, root, overrides, wait_for=done).result()
        for t, fut in summaries.items():
            fut.wait()
            if not fut.state.is_completed():
                failed.append(f"summary of {t}: {fut.state.message}")
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(cells)} cells failed: " + "; ".join(failed))
    return metrics


def _cell_results(cells: dict[tuple[str, str, int], Any]) -> tuple[dict[str, Any], list[str]]:
    """The test metrics of the cells that completed, and ``"fcn@synth_tags seed 0: <error>"`` per failed one."""
    metrics, failed = {}, []
    for (t, m, s), fut in cells.items():
        fut.wait()
        if fut.state.is_completed():
            metrics[f"{t}/{m}/seed{s}"] = fut.result()
        else:
            failed.append(f"{m}@{t} seed {s}: {fut.state.message}")
    return metrics, failed


def run_flow(
    params_path: str = "params.yaml", root: str = ".", report: bool = True, overrides: Overrides = None, **runner: Any
) -> dict[str, Any]:
    """The flow on the task runner of ``params.flow`` (``runner``: task_runner, address, max_workers overrides)."""
    fp = flow_settings(load_params(params_path, overrides or None), **runner)
    return musicrep_pipeline.with_options(task_runner=task_runner(fp))(
        params_path=params_path, root=root, report=report, overrides=overrides
    )


if __name__ == "__main__":
    run_flow()
