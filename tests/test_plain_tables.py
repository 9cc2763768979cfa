"""Table commands print untruncated plain text when stdout is not a terminal (pipeline.cli.tables)."""

from __future__ import annotations

from typer.testing import CliRunner

from pipeline.cli.main import app
from pipeline.cli.tables import plain_table


def test_plain_table_cuts_nothing_and_aligns() -> None:
    text = plain_table(["name", "params"], [["sota:mtat/musicnn-with-a-long-name", "3,631,123"], ["x", "1"]], right={"params"})
    lines = text.splitlines()
    assert "sota:mtat/musicnn-with-a-long-name  3,631,123" in lines[2] and lines[3].endswith("        1")
    assert "…" not in text


def test_pretrained_list_and_models_are_whole_when_piped() -> None:
    import re

    from pipeline.models.pretrained_catalog import CATALOG

    runner = CliRunner()
    text = runner.invoke(app, ["pretrained", "list"], env={"COLUMNS": "80"}).stdout
    assert "…" not in text and "┃" not in text and "fetchable" in text
    assert all(name in text for name in CATALOG) and re.search(r"\b\d{1,3},\d{3},\d{3}\b", text)  # 3,631,... whole
    frontends = runner.invoke(app, ["models", "--frontends"], env={"COLUMNS": "80"}).stdout  # the same printer as `models`
    assert "…" not in frontends and "cacheable" in frontends and "front-ends (defaults; swap in with FRONT+BACK" in frontends
