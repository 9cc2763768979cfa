"""``train.bf16``: the auto/on/off decision, CPU autocast, and fp32 losses and checkpoints."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.models import inference
from pipeline.models.inference import autocast_for, cpu_bf16_support, use_bf16, with_autocast
from pipeline.models.zoo import VARIANTS

REPO = Path(__file__).resolve().parents[1]
CPU, CUDA = torch.device("cpu"), torch.device("cuda")


@pytest.fixture()
def native_bf16(monkeypatch):
    """Pretend the CPU has (``True``) or lacks (``False``) native bf16."""

    def set_support(present: bool) -> None:
        monkeypatch.setattr(inference, "cpu_bf16_support", lambda: "avx512_bf16" if present else None)

    return set_support


def _with_cpu_bf16(monkeypatch, name: str, value: bool) -> None:
    monkeypatch.setitem(VARIANTS, name, dataclasses.replace(VARIANTS[name], cpu_bf16=value))


@pytest.mark.parametrize("choice", ["on", True])
def test_on_forces_bf16_on_cpu_and_cuda(choice, native_bf16) -> None:
    native_bf16(False)
    assert use_bf16(choice, CPU, "fcn") and use_bf16(choice, CUDA, "fcn")


@pytest.mark.parametrize("choice", ["off", False])
def test_off_forces_fp32(choice, native_bf16, monkeypatch) -> None:
    native_bf16(True)
    _with_cpu_bf16(monkeypatch, "fcn", True)
    assert not use_bf16(choice, CPU, "fcn") and not use_bf16(choice, CUDA, "fcn")


def test_auto_is_bf16_on_cuda_for_every_variant(native_bf16) -> None:
    native_bf16(False)
    assert all(use_bf16("auto", CUDA, name) for name in VARIANTS)


def test_auto_on_cpu_needs_native_bf16_and_the_variants_measured_default(native_bf16, monkeypatch) -> None:
    _with_cpu_bf16(monkeypatch, "fcn", True)
    _with_cpu_bf16(monkeypatch, "musicnn", False)
    native_bf16(True)
    assert use_bf16("auto", CPU, "fcn") and use_bf16("auto", CPU, "mfcc+fcn")  # a swapped front-end keeps the back-end's
    assert not use_bf16("auto", CPU, "musicnn")
    assert not use_bf16("auto", CPU, "no_such_model")
    native_bf16(False)
    assert not use_bf16("auto", CPU, "fcn")


def test_other_devices_and_bad_choices() -> None:
    assert not use_bf16("on", torch.device("meta"), "fcn")
    with pytest.raises(ValueError, match="bf16 must be one of"):
        use_bf16("maybe", CPU, "fcn")


def test_cpu_support_falls_back_to_proc_cpuinfo(monkeypatch) -> None:
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists():
        pytest.skip("no /proc/cpuinfo")
    flags = set(cpuinfo.read_text(errors="replace").split())
    probed = cpu_bf16_support()
    cpu_bf16_support.cache_clear()
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported", raising=False)
    try:
        fallback = cpu_bf16_support()
    finally:
        cpu_bf16_support.cache_clear()
    expected = "amx_bf16" if "amx_bf16" in flags else "avx512_bf16" if "avx512_bf16" in flags else None
    if not torch.backends.mkldnn.is_available():
        expected = None
    assert fallback == expected
    assert probed in ("amx_bf16", "avx512_bf16", None)


def test_autocast_for_cpu_runs_convolutions_in_bf16_and_off_leaves_fp32() -> None:
    conv = torch.nn.Conv1d(1, 4, 3)
    x = torch.randn(2, 1, 32)
    with autocast_for(CPU, True):
        assert conv(x).dtype == torch.bfloat16
    with autocast_for(CPU, False):
        assert conv(x).dtype == torch.float32
    assert with_autocast(conv, CPU, False) is conv
    assert with_autocast(conv, CPU, True)(x).dtype == torch.bfloat16
    assert conv.weight.dtype == torch.float32


@pytest.mark.parametrize(("value", "expected"), [(True, "on"), (False, "off"), ("auto", "auto"), ("off", "off")])
def test_config_accepts_auto_on_off_and_booleans(value, expected) -> None:
    from pipeline.config.params import load_params

    assert load_params(REPO / "params.yaml", overrides={"train": {"bf16": value}}).train.bf16 == expected


def test_config_rejects_other_values() -> None:
    from pipeline.config.params import load_params
    from pipeline.core.errors import UserError

    with pytest.raises((UserError, ValueError), match="bf16"):
        load_params(REPO / "params.yaml", overrides={"train": {"bf16": "fast"}})


def test_one_bf16_training_step_on_cpu_keeps_loss_and_checkpoints_fp32(tmp_path, monkeypatch) -> None:
    """train.bf16: on, one step: the forward ran under CPU autocast, every saved tensor is fp32."""
    from pipeline.config.params import load_params
    from pipeline.core.paths import Layout
    from pipeline.models.checkpoint import load_model
    from pipeline.orchestration import stages
    from pipeline.training import fit, train
    from tests.conftest import tiny_overrides

    overrides = tiny_overrides(tasks=["synth_keywords"], models=["samplecnn"], n_clips=24, epochs=1)
    overrides["train"].update({"bf16": "on", "steps_per_epoch": 1})
    overrides["runtime"] = {**overrides.get("runtime", {}), "device": "cpu"}
    params = load_params(REPO / "params.yaml", overrides=overrides)
    layout = Layout(tmp_path)
    stages.download("synth_keywords", params, layout)
    stages.segment("synth_keywords", params, layout)
    seen: list[tuple[torch.dtype, bool]] = []
    real_autocast = fit.autocast_for

    def spy(device, bf16):
        seen.append((device.type, bf16))
        return real_autocast(device, bf16)

    monkeypatch.setattr(fit, "autocast_for", spy)
    result = train.train_model("synth_keywords", "samplecnn", params, layout)
    assert seen == [("cpu", True)]
    assert np.isfinite(result.best_val_loss)
    state = torch.load(layout.checkpoints("synth_keywords", "samplecnn", 0) / "last.pt", weights_only=True)
    saved = {**state["model"], **{f"best.{k}": v for k, v in state["best"]["state_dict"].items()}}
    floats = {k: v.dtype for k, v in saved.items() if v.is_floating_point()}
    assert floats and set(floats.values()) == {torch.float32}
    assert all(isinstance(r["train_loss"], float) and np.isfinite(r["train_loss"]) for r in state["history"])
    model, _ = load_model(result.model_dir)
    assert {p.dtype for p in model.state_dict().values() if p.is_floating_point()} == {torch.float32}
    metrics = stages.evaluate("synth_keywords", "samplecnn", params, layout)
    assert 0.0 <= metrics["test/accuracy"] <= 1.0


def test_onednn_auto_is_on_under_bf16_even_where_fp32_turns_it_off() -> None:
    from pipeline.models.base import ModelConfig
    from pipeline.models.zoo import build_model
    from pipeline.training.train import _use_mkldnn

    musicnn = build_model(ModelConfig("musicnn", 3, multilabel=True, width=0.125, input_length=16_000))
    assert not VARIANTS["musicnn"].cpu_mkldnn
    assert not _use_mkldnn(musicnn, "auto")
    assert _use_mkldnn(musicnn, "auto", bf16=True) == torch.backends.mkldnn.enabled
    assert not _use_mkldnn(musicnn, "off", bf16=True)


def test_predict_and_embed_wrap_the_forward_only_when_bf16_is_chosen() -> None:
    from pipeline.core.errors import UserError
    from pipeline.inference.predict import _autocast
    from pipeline.models.base import ModelConfig
    from pipeline.models.runtime import Runtime
    from pipeline.models.zoo import build_model

    net = build_model(ModelConfig("samplecnn", 3, multilabel=True, width=0.125, input_length=16_002)).eval()
    assert _autocast(net, net, Runtime(CPU, "off")) is net
    with torch.no_grad():
        assert _autocast(net, net, Runtime(CPU, "on"))(torch.zeros(1, 16_002)).dtype == torch.bfloat16
    with pytest.raises(UserError, match="--bf16 must be one of"):
        _autocast(net, net, Runtime(CPU, "fast"))
