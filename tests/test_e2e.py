"""End to end on a tiny synthetic grid: through `dvc repro` and through the Prefect flow.

Both runs use temporary project directories, a temporary MLflow store and Prefect home
(tests/conftest.py); they check the outputs every stage promises.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import yaml

from tests.conftest import tiny_overrides

REPO = Path(__file__).resolve().parents[1]
MODELS = ["fcn", "samplecnn"]
TASKS = ["synth_tags", "synth_keywords", "synth_events"]


def _git_env() -> dict[str, str]:
    return {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }


def _project(tmp: Path, tasks: list[str] = TASKS) -> Path:
    """A fresh git+DVC project with the repo's dvc.yaml and a tiny params.yaml."""
    proj = tmp / "proj"
    proj.mkdir()
    shutil.copytree(REPO / "pipeline", proj / "pipeline", ignore=shutil.ignore_patterns("__pycache__"))
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    over = tiny_overrides(models=MODELS, tasks=tasks, n_clips=36)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(params.get(key), dict):
            for k, v in value.items():
                params[key][k] = (
                    {**params[key].get(k, {}), **v} if isinstance(v, dict) and isinstance(params[key].get(k), dict) else v
                )
        else:
            params[key] = value
    (proj / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    subprocess.run(["musicrep", "dag", "--write", "--params", str(proj / "params.yaml")], check=True, capture_output=True)
    env = _git_env()
    for cmd in (
        ["git", "init", "-q"],
        ["dvc", "init", "-q"],
        ["dvc", "config", "core.analytics", "false"],
        ["git", "add", "-A"],
        ["git", "commit", "-qm", "init"],
    ):
        subprocess.run(cmd, cwd=proj, check=True, env=env)
    return proj


def _check_outputs(proj: Path, tasks: list[str] = TASKS) -> None:
    for task in tasks:
        assert (proj / "data" / "segments" / task / "manifest.parquet").exists()
        for model in MODELS:
            assert (proj / "models" / task / model / "seed0" / "model.pt").exists()
            ev = json.loads((proj / "metrics" / task / model / "seed0" / "eval.json").read_text())
            assert any(k in ev for k in ("test/roc_auc", "test/accuracy"))
            assert (proj / "metrics" / task / model / "seed0" / "robustness.csv").exists()
    assert (proj / "reports" / "index.html").exists()


DVC_TASKS = ["synth_keywords", "synth_events"]  # the flow test covers all three; this keeps the run short


def test_dvc_repro_end_to_end(tmp_path: Path) -> None:
    proj = _project(tmp_path, DVC_TASKS)
    res = subprocess.run(["dvc", "repro"], cwd=proj, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    _check_outputs(proj, DVC_TASKS)
    shown = subprocess.run(["dvc", "metrics", "show", "--json"], cwd=proj, capture_output=True, text=True, check=True)
    # one summary per task (its primary metric per model), not the cells' files
    assert all(f"metrics/{t}.json" in shown.stdout for t in DVC_TASKS) and "eval.json" not in shown.stdout
    assert '"accuracy"' in shown.stdout and '"roc_auc"' in shown.stdout
    status = subprocess.run(["dvc", "status"], cwd=proj, capture_output=True, text=True, check=True)
    assert "changed" not in status.stdout  # a second repro would do nothing
    # a change to one back-end file makes only that model's cells stale (per-model code deps of dvc.yaml)
    backend = proj / "pipeline" / "models" / "backends" / "samplecnn.py"
    original = backend.read_text()
    backend.write_text(original + "\n# edited\n")
    stale = json.loads(subprocess.run(["dvc", "status", "--json"], cwd=proj, capture_output=True, text=True, check=True).stdout)
    assert set(stale) == {f"cell-samplecnn@{t}-0" for t in DVC_TASKS}, stale
    backend.write_text(original)
    # a profile default that params.yaml does not spell out is tracked too (through params.resolved.yaml):
    # changing it names the params stage, and once resolved, exactly the stages that use the key
    profile = proj / "pipeline" / "config" / "profiles" / "smoke.yaml"
    text = profile.read_text()
    assert "  threshold: 0.1 " in text and "threshold" not in (proj / "params.yaml").read_text()
    profile.write_text(text.replace("  threshold: 0.1 ", "  threshold: 0.2 "))
    stale = json.loads(subprocess.run(["dvc", "status", "--json"], cwd=proj, capture_output=True, text=True, check=True).stdout)
    assert set(stale) == {"params"}, stale
    own_code = {**os.environ, "PYTHONPATH": str(proj)}  # `musicrep` reads the project's edited profile files
    subprocess.run(
        ["dvc", "repro", "--single-item", "params"], cwd=proj, capture_output=True, text=True, check=True, env=own_code
    )
    stale = json.loads(subprocess.run(["dvc", "status", "--json"], cwd=proj, capture_output=True, text=True, check=True).stdout)
    assert set(stale) == {f"cell-{m}@{t}-0" for m in MODELS for t in DVC_TASKS}, stale
    profile.write_text(text)
    subprocess.run(
        ["dvc", "repro", "--single-item", "params"], cwd=proj, capture_output=True, text=True, check=True, env=own_code
    )
    status = subprocess.run(["dvc", "status"], cwd=proj, capture_output=True, text=True, check=True)
    assert "changed" not in status.stdout
    compare = subprocess.run(
        ["musicrep", "compare", "--csv", str(tmp_path / "cmp.csv")], cwd=proj, capture_output=True, text=True
    )
    assert compare.returncode == 0, compare.stderr
    df = pd.read_csv(tmp_path / "cmp.csv")
    assert list(df.columns[:2]) == ["task", "model"]
    assert {(t, m) for t in DVC_TASKS for m in MODELS} <= set(zip(df.task, df.model))
    # dvc exp run -S works on the same project (after committing the lock, as a user would)
    subprocess.run(["git", "add", "-A"], cwd=proj, check=True)
    subprocess.run(["git", "commit", "-qm", "repro"], cwd=proj, check=True, env=_git_env())
    exp = subprocess.run(
        ["dvc", "exp", "run", "-S", "++robustness.max_clips=6", "-n", "fewer-clips"],
        cwd=proj,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert exp.returncode == 0, exp.stdout[-2000:] + exp.stderr[-2000:]
    assert "Running stage 'cell-fcn@synth_keywords-0'" in exp.stdout
    out = exp.stdout + exp.stderr
    assert "epoch 1/1 train_loss" not in out  # training is not redone: the cell resumes its finished checkpoint
    assert "resuming synth_keywords/fcn seed 0" in out
    shown = subprocess.run(["dvc", "exp", "show", "--json"], cwd=proj, capture_output=True, text=True, check=True)
    assert "fewer-clips" in shown.stdout


def test_prefect_flow_end_to_end(tmp_path: Path) -> None:
    from pipeline.flows.pipeline_flow import musicrep_pipeline

    proj = _project(tmp_path)
    state = musicrep_pipeline(params_path=str(proj / "params.yaml"), root=str(proj), return_state=True)
    metrics = state.result()
    assert set(metrics) == {f"{t}/{m}/seed0" for t in TASKS for m in MODELS}
    _check_outputs(proj)
    # task runs are named by stage, dataset, model and seed; the pipeline's log lines reach the API (the UI)
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, LogFilter, LogFilterFlowRunId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id])))
        names = {r.name for r in runs}
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[state.state_details.flow_run_id])))
    assert {f"cell {m}@{t} seed 0" for t in TASKS for m in MODELS} | {"download-synth_tags", "report"} <= names
    assert any("evaluated synth_tags/fcn seed0" in log.message for log in logs)


