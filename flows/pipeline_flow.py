"""Prefect flow running the same stage functions as ``dvc.yaml`` (:mod:`pipeline.stages`).

Per dataset: download -> segment -> features; per (task, model) of the grid, fanned out
with ``.submit``: train -> evaluate -> robustness; then the report. Steps that can fail
transiently (downloads, training interrupted by a lost worker) are retried; a retried
training resumes from its last epoch checkpoint.

Run it: ``musicrep flow`` (or ``python -m flows.pipeline_flow``). Without
``PREFECT_API_URL`` Prefect starts a temporary local server; see README for the UI.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

from prefect import flow, task  # noqa: E402
from prefect.task_runners import ThreadPoolTaskRunner  # noqa: E402

from pipeline import stages  # noqa: E402
from pipeline.config import load_params  # noqa: E402
from pipeline.paths import Layout  # noqa: E402


def _ctx(params_path: str, root: str) -> tuple[Any, Layout]:
    return load_params(params_path), Layout(Path(root))


@task(name="download", retries=3, retry_delay_seconds=[2, 10, 30])
def download_task(dataset: str, params_path: str, root: str) -> str:
    params, layout = _ctx(params_path, root)
    return str(stages.download(dataset, params, layout))


@task(name="segment")
def segment_task(dataset: str, params_path: str, root: str) -> str:
    params, layout = _ctx(params_path, root)
    return str(stages.segment(dataset, params, layout))


@task(name="features")
def features_task(dataset: str, params_path: str, root: str) -> str:
    params, layout = _ctx(params_path, root)
    return str(stages.features(dataset, params, layout))


@task(name="train", retries=1, retry_delay_seconds=5)
def train_task(dataset: str, model: str, params_path: str, root: str) -> str:
    params, layout = _ctx(params_path, root)
    return str(stages.train(dataset, model, params, layout, resume=True))


@task(name="evaluate")
def evaluate_task(dataset: str, model: str, params_path: str, root: str) -> dict[str, float]:
    params, layout = _ctx(params_path, root)
    return stages.evaluate(dataset, model, params, layout)


@task(name="robustness")
def robustness_task(dataset: str, model: str, params_path: str, root: str) -> str:
    params, layout = _ctx(params_path, root)
    if params.robustness.enabled:
        stages.robustness(dataset, model, params, layout)
    return f"{dataset}/{model}"


@task(name="report")
def report_task(params_path: str, root: str) -> str:
    params, layout = _ctx(params_path, root)
    return str(stages.report(params, layout))


FLOW_STEPS = {
    "download": download_task, "segment": segment_task, "features": features_task, "train": train_task,
    "evaluate": evaluate_task, "robustness": robustness_task, "report": report_task,
}


@flow(name="musicrep-pipeline", task_runner=ThreadPoolTaskRunner(max_workers=1), log_prints=False)
def musicrep_pipeline(params_path: str = "params.yaml", root: str = ".", report: bool = True) -> dict[str, Any]:
    """The whole grid of ``params.yaml``: datasets x models, then the report.

    The grid fans out over the flow's task runner; ``musicrep flow --max-workers N`` runs N
    (task, model) pairs at once (threads: torch releases the GIL). On one GPU keep N small.
    """
    params_path = str(Path(params_path).resolve())
    root = str(Path(root).resolve())
    params = load_params(params_path)
    prepared = {}
    for dataset in params.grid.tasks:
        d = download_task.submit(dataset, params_path, root)
        s = segment_task.submit(dataset, params_path, root, wait_for=[d])
        prepared[dataset] = features_task.submit(dataset, params_path, root, wait_for=[s])
    results, finals = {}, []
    for dataset in params.grid.tasks:
        for model in params.grid.models:
            t = train_task.submit(dataset, model, params_path, root, wait_for=[prepared[dataset]])
            e = evaluate_task.submit(dataset, model, params_path, root, wait_for=[t])
            r = robustness_task.submit(dataset, model, params_path, root, wait_for=[t])
            results[f"{dataset}/{model}"] = e
            finals += [e, r]
    metrics = {key: fut.result() for key, fut in results.items()}
    for fut in finals:
        fut.wait()
    if report:
        report_task.submit(params_path, root, wait_for=finals).result()
    return metrics


if __name__ == "__main__":
    musicrep_pipeline()
