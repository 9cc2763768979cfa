"""``pipeline.hear``: the HEAR 2021 API, checked by HEAR's own validator (``hearvalidator``) (~20 s).

The model is an untrained tiny keyword FCN packaged like a trained one (``models/TASK/fcn/seed0``
layout); the API's shapes, dtypes and timestamps do not depend on the weights.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

import pipeline.hear as hear
from pipeline.core.errors import UserError
from pipeline.models.base import ModelConfig
from pipeline.models.checkpoint import save_model
from pipeline.models.zoo import build_model


@pytest.fixture(scope="module")
def packaged(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = build_model(ModelConfig("fcn", 12, False, width=0.125, input_length=16_000))
    root = tmp_path_factory.mktemp("hear")
    return save_model(model, root / "models" / "synth_keywords" / "fcn" / "seed0", [f"k{i}" for i in range(12)])


@pytest.fixture()
def tensorflow_stand_in(monkeypatch):
    """A stand-in ``tensorflow`` module: hearvalidator imports TensorFlow at module level.

    TensorFlow is not installed (pyproject.toml keeps it out of the lock: the model is PyTorch).
    The validator only uses ``tf.Module`` (an ``isinstance`` check that must say "not TF") and
    ``tf.device`` / ``tf.random`` on TF models, which this is not; the stand-in provides those.
    """
    tf = types.ModuleType("tensorflow")
    tf.Module = type("Module", (), {})
    tf.device = lambda name: (_ for _ in ()).throw(AssertionError("tf.device called for a PyTorch model"))
    monkeypatch.setitem(sys.modules, "tensorflow", tf)
    monkeypatch.delitem(sys.modules, "hearvalidator.validate", raising=False)


def test_hearvalidator_accepts_the_module(packaged: Path, tensorflow_stand_in, capsys) -> None:
    from hearvalidator.validate import ValidateModel

    ValidateModel("pipeline.hear", str(packaged), device="cpu")()
    out = capsys.readouterr().out
    assert "scene_embedding_size: 8" in out and "Received torch Module" in out


def test_a_batch_of_2_5_second_clips_follows_the_hear_rules(packaged: Path) -> None:
    model = hear.load_model(str(packaged))
    assert isinstance(model.sample_rate, int) and model.sample_rate == 16_000
    assert isinstance(model.scene_embedding_size, int) and isinstance(model.timestamp_embedding_size, int)
    audio = torch.rand(3, 40_000) * 2 - 1  # 2.5 s

    scene = hear.get_scene_embeddings(audio, model)
    assert scene.shape == (3, model.scene_embedding_size) and scene.dtype == torch.float32 and scene.device == audio.device

    emb, stamps = hear.get_timestamp_embeddings(audio, model)
    assert emb.dtype == torch.float32 and stamps.dtype == torch.float32
    assert emb.shape == (3, 51, model.timestamp_embedding_size) and stamps.shape == (3, 51)  # 0, 50, ..., 2500 ms
    np.testing.assert_allclose(stamps[0].numpy(), np.arange(51) * 50.0)
    assert torch.equal(stamps[0], stamps[2])
    # each sound gets its own embeddings; one input centred on 1 s is what the network embeds there
    assert not torch.allclose(emb[0], emb[1])
    centred = audio[:, 8_000:24_000]
    with torch.no_grad():
        np.testing.assert_allclose(emb[:, 20].numpy(), model.network.embed(centred).numpy(), atol=1e-5)
        # the scene embedding is the mean over the tiling inputs: 0-1 s, 1-2 s and the end-aligned 1.5-2.5 s
        tiles = torch.stack([audio[:, s : s + 16_000] for s in (0, 16_000, 24_000)], 1).reshape(-1, 16_000)
        np.testing.assert_allclose(scene.numpy(), model.network.embed(tiles).reshape(3, 3, -1).mean(1).numpy(), atol=1e-5)


def test_any_length_and_the_model_file_forms(packaged: Path, monkeypatch) -> None:
    model = hear.load_model(str(packaged / "model.pt"))  # the weights file itself, as HEAR kits pass it
    for n in (1, 799, 800, 16_001):
        emb, stamps = hear.get_timestamp_embeddings(torch.zeros(2, n), model)
        assert emb.shape[:2] == stamps.shape == (2, n // 800 + 1) and float(stamps.max()) <= 1000 * n / 16_000
        assert hear.get_scene_embeddings(torch.zeros(2, n), model).shape == (2, model.scene_embedding_size)
    monkeypatch.chdir(packaged.parents[3])
    assert hear.load_model("synth_keywords/fcn").input_length == 16_000


def test_pretrained_names_plug_in_through_a_loader(packaged: Path, monkeypatch) -> None:
    with pytest.raises(UserError, match="no pretrained loader for 'other'"):
        hear.load_model("other:some-model")
    with pytest.raises(UserError, match="'sota:some-model' is not a published reference model"):
        hear.load_model("sota:some-model")  # sota: names are the catalogue's (issue 29), checked before any fetch
    monkeypatch.setattr(hear, "_PRETRAINED", {})
    hear.register_pretrained("sota", lambda name: hear.HearModel.from_packaged(packaged) if name == "x" else None)
    assert hear.load_model("sota:x").scene_embedding_size == 8
