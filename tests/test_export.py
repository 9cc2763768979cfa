"""``musicrep export --format onnx``: onnxruntime reproduces PyTorch on random and real audio (~40 s).

Untrained tiny models are enough (the graph, not the weights, is what the export must get
right); they are packaged with :func:`pipeline.models.checkpoint.save_model` exactly as training does.
Real audio: FSDD recordings (the shared mirror, as in tests/test_own_datasets.py), resampled to
16 kHz and cut into the model's chunks; the tests that need them skip without the mirror.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from typer.testing import CliRunner

from pipeline.audio.chunking import eval_chunks
from pipeline.audio.io import read_audio
from pipeline.core.errors import UserError
from pipeline.inference.export import TOLERANCE, export_onnx
from pipeline.models.base import ModelConfig
from pipeline.models.checkpoint import save_model
from pipeline.models.zoo import build_model

LABELS = [str(d) for d in range(10)]


def _packaged(tmp_path: Path, variant: str, input_length: int = 16_000, multilabel: bool = False) -> tuple[torch.nn.Module, Path]:
    torch.manual_seed(0)
    model = build_model(ModelConfig(variant, len(LABELS), multilabel, width=0.125, input_length=input_length)).eval()
    with torch.no_grad():  # BatchNorm statistics away from (0, 1), as after training
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm1d | torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    directory = save_model(model, tmp_path / variant / "seed0", LABELS, {"task": "synth_keywords", "model_name": variant})
    return model, directory


def _fsdd_chunks(fsdd_dir: Path, length: int, n_files: int = 6) -> np.ndarray:
    files = sorted((fsdd_dir / "recordings").glob("*.wav"))[:: 3000 // n_files][:n_files]
    return np.stack([eval_chunks(read_audio(f), length, 1)[0] for f in files]).astype(np.float32)


def _onnx_logits(path: Path, waves: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["waveform"]
    assert [o.name for o in session.get_outputs()][:1] == ["logits"]
    return tuple(session.run(None, {"waveform": waves}))


def test_fcn_exports_through_the_cli_and_matches_pytorch(tmp_path: Path, fsdd_dir: Path, monkeypatch) -> None:
    from pipeline.cli.main import app

    model, directory = _packaged(tmp_path, "fcn")
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(app, ["export", str(directory), "--format", "onnx", "--out", "fcn.onnx", "--json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout[res.stdout.index("{") :])
    path = Path(info["path"])
    assert path.exists() and info["size_bytes"] == path.stat().st_size
    assert info["max_abs_diff"] <= TOLERANCE
    assert info["dynamic_length"] is False and info["length_note"]  # FCN's pools fit one length: the reason is given

    rng = np.random.default_rng(1)
    for waves in ((0.1 * rng.standard_normal((5, 16_000))).astype(np.float32), _fsdd_chunks(fsdd_dir, 16_000)):
        logits, embedding = _onnx_logits(path, waves)  # batch 5 and 6: the batch axis is dynamic (exported at 2)
        with torch.no_grad():
            ref = model(torch.from_numpy(waves)).numpy()
            ref_emb = model.embed(torch.from_numpy(waves)).numpy()
        assert logits.shape == (len(waves), len(LABELS))
        np.testing.assert_allclose(logits, ref, rtol=0, atol=TOLERANCE)
        np.testing.assert_allclose(embedding, ref_emb, rtol=0, atol=TOLERANCE)
        assert np.abs(ref).max() > 1e-3  # the comparison is not between two zeros

    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert json.loads(meta["musicrep.labels"]) == LABELS
    assert meta["musicrep.sample_rate"] == "16000" and meta["musicrep.input_length"] == "16000"
    assert meta["musicrep.dynamic_length"] == "false"


def test_a_dynamic_length_model_takes_any_length(tmp_path: Path, fsdd_dir: Path) -> None:
    model, directory = _packaged(tmp_path, "short_res", multilabel=True)
    from pipeline.models.checkpoint import load_model

    loaded, card = load_model(directory)
    result = export_onnx(loaded, card, tmp_path / "short_res.onnx")
    assert result.dynamic_length is True and result.length_note == ""
    real = np.concatenate([_fsdd_chunks(fsdd_dir, 16_000, 2).reshape(1, -1), np.zeros((1, 32_000), np.float32)])
    for waves in (real, real[:, :23_457]):
        logits, _ = _onnx_logits(result.path, waves)
        with torch.no_grad():
            np.testing.assert_allclose(logits, model(torch.from_numpy(waves)).numpy(), rtol=0, atol=TOLERANCE)


def test_export_errors_are_one_clear_line(tmp_path: Path) -> None:
    from pipeline.cli.main import app

    _, directory = _packaged(tmp_path, "samplecnn", input_length=19_683)
    res = CliRunner().invoke(app, ["export", str(directory), "--format", "tflite"])
    assert res.exit_code == 2 and "'tflite' is not one of 'onnx'" in res.output  # a choice: refused while parsing
    with pytest.raises(UserError, match=r"\.onnx"):
        from pipeline.models.checkpoint import load_model

        export_onnx(*load_model(directory), tmp_path / "model.bin")


def test_a_back_end_that_pools_frame_scores_exports_its_own_logits(tmp_path: Path) -> None:
    """gated_crnn's logits are attention-pooled frame scores, not a classifier on its embedding."""
    from pipeline.models.checkpoint import load_model

    model, directory = _packaged(tmp_path, "gated_crnn", multilabel=True)
    result = export_onnx(*load_model(directory), tmp_path / "gated.onnx", dynamic_length=False)
    waves = (0.1 * np.random.default_rng(2).standard_normal((3, 16_000))).astype(np.float32)
    logits, embedding = _onnx_logits(result.path, waves)
    with torch.no_grad():
        np.testing.assert_allclose(logits, model(torch.from_numpy(waves)).numpy(), rtol=0, atol=TOLERANCE)
        np.testing.assert_allclose(embedding, model.embed(torch.from_numpy(waves)).numpy(), rtol=0, atol=TOLERANCE)
