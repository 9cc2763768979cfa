"""``--set`` reaches every command that loads params: the Prefect flow and its deployment too.

The CLI callback resolves the project once (:class:`pipeline.config.project.Project`: root + ``--set``)
and passes it on; the flow receives the overrides as a flow parameter, so each task applies
them over the params file it reads. ``dag --write`` refuses them: DVC reads ``params.yaml``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pandas as pd
import yaml

from tests.conftest import tiny_overrides

REPO = Path(__file__).resolve().parents[1]


def _tiny_project(tmp_path: Path, epochs: int) -> Path:
    proj = tmp_path / "proj"
    proj.mkdir()
    params = {"profile": "smoke", **tiny_overrides(models=["fcn"], tasks=["synth_keywords"], n_clips=24, epochs=epochs)}
    params["robustness"] = {"enabled": False}
    (proj / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return proj


def _epochs_trained(proj: Path) -> int:
    return len(pd.read_csv(proj / "models" / "synth_keywords" / "fcn" / "seed0" / "history.csv"))


def test_set_reaches_the_prefect_flow(tmp_path: Path) -> None:
    """``musicrep --set train.epochs=1 flow`` trains one epoch where params.yaml says two."""
    proj = _tiny_project(tmp_path, epochs=2)
    run = subprocess.run(
        ["musicrep", "--project", str(proj), "--set", "train.epochs=1", "flow"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert _epochs_trained(proj) == 1
    resolved = yaml.safe_load((proj / "params.resolved.yaml").read_text())
    assert resolved["train"]["epochs"] == 1  # the flow's params task resolved the same values


def test_serve_stores_the_overrides_as_a_deployment_parameter(monkeypatch, tmp_path: Path) -> None:
    import pipeline.flows.serve as serve

    proj = _tiny_project(tmp_path, epochs=2)
    seen: dict = {}
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")  # no temporary server: serve() is replaced
    monkeypatch.setattr(serve.musicrep_pipeline, "serve", lambda **kw: seen.update(kw))
    from typer.testing import CliRunner

    from pipeline.cli.main import app

    result = CliRunner().invoke(app, ["--project", str(proj), "--set", "train.epochs=1", "serve", "--cron", "0 3 * * *"])
    assert result.exit_code == 0, result.output
    assert seen["parameters"]["overrides"] == {"train": {"epochs": 1}}
    assert seen["parameters"]["root"] == str(proj.resolve())


def test_dag_write_refuses_overrides(tmp_path: Path) -> None:
    proj = _tiny_project(tmp_path, epochs=1)
    run = subprocess.run(
        ["musicrep", "--project", str(proj), "--set", "grid.models=[fcn,crnn]", "dag", "--write"],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2
    assert "--set does not reach dvc.yaml" in run.stderr and "params.yaml" in run.stderr
    assert not (proj / "dvc.yaml").exists()
