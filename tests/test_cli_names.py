"""Names, choices and metavars on the command line: a typo in a task or model name is one line with a
"did you mean" before any data is read or written; fixed sets are choices; the help shows plain metavars."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from pipeline.cli.main import app
from pipeline.config.params import load_params
from pipeline.orchestration.params_check import check_names
from tests.helpers import run_cli

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    return tmp_path


@pytest.mark.fast
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "synth_tag", "fcn"], "unknown task 'synth_tag'; did you mean 'synth_tags'?"),
        (["train", "synth_tags", "fnc"], "unknown model 'fnc'; did you mean 'fcn'?"),
        (["cell", "synth_tagz", "fcn"], "unknown task 'synth_tagz'; did you mean 'synth_tags'?"),
        (["train", "synth_tags", "sota:mtat/musicnn"], "sota:mtat/musicnn is a published model"),
        (["evaluate", "synth_tags", "mtat/musicnn"], "unknown model 'mtat/musicnn'; did you mean 'sota:mtat/musicnn'?"),
        (["evaluate", "synth_tags", "sota:mtat/musicn"], "did you mean 'sota:mtat/musicnn'?"),
        (["evaluate", "synth_tags", "fcn", "--on", "mtatt"], "unknown --on dataset 'mtatt'; did you mean 'mtat'?"),
        (["robustness", "synth_tags", "fcnn"], "unknown model 'fcnn'; did you mean 'fcn'?"),
        (["segment", "synth_tag"], "unknown dataset 'synth_tag'; did you mean 'synth_tags'?"),
        (["features", "synth_keyword"], "unknown dataset 'synth_keyword'; did you mean 'synth_keywords'?"),
        (["download", "speech_comands"], "unknown dataset 'speech_comands'; did you mean 'speech_commands'?"),
        (["probe", "synth_tag", "--model", "synth_keywords/fcn"], "unknown dataset 'synth_tag'; did you mean 'synth_tags'?"),
    ],
)
def test_an_unknown_name_is_refused_before_any_io(project: Path, argv: list[str], message: str, monkeypatch, capsys) -> None:
    code, err = run_cli(monkeypatch, capsys, "--project", str(project), *argv)
    assert code == 2 and message in err, err
    assert [p.name for p in project.iterdir()] == ["params.yaml"]  # nothing was read or written


@pytest.mark.fast
def test_params_check_suggests_the_closest_task_and_model(project: Path, monkeypatch, capsys) -> None:
    """Issue 29: ``params --check`` answers an unknown ``grid.tasks`` entry with a "did you mean", as an unknown model."""
    raw = yaml.safe_load((project / "params.yaml").read_text())
    raw["grid"] |= {"tasks": ["synth_tagz"], "models": ["fnc"]}
    (project / "params.yaml").write_text(yaml.safe_dump(raw))
    code, err = run_cli(monkeypatch, capsys, "--project", str(project), "params", "--check")
    assert code == 2 and "grid.tasks: unknown dataset 'synth_tagz'; did you mean 'synth_tags'?" in err, err
    tasks, models = check_names(load_params(project / "params.yaml"), project)
    assert tasks.startswith("grid.tasks: unknown dataset 'synth_tagz'; did you mean 'synth_tags'? Known: "), tasks
    assert models.startswith("grid.models: unknown model variant 'fnc'") and models.endswith("did you mean 'fcn'?"), models


@pytest.mark.fast
@pytest.mark.parametrize(
    ("argv", "option"),
    [
        (["predict", "x.wav", "-m", "m", "--device", "gpu"], "--device"),
        (["predict", "x.wav", "-m", "m", "--aggregate", "median"], "--aggregate"),
        (["embed", "x.wav", "-m", "m", "-o", "e.npy", "--bf16", "yes"], "--bf16"),
        (["compare", "--format", "xml"], "--format"),
        (["params", "--init", "big"], "--init"),
    ],
)
def test_a_value_outside_a_fixed_set_is_a_usage_error(argv: list[str], option: str) -> None:
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 2 and f"Invalid value for '{option}'" in result.output, result.output


@pytest.mark.fast
@pytest.mark.parametrize("command", [[], ["train"], ["predict"], ["compare"], ["pretrained", "fetch"], ["flow"]])
def test_help_shows_plain_metavars(command: list[str]) -> None:
    text = CliRunner().invoke(app, [*command, "--help"], terminal_width=200).output
    assert "Usage:" in text and "<" not in text.replace("<dataset>/<model>", ""), text  # no <bool>, <str>, <list[Path]>
    expected = {"train": "TASK", "predict": "auto|cpu|cuda", "compare": "table|csv|json|markdown", "flow": "thread|dask|ray"}
    assert expected.get(command[0] if command else "", "") in text
