"""The project carries its MLflow store: runs of a project go to its own ``mlflow.db`` from any
folder, ``MLFLOW_TRACKING_URI`` is a user override only, and the command line sets no environment."""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from typer.testing import CliRunner

from pipeline.cli.main import app
from pipeline.config.params import load_params
from pipeline.config.project import Project
from pipeline.tracking import runs as tracking

REPO = Path(__file__).resolve().parents[1]


def test_a_project_run_from_another_folder_logs_into_its_own_store(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # tests/conftest.py points every test at one store
    monkeypatch.delenv("MUSICREP_ARTIFACT_ROOT", raising=False)
    proj, elsewhere = tmp_path / "proj", tmp_path / "elsewhere"
    proj.mkdir(), elsewhere.mkdir()
    (proj / "params.yaml").write_text(yaml.safe_dump(yaml.safe_load((REPO / "params.yaml").read_text())))
    monkeypatch.chdir(elsewhere)
    project = Project(proj.resolve())
    assert project.tracking_uri == f"sqlite:///{proj.resolve() / 'mlflow.db'}"

    run = tracking.TrainingRun("store_task", "fcn", load_params(proj / "params.yaml"), root=project.root)
    tracking.log_to_run(run.run_id, {"test/accuracy": 0.5}, root=project.root)
    run.end()
    assert (proj / "mlflow.db").exists() and not (elsewhere / "mlflow.db").exists()
    experiment = tracking.client(project.root).get_experiment_by_name("store_task")
    assert experiment.artifact_location == f"{(proj / 'mlartifacts').resolve().as_uri()}/store_task"

    result = CliRunner().invoke(app, ["--project", str(proj), "compare", "--per-seed", "--format", "csv"])
    assert result.exit_code == 0, result.output
    assert "store_task" in result.stdout and "0.5" in result.stdout
    assert "MLFLOW_TRACKING_URI" not in os.environ  # the command hands the URI to the client, not to the environment
    assert not (elsewhere / "mlflow.db").exists()


def test_the_environment_variable_overrides_the_project_store(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5001")
    monkeypatch.delenv("MUSICREP_ARTIFACT_ROOT", raising=False)
    assert Project(tmp_path).tracking_uri == "http://127.0.0.1:5001"
    assert tracking.artifact_root(tmp_path) is None  # a tracking server keeps the artifacts in its own root
