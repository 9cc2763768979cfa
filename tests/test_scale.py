"""The grid fanned out through Prefect's task runners (issue 13): threads, Dask, Ray, and the GPU limit.

One smoke grid (two models x one task x two seeds, tiny settings) runs through the flow on
the default thread pool, on a 2-worker Dask ``LocalCluster`` and on a local Ray; every cell's
``eval.json`` must be the same on all three. With the cells tagged ``gpu`` and a limit of one,
the task runs' start/end times read back from the Prefect API never overlap.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO, tiny_overrides

MODELS = ["fcn", "samplecnn"]
TASK = "synth_keywords"
SEEDS = [0, 1]
CELLS = [(TASK, m, s) for m in MODELS for s in SEEDS]


def _write_project(path: Path, **flow: Any) -> Path:
    """A project folder with a tiny params.yaml (data stages are copied in by the caller when present)."""
    path.mkdir(parents=True, exist_ok=True)
    over = tiny_overrides(models=MODELS, tasks=[TASK], n_clips=36)
    over["grid"]["seeds"] = SEEDS
    over["runtime"] = {"num_threads": 1}  # Dask and Ray workers run one thread each; the thread runner too
    over["flow"] = flow
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for key, value in over.items():
        params[key] = {**params.get(key, {}), **value} if isinstance(value, dict) and isinstance(params.get(key), dict) else value
    (path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def _eval(proj: Path) -> dict[str, dict[str, float]]:
    return {f"{m}/seed{s}": json.loads((proj / "metrics" / t / m / f"seed{s}" / "eval.json").read_text()) for t, m, s in CELLS}


def _run(proj: Path, **runner: Any):
    """The flow on ``proj``; returns (cell metrics, the flow run id)."""
    from pipeline.config.params import load_params
    from pipeline.flows.pipeline_flow import musicrep_pipeline
    from pipeline.orchestration.runners import flow_settings, task_runner

    params_path = str(proj / "params.yaml")
    fp = flow_settings(load_params(params_path), **runner)
    state = musicrep_pipeline.with_options(task_runner=task_runner(fp))(
        params_path=params_path, root=str(proj), report=False, return_state=True
    )
    return state.result(), state.state_details.flow_run_id


def _cell_runs(flow_run_id) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, TaskRunFilter, TaskRunFilterName

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
            task_run_filter=TaskRunFilter(name=TaskRunFilterName(like_="cell ")),
        )
    assert len(runs) == len(CELLS), [r.name for r in runs]
    assert all(r.state.is_completed() and r.start_time and r.end_time for r in runs)
    return sorted(runs, key=lambda r: r.start_time)


def _overlaps(runs: list[Any]) -> int:
    """How many runs (sorted by start) start before an earlier one has ended."""
    count, last_end = 0, None
    for r in runs:
        count += last_end is not None and r.start_time < last_end
        last_end = r.end_time if last_end is None else max(last_end, r.end_time)
    return count


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict[str, float]]]:
    """The grid on the default thread runner (one worker): the reference results and data stages."""
    proj = _write_project(tmp_path_factory.mktemp("scale") / "thread")
    metrics, _ = _run(proj)
    assert set(metrics) == {f"{t}/{m}/seed{s}" for t, m, s in CELLS}
    return proj, _eval(proj)


def _clone_data(baseline_proj: Path, proj: Path) -> None:
    """Reuse the reference's raw data, segments and features (the flow re-checks them; cells are re-run)."""
    for part in ("raw", "segments", "features"):
        shutil.copytree(baseline_proj / "data" / part, proj / "data" / part)


def test_dask_local_cluster_gives_the_thread_runner_results(baseline, tmp_path: Path) -> None:
    ref_proj, ref = baseline
    proj = _write_project(tmp_path / "dask", task_runner="dask", max_workers=2)
    _clone_data(ref_proj, proj)
    overlaps = []
    for _attempt in range(2):  # the cells last seconds: on a loaded 2-core box one worker may finish all before the other starts
        _, flow_run_id = _run(proj)
        assert _eval(proj) == ref  # identical results on every attempt
        runs = _cell_runs(flow_run_id)
        assert all("gpu" not in r.tags for r in runs)  # CPU cells are not limited
        overlaps.append(_overlaps(runs))
        if overlaps[-1] >= 1:
            break
    assert max(overlaps) >= 1, f"two Dask workers never ran two cells at once in {len(overlaps)} runs"


def test_gpu_limit_of_one_serialises_gpu_tagged_cells(baseline, tmp_path: Path) -> None:
    ref_proj, ref = baseline
    proj = _write_project(tmp_path / "gpu", task_runner="dask", max_workers=2, gpu_tag="on", gpu_concurrency=1)
    _clone_data(ref_proj, proj)
    _, flow_run_id = _run(proj)
    runs = _cell_runs(flow_run_id)
    assert all("gpu" in r.tags for r in runs)
    assert _overlaps(runs) == 0, [(r.name, r.start_time, r.end_time) for r in runs]
    assert _eval(proj) == ref


@pytest.mark.slow  # 2-4 min (Ray's start-up); the default tier checks the same contract on Dask
def test_local_ray_gives_the_thread_runner_results(baseline, tmp_path: Path) -> None:
    ref_proj, ref = baseline
    proj = _write_project(tmp_path / "ray", task_runner="ray", max_workers=2)
    _clone_data(ref_proj, proj)
    _, flow_run_id = _run(proj)
    assert _eval(proj) == ref
    _cell_runs(flow_run_id)


def test_flow_settings_from_params_and_command_line(tiny_params) -> None:
    from prefect.task_runners import ThreadPoolTaskRunner
    from prefect_dask import DaskTaskRunner
    from prefect_ray import RayTaskRunner

    from pipeline.core.errors import UserError
    from pipeline.orchestration.runners import flow_settings, gpu_cells, task_runner

    p = tiny_params()
    assert p.flow.task_runner == "thread" and p.flow.gpu_concurrency == 1
    assert isinstance(task_runner(flow_settings(p)), ThreadPoolTaskRunner)
    dask = task_runner(flow_settings(p, "dask", max_workers=3))
    assert isinstance(dask, DaskTaskRunner) and dask.cluster_kwargs["n_workers"] == 3
    assert dask.cluster_kwargs["host"] == "127.0.0.1"
    assert task_runner(flow_settings(p, "dask", address="tcp://127.0.0.1:8786")).address == "tcp://127.0.0.1:8786"
    assert isinstance(task_runner(flow_settings(p, "ray", address="auto")), RayTaskRunner)
    with pytest.raises(UserError, match="unknown task runner"):
        flow_settings(p, "spark")
    with pytest.raises(UserError, match="max_workers"):
        flow_settings(p, max_workers=0)
    p.flow.gpu_tag = "on"
    assert gpu_cells(p)
    p.flow.gpu_tag = "off"
    assert not gpu_cells(p)
