"""`musicrep rehearse`: the paper profile on miniature mirrors over 127.0.0.1 (issue 27, deliverable 1).

The default tier runs one cell of the paper grid in-process on the rehearsal's own mirrors and
params (download through the mirror, segment, features, train, evaluate, robustness); the slow tier
runs `musicrep rehearse` through DVC, one cell and the whole grid.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from pipeline.config.params import load_params
from pipeline.core.paths import Layout
from pipeline.orchestration import stages
from pipeline.orchestration.rehearse import build_mirrors, project_params, serve


@pytest.mark.fast
def test_one_paper_cell_on_the_miniature_mirrors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mirror, audio, pins = build_mirrors(tmp_path / "mirrors")
    monkeypatch.setenv("MUSICREP_CHECKSUM_PINS", str(pins))
    layout = Layout(tmp_path / "project")
    with serve(mirror) as url:
        path = tmp_path / "params.yaml"
        path.write_text(yaml.safe_dump(project_params(url, audio, ["speech_commands"], ["fcn"])))
        params = load_params(path)
        assert params.profile == "paper" and params.runtime.device == "cpu" and params.train.width == 1.0
        for step in (stages.download, stages.segment, stages.features):
            step("speech_commands", params, layout)
    result = stages.cell("speech_commands", "fcn", params, layout)
    assert result["test/n_clips"] == 2  # evaluate.max_clips
    assert result["params"] == 446_757  # the paper width's parameter count for 35 words (docs/spec.md)
    card = json.loads((layout.model("speech_commands", "fcn") / "model.json").read_text())
    assert card["config"]["input_length"] == 6_400  # capped at the clip (the miniature words last 0.4 s), not 464,000
    recorded = json.loads((layout.metrics("speech_commands", "fcn") / "eval.json").read_text())
    assert recorded["split_source"].startswith("publisher lists: validation_list.txt")  # issue 27, deliverable 7
    assert recorded["vocabulary_source"].startswith("the 35 words") and "split_source" not in result  # result: numbers only
    robustness = pd.read_csv(layout.metrics("speech_commands", "fcn") / "robustness.csv")
    assert len(robustness[["perturbation", "level"]].drop_duplicates()) == 15  # clean + the paper's 14 points
    assert set(robustness.loc[robustness["perturbation"] == "background_noise", "noise_source"]) == {"speech_commands"}


@pytest.mark.slow
@pytest.mark.parametrize("args", [["--tasks", "speech_commands", "--models", "fcn"], []], ids=["one-cell", "paper-grid"])
def test_musicrep_rehearse_through_dvc(tmp_path: Path, args: list[str]) -> None:
    out = tmp_path / "rehearsal"
    subprocess.run(["musicrep", "rehearse", "--out", str(out), *args], check=True, timeout=3600)
    project = out / "project"
    cells = sorted(project.glob("metrics/*/*/seed0/eval.json"))
    assert len(cells) == (1 if args else 33)
    assert (project / "reports" / "index.html").exists()
    status = subprocess.run(["dvc", "status"], cwd=project, capture_output=True, text=True, check=True)
    assert "audio-manifest" in status.stdout or "up to date" in status.stdout
