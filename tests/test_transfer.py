"""Fine-tune / transfer variants: ``variants: {NAME: {model, init, freeze}}`` (pipeline/models/transfer.py).

The init is the published MTAT musicnn from the project's mirror (``shared/data/pretrained``);
the FSDD cell uses the FSDD mirror (conftest ``fsdd_dir``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from pipeline.core.errors import UserError
from tests.conftest import SHARED

REPO = Path(__file__).resolve().parents[1]
MIRROR = SHARED / "data" / "pretrained"
INIT = "sota:mtat/musicnn"


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory) -> Path:
    """A models folder holding the fetched MTAT musicnn (set as ``MUSICREP_PRETRAINED_DIR``)."""
    if not (MIRROR / "manifest.json").exists():
        pytest.skip(f"no mirror of the published reference models at {MIRROR}")
    from pipeline.models.pretrained import fetch

    root = tmp_path_factory.mktemp("pretrained")
    fetch(INIT, MIRROR, root)
    return root


def _musicnn(n_classes: int):
    from pipeline.models.base import ModelConfig
    from pipeline.models.zoo import build_model

    return build_model(ModelConfig("musicnn", n_classes, n_classes == 50, input_length=16_000))


def test_same_labels_copy_everything_and_new_labels_replace_the_head(models_dir: Path, monkeypatch) -> None:
    from pipeline.models.pretrained import load_packaged_or_pretrained
    from pipeline.models.pretrained_catalog import TAGS
    from pipeline.models.transfer import apply_init

    monkeypatch.setenv("MUSICREP_PRETRAINED_DIR", str(models_dir))
    source, _ = load_packaged_or_pretrained(INIT)
    same = _musicnn(50)
    record = apply_init(same, list(TAGS["mtat"]), INIT)
    assert record["head"] == "kept (same labels)" and record["init_sha256"].startswith("690ace3b")
    assert all(torch.equal(v, source.state_dict()[k]) for k, v in same.state_dict().items())
    digits = _musicnn(10)
    fresh_head = {k: v.clone() for k, v in digits.state_dict().items() if k.startswith("backend.head.")}
    record = apply_init(digits, [str(d) for d in range(10)], INIT)
    assert record["head"] == "replaced (50 -> 10 outputs)" and record["freeze"] == "none"
    state = digits.state_dict()
    assert all(torch.equal(state[k], v) for k, v in fresh_head.items())  # the new model's own head
    assert torch.equal(state["backend.block1.conv.weight"], source.state_dict()["backend.block1.conv.weight"])


def test_frozen_backbone_stays_frozen_batch_norm_included(models_dir: Path, monkeypatch) -> None:
    from pipeline.models.transfer import apply_init

    monkeypatch.setenv("MUSICREP_PRETRAINED_DIR", str(models_dir))
    model = _musicnn(10)
    record = apply_init(model, [str(d) for d in range(10)], INIT, freeze="backbone")
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("backend.head.") for n in trainable)
    assert int(record["frozen_params"]) > int(record["trainable_params"]) > 0
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(2):
        loss = torch.nn.functional.cross_entropy(model(torch.randn(4, 16_000)), torch.tensor([0, 1, 2, 3]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = model.state_dict()
    moved = {k for k in after if not torch.equal(after[k], before[k])}
    assert moved and all(k.startswith("backend.head.") for k in moved), sorted(moved)[:5]  # running stats too
    assert model.backend.input_norm.training is False and model.backend.head.training is True


def test_frontend_freeze_and_bad_settings(models_dir: Path, monkeypatch) -> None:
    from pipeline.models.transfer import apply_init, init_dependencies

    monkeypatch.setenv("MUSICREP_PRETRAINED_DIR", str(models_dir))
    model = _musicnn(10)
    apply_init(model, [str(d) for d in range(10)], INIT, freeze="frontend")
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen and all(n.startswith(("backend.front.", "backend.input_norm.")) for n in frozen)
    assert model.backend.block1.conv.weight.requires_grad
    with pytest.raises(UserError, match="needs an init"):
        apply_init(_musicnn(10), ["a"] * 10, None, freeze="backbone")
    from pipeline.models.base import ModelConfig
    from pipeline.models.zoo import build_model

    with pytest.raises(UserError, match="does not fit"):
        apply_init(build_model(ModelConfig("musicnn", 10, False, width=0.5, input_length=16_000)), ["a"] * 10, INIT)
    assert "pipeline/models/pretrained_catalog.py" in init_dependencies(INIT) and init_dependencies(None) == []


def test_dvc_cell_of_an_init_variant_depends_on_the_init() -> None:
    from pipeline.config.params import load_params
    from pipeline.orchestration.dag import dvc_stages

    params = load_params(
        REPO / "params.yaml",
        overrides={"variants": {"musicnn_mtat": {"model": "musicnn", "init": INIT}}, "grid": {"models": ["musicnn_mtat"]}},
    )
    stage = dvc_stages(params)["cell-musicnn_mtat"]
    assert "pipeline/models/pretrained_catalog.py" in stage["deps"] and "pipeline/models/transfer.py" in stage["deps"]


@pytest.mark.slow
def test_finetune_variant_runs_as_a_cell_on_fsdd(models_dir: Path, fsdd_dir: Path, tmp_path: Path) -> None:
    """``{model: musicnn, init: sota:mtat/musicnn}`` as a grid cell on FSDD: init named in the card."""
    proj = tmp_path / "proj"
    proj.mkdir()
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params.update(
        {
            "grid": {**params.get("grid", {}), "tasks": ["fsdd"], "models": ["musicnn_mtat"], "seeds": [0]},
            "variants": {"musicnn_mtat": {"model": "musicnn", "init": INIT}},
            "train": {**params.get("train", {}), "epochs": 1, "steps_per_epoch": 4, "batch_size": 8},
            "evaluate": {**params.get("evaluate", {}), "n_chunks": 1},
            "robustness": {**params.get("robustness", {}), "enabled": False},
        }
    )
    (proj / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {**__import__("os").environ, "MUSICREP_PRETRAINED_DIR": str(models_dir)}
    for cmd in (
        ["download", "fsdd", "--mirror", str(fsdd_dir)],
        ["segment", "fsdd"],
        ["features", "fsdd"],
        ["cell", "fsdd", "musicnn_mtat"],
    ):
        res = subprocess.run(
            [sys.executable, "-m", "pipeline", *cmd], cwd=proj, env=env, capture_output=True, text=True, timeout=1800
        )
        assert res.returncode == 0, f"{cmd}: {res.stderr[-3000:]}"
    card = json.loads((proj / "models" / "fsdd" / "musicnn_mtat" / "seed0" / "model.json").read_text())
    init = card["metadata"]["init"]
    assert init["init"] == INIT and init["head"] == "replaced (50 -> 10 outputs)" and init["init_sha256"].startswith("690ace3b")
    assert card["labels"] == [str(d) for d in range(10)]


@pytest.mark.slow  # about 30 s: musicnn at width 1.0
def test_train_records_the_init_in_the_card_and_mlflow(models_dir: Path, tmp_path: Path, monkeypatch) -> None:
    """A short training of ``{model: musicnn, init: sota:mtat/musicnn, freeze: backbone}`` on synthetic keywords."""
    from pipeline.config.params import load_params
    from pipeline.core.paths import Layout
    from pipeline.models.checkpoint import read_card, read_run_id
    from pipeline.orchestration import stages
    from pipeline.tracking.runs import client
    from tests.conftest import tiny_overrides

    monkeypatch.setenv("MUSICREP_PRETRAINED_DIR", str(models_dir))
    overrides = tiny_overrides(tasks=["synth_keywords"], models=["mus_mtat"], n_clips=24)
    overrides["variants"] = {"mus_mtat": {"model": "musicnn", "init": INIT, "freeze": "backbone"}}
    overrides["features"] = {"enabled": False}
    overrides["train"] = {**overrides["train"], "steps_per_epoch": 2}
    params = load_params(REPO / "params.yaml", overrides=overrides)
    layout = Layout(tmp_path)
    stages.download("synth_keywords", params, layout)
    stages.segment("synth_keywords", params, layout)
    model_dir = stages.train("synth_keywords", "mus_mtat", params, layout, resume=False)
    card = read_card(model_dir)
    init = card["metadata"]["init"]
    assert init["init"] == INIT and init["freeze"] == "backbone" and card["config"]["width"] == 1.0
    run = client(layout.root).get_run(read_run_id(model_dir, card))
    assert run.data.tags["init.init"] == INIT and run.data.tags["init.init_sha256"] == init["init_sha256"]
