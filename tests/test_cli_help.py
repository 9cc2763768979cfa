"""First contact with the command: ``--version`` and ``-h`` work everywhere ``--help`` does."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from pipeline import __version__
from pipeline.cli.main import app

runner = CliRunner()


@pytest.mark.fast
def test_version_prints_the_package_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"musicrep {__version__}"


@pytest.mark.fast
@pytest.mark.parametrize("args", [["-h"], ["train", "-h"], ["predict", "-h"]])
def test_dash_h_is_help(args: list[str]) -> None:
    short, long = runner.invoke(app, args), runner.invoke(app, [*args[:-1], "--help"])
    assert short.exit_code == 0, short.output
    assert "Usage:" in short.output and short.output == long.output


@pytest.mark.fast
def test_a_model_name_without_its_prefix_gets_a_did_you_mean(tmp_path) -> None:
    from pipeline.core.errors import UserError
    from pipeline.inference.predict import resolve_model_dir

    with pytest.raises(UserError, match="did you mean 'sota:mtat/musicnn'"):
        resolve_model_dir("mtat/musicnn", tmp_path)


@pytest.mark.fast
def test_hear_load_model_takes_sota_names(monkeypatch, tmp_path) -> None:
    import pipeline.hear as hear

    seen = []
    monkeypatch.setattr(hear, "resolve_model_dir", lambda spec, root: seen.append(spec) or tmp_path)
    monkeypatch.setattr(hear.HearModel, "from_packaged", classmethod(lambda cls, path: ("model", path)))
    assert hear.load_model("sota:mtat/musicnn") == ("model", tmp_path)
    assert seen == ["sota:mtat/musicnn"]


@pytest.mark.fast
def test_python_predict_and_embed_default_to_the_clis_bf16() -> None:
    import inspect

    from pipeline.inference.predict import embed, predict

    assert inspect.signature(predict).parameters["bf16"].default == "off"
    assert inspect.signature(embed).parameters["bf16"].default == "off"
