"""The CLI finds its project once, takes --set overrides anywhere, and keeps tracebacks behind --debug."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.cli.main import hoist_global_options
from pipeline.config.project import find_root, parse_overrides
from pipeline.core.errors import UserError
from tests.conftest import full_repo_params

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.fast
def test_global_options_are_hoisted_in_order() -> None:
    args = ["train", "synth_tags", "fcn", "--set", "train.epochs=1", "--debug", "--project=/p", "--seed", "2"]
    assert hoist_global_options(args) == [
        "--set",
        "train.epochs=1",
        "--debug",
        "--project=/p",
        "train",
        "synth_tags",
        "fcn",
        "--seed",
        "2",
    ]
    assert hoist_global_options(["predict", "--", "--set"]) == ["predict", "--", "--set"]


@pytest.mark.fast
def test_set_overrides_parse_as_yaml_and_bad_ones_are_one_line() -> None:
    assert parse_overrides(["train.epochs=2", "grid.models=[fcn, hcnn]", "train.patience=null"]) == {
        "train": {"epochs": 2, "patience": None},
        "grid": {"models": ["fcn", "hcnn"]},
    }
    for bad in ("train.epochs", "=3", "train..x=1"):
        with pytest.raises(UserError, match="--set"):
            parse_overrides([bad])


@pytest.mark.fast
def test_project_is_the_nearest_folder_with_params(tmp_path: Path) -> None:
    (tmp_path / "params.yaml").write_text("profile: smoke\n")
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    assert find_root(start=deep) == tmp_path.resolve()
    with pytest.raises(UserError, match="--project"):
        find_root(explicit=deep)


def test_train_with_set_and_predict_from_another_folder(tmp_path: Path) -> None:
    proj = tmp_path / "proj"
    proj.mkdir()
    params = full_repo_params()
    params["datasets"]["synth_keywords"] = {"n_clips": 48, "clip_seconds": 1.0}
    params["train"].update({"width": 0.125, "batch_size": 8, "steps_per_epoch": 2})
    (proj / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MUSICREP_ARTIFACT_ROOT")}

    def musicrep(*args: str) -> subprocess.CompletedProcess:  # with the project's own MLflow store
        return subprocess.run(
            [sys.executable, "-m", "pipeline", *args], cwd=elsewhere, capture_output=True, text=True, timeout=600, env=env
        )

    for cmd in (
        ["download", "synth_keywords"],
        ["segment", "synth_keywords"],
        ["train", "synth_keywords", "fcn", "--set", "train.epochs=1"],
    ):
        res = musicrep(*cmd, "--project", str(proj))
        assert res.returncode == 0, f"{cmd}: {res.stderr[-2000:]}"
    history = (proj / "models" / "synth_keywords" / "fcn" / "seed0" / "history.csv").read_text().splitlines()
    assert len(history) == 2  # header + the one epoch asked for on the command line
    assert (proj / "mlflow.db").exists() and not (elsewhere / "mlflow.db").exists()  # the project's own store
    wav = next((proj / "data" / "raw" / "synth_keywords").rglob("*.wav"))
    shutil.copy(wav, elsewhere / "clip.wav")
    res = musicrep("predict", "clip.wav", "--model", "synth_keywords/fcn", "--project", str(proj), "--json")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "clip.wav" in res.stdout


@pytest.fixture()
def restore_loggers():
    """cli.main() configures the pipeline/musicrep loggers for the process; undo it for the next tests."""
    import logging

    saved = {
        name: (logging.getLogger(name).handlers[:], logging.getLogger(name).level, logging.getLogger(name).propagate)
        for name in ("pipeline", "musicrep")
    }
    yield
    for name, (handlers, level, propagate) in saved.items():
        logger = logging.getLogger(name)
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate


def test_unexpected_errors_are_one_line_unless_debug(tmp_path: Path, monkeypatch, capsys, restore_loggers) -> None:
    from pipeline.cli import main as cli
    from pipeline.orchestration import stages

    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text())

    def broken(*_a, **_k):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(stages, "report", broken)
    monkeypatch.setattr(sys, "argv", ["musicrep", "report", "--project", str(tmp_path)])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "unexpected RuntimeError: disk on fire" in err and "--debug" in err and "Traceback" not in err
    monkeypatch.setattr(sys, "argv", ["musicrep", "report", "--project", str(tmp_path), "--debug"])
    with pytest.raises(RuntimeError, match="disk on fire"):
        cli.main()


def test_params_diff_shows_only_what_differs_from_the_profile(tmp_path: Path) -> None:
    (tmp_path / "params.yaml").write_text("profile: smoke\ntrain: {epochs: 3}\n")
    res = subprocess.run(
        [sys.executable, "-m", "pipeline", "params", "--diff", "--project", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines() == ["train.epochs: 8 -> 3"]
