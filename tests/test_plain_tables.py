"""Table commands print untruncated plain text when stdout is not a terminal (pipeline.cli.tables)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from pipeline.cli.main import app
from pipeline.cli.tables import plain_table


def test_plain_table_cuts_nothing_and_aligns() -> None:
    text = plain_table(["name", "params"], [["sota:mtat/musicnn-with-a-long-name", "3,631,123"], ["x", "1"]], right={"params"})
    lines = text.splitlines()
    assert "sota:mtat/musicnn-with-a-long-name  3,631,123" in lines[2] and lines[3].endswith("        1")
    assert "…" not in text


def test_pretrained_list_and_models_are_whole_when_piped() -> None:
    runner = CliRunner()
    listing = json.loads(runner.invoke(app, ["pretrained", "list", "--json"]).stdout)
    text = runner.invoke(app, ["pretrained", "list"], env={"COLUMNS": "80"}).stdout
    assert "…" not in text and "┃" not in text
    for r in listing:
        assert r["name"] in text and (not r["params"] or f"{r['params']:,}" in text)
    models = runner.invoke(app, ["models"], env={"COLUMNS": "80"}).stdout
    assert "…" not in models and "reference_params" in models and "input_length" in models
