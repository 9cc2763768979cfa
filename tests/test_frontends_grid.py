"""The four learnable front-ends as grid cells: ``params --check``, train, evaluate (issue 22)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from pipeline.core.paths import Layout
from pipeline.orchestration import stages
from tests.helpers import run_cli

REPO = Path(__file__).resolve().parents[1]
CELLS = ["leaf+short_cnn", "sincnet+short_cnn", "pcen+fcn", "trainable_mel+fcn"]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """synth_keywords (tiny) downloaded and segmented once; one short epoch per cell."""
    from pipeline.config.params import load_params
    from tests.conftest import tiny_overrides

    overrides = tiny_overrides(tasks=["synth_keywords"], models=CELLS, n_clips=36, epochs=1)
    overrides["train"]["steps_per_epoch"] = 2
    overrides["robustness"] = {"enabled": False}  # the cell still writes its clean point; noise is tested elsewhere
    params = load_params(REPO / "params.yaml", overrides=overrides)
    layout = Layout(tmp_path_factory.mktemp("frontends"))
    stages.download("synth_keywords", params, layout)
    stages.segment("synth_keywords", params, layout)
    stages.features("synth_keywords", params, layout)  # nothing to cache: every front-end here learns
    return params, layout


def test_params_check_accepts_the_four_cells(tmp_path: Path, monkeypatch, capsys) -> None:
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["grid"]["models"] = CELLS
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    code, err = run_cli(monkeypatch, capsys, "params", str(path), "--check")
    assert code == 0, err
    raw["grid"]["models"] = ["leaf+samplecnn"]  # a waveform back-end cannot take LEAF's map
    path.write_text(yaml.safe_dump(raw))
    code, err = run_cli(monkeypatch, capsys, "params", str(path), "--check")
    assert code == 2 and "leaf" in err


@pytest.mark.parametrize("model", CELLS)
def test_learnable_frontend_cell_trains_and_evaluates(prepared, model) -> None:
    params, layout = prepared
    metrics = stages.cell("synth_keywords", model, params, layout, seed=0)
    assert 0.0 <= metrics["test/accuracy"] <= 1.0
    mdir = layout.metrics("synth_keywords", model, 0)
    assert json.loads((mdir / "eval.json").read_text())["test/accuracy"] == metrics["test/accuracy"]
    assert any(mdir.glob("robustness.*"))  # the clean point
