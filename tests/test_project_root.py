"""The project root travels as an argument: nothing reads the current directory behind the caller's back."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from pipeline.config.params import load_params
from pipeline.core.paths import Layout
from pipeline.data.registry import get_source

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.fast
def test_folder_source_reads_the_recorded_csv_of_its_project_not_of_the_cwd(tmp_path: Path, monkeypatch) -> None:
    """`musicrep download folder --labels-csv X` records X in the project's data/raw/folder/manifest.json;
    the source built for that project gives the same (multi-label) task from any working directory."""
    project, elsewhere = tmp_path / "proj", tmp_path / "elsewhere"
    table = tmp_path / "labels.csv"
    with open(table, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["path", "labels"])
        writer.writeheader()
        writer.writerows([{"path": "a.wav", "labels": "drums;bass"}, {"path": "b.wav", "labels": "voice"}])
    layout = Layout(project)
    layout.raw("folder").mkdir(parents=True)
    (layout.raw("folder") / "manifest.json").write_text(json.dumps({"labels_csv": str(table)}))
    params = load_params(REPO / "params.yaml")
    for cwd in (project, elsewhere):
        cwd.mkdir(exist_ok=True)
        monkeypatch.chdir(cwd)
        assert get_source("folder", params, layout).kind == "multilabel", f"from {cwd.name}"