def test_dvc_stages_and_flow_cover_the_same_stage_functions() -> None:
    from pipeline.flows.pipeline_flow import FLOW_STEPS
    from pipeline.orchestration.stages import STAGES

    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    cli_cmds = [s["cmd"].split()[1] for s in stages.values()]
    assert list(dict.fromkeys(cli_cmds)) == list(STAGES) == list(FLOW_STEPS)  # same stages, same order


def test_committed_dvc_yaml_is_generated_from_the_pipeline_description() -> None:
    from pipeline.config.params import load_params
    from pipeline.orchestration.dag import render_dvc_yaml

    assert (REPO / "dvc.yaml").read_text() == render_dvc_yaml(load_params(REPO / "params.yaml")), (
        "dvc.yaml is stale: run `musicrep dag --write`"
    )


def test_dag_lists_the_stages_make_repro_runs_in_parallel() -> None:
    """`make repro` fans out the data stages per dataset and the cells, each list from the dag."""
    data = subprocess.run(["musicrep", "dag", "--data-targets"], cwd=REPO, capture_output=True, text=True, check=True)
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    tasks = ["corpus_tags", "synth_keywords", "synth_events"]  # the smoke grid (decision 47)
    assert data.stdout.splitlines() == [f"download@{t} segment@{t} features@{t}" for t in tasks]
    assert "features" in stages and "params" in stages
    cells = subprocess.run(["musicrep", "dag", "--targets"], cwd=REPO, capture_output=True, text=True, check=True)
    assert len(cells.stdout.split()) == 36 and cells.stdout.split()[0].startswith("cell-musicnn@")  # 12 models x 3 tasks
    make = (REPO / "Makefile").read_text()
    assert "dvc --wait-for-lock repro features" in make and "musicrep dag --targets" in make
    assert "dvc --wait-for-lock repro --single-item" in make  # concurrent DVC processes wait for the repo lock
