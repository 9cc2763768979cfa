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
