"""The front-end and back-end contracts, checked on every registered front-end and variant.

As torchaudio organises its tests by property, each property here is one function run over the
registries (``FRONTENDS``, ``VARIANTS``): a contributor's new front-end or back-end module is
tested the moment it is found by the package scan, with no list to edit. The properties:

- shape: a front-end maps ``(B, samples)`` to ``(B, C, F, T)`` with ``C == out_channels``,
  ``F == n_bins`` and ``T == n_frames(samples)`` (a waveform front-end to ``(B, 1, samples)``);
  a back-end maps that to logits ``(B, n_classes)`` and ``embed`` to ``(B, embedding_dim)``;
- finite output;
- ``cache_spec()`` is None exactly when the front-end has trainable parameters (a waveform
  front-end is never cached: there is nothing to compute);
- gradients reach every trainable parameter;
- batch consistency: an item's output does not depend on the rest of the batch (eval mode);
- CPU bf16 autocast stays within a tolerance of fp32 (the variants that ``bf16: auto`` runs in bf16).

``test_a_toy_frontend_with_a_wrong_n_frames_fails_the_suite`` registers a broken toy in a scratch
copy and runs this file on it: the suite must fail.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pipeline.models.base import ModelConfig
from pipeline.models.frontends import FRONTENDS
from pipeline.models.zoo import VARIANTS, build_model

REPO = Path(__file__).resolve().parents[1]
N_SAMPLES = 16_000
BATCH = 3
N_CLASSES = 5
WIDTH = 0.125


def _wave(n: int = N_SAMPLES, batch: int = BATCH, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return 0.1 * torch.randn(batch, n, generator=g)


def _trainable(module: torch.nn.Module) -> list[tuple[str, torch.nn.Parameter]]:
    return [(name, p) for name, p in module.named_parameters() if p.requires_grad]


def _relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().mean() / (b.float().abs().mean() + 1e-6))


# ----------------------------------------------------------------------------- front-ends


def check_frontend_shape(cls: type) -> None:
    frontend = cls().eval()
    with torch.no_grad():
        out = frontend(_wave())
    if cls.output_kind == "waveform":
        assert tuple(out.shape) == (BATCH, 1, N_SAMPLES), f"{cls.name}: waveform output {tuple(out.shape)}"
        return
    expected = (BATCH, frontend.out_channels, frontend.n_bins, frontend.n_frames(N_SAMPLES))
    assert tuple(out.shape) == expected, (
        f"{cls.name}: output {tuple(out.shape)}, the contract says (B, C, F, n_frames(n)) = {expected}"
    )


def check_frontend_finite(cls: type) -> None:
    frontend = cls().eval()
    with torch.no_grad():
        assert torch.isfinite(frontend(_wave())).all(), f"{cls.name}: non-finite output"
        assert torch.isfinite(frontend(torch.zeros(1, N_SAMPLES))).all(), f"{cls.name}: non-finite output on silence"


def check_frontend_cache_spec(cls: type) -> None:
    frontend = cls()
    trainable = bool(_trainable(frontend))
    spec = frontend.cache_spec()
    if cls.output_kind == "waveform":
        assert spec is None, f"{cls.name}: a waveform front-end is not cached"
    else:
        assert (spec is None) == trainable, f"{cls.name}: cache_spec() is {spec!r} but trainable={trainable}"
    if trainable:
        assert cls.learnable or cls.name == "harmonic" or spec is None


def check_frontend_gradients(cls: type) -> None:
    frontend = cls().train()
    params = _trainable(frontend)
    if not params:
        return
    frontend(_wave()).float().pow(2).mean().backward()
    dead = [name for name, p in params if p.grad is None or not torch.isfinite(p.grad).all() or not p.grad.abs().sum() > 0]
    assert not dead, f"{cls.name}: no gradient reaches {dead}"


def check_frontend_batch_consistency(cls: type) -> None:
    frontend = cls().eval()
    wave = _wave()
    with torch.no_grad():
        whole = frontend(wave)
        one = frontend(wave[1:2])
    torch.testing.assert_close(whole[1:2], one, rtol=1e-4, atol=1e-4, msg=lambda m: f"{cls.name}: batch-dependent output: {m}")


def check_frontend_bf16(cls: type) -> None:
    frontend = cls().eval()
    wave = _wave()
    with torch.no_grad():
        fp32 = frontend(wave)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16 = frontend(wave)
    assert bf16.shape == fp32.shape
    assert torch.isfinite(bf16.float()).all(), f"{cls.name}: non-finite output under bf16 autocast"
    assert _relative_error(bf16, fp32) < 0.05, f"{cls.name}: bf16 output off by {_relative_error(bf16, fp32):.3f} (relative)"


FRONTEND_CHECKS = (
    check_frontend_shape,
    check_frontend_finite,
    check_frontend_cache_spec,
    check_frontend_gradients,
    check_frontend_batch_consistency,
    check_frontend_bf16,
)


@pytest.mark.fast
@pytest.mark.parametrize("check", FRONTEND_CHECKS, ids=lambda c: c.__name__.removeprefix("check_frontend_"))
@pytest.mark.parametrize("name", list(FRONTENDS))
def test_frontend_contract(name: str, check) -> None:
    check(FRONTENDS[name])


# ----------------------------------------------------------------------------- back-ends


def _variant_model(variant: str) -> tuple[torch.nn.Module, int]:
    """``variant`` at width 1/8 with 5 outputs, and a short input it accepts (twice its minimum)."""
    torch.manual_seed(0)
    length = 2 * VARIANTS[variant].min_input_length
    return build_model(ModelConfig(variant, N_CLASSES, True, width=WIDTH, input_length=length)), length


def check_variant_shapes_and_finite(model: torch.nn.Module, wave: torch.Tensor) -> None:
    with torch.no_grad():
        logits, embedding = model(wave), model.embed(wave)
    assert tuple(logits.shape) == (BATCH, N_CLASSES), f"logits {tuple(logits.shape)}"
    assert tuple(embedding.shape) == (BATCH, model.backend.embedding_dim), f"embedding {tuple(embedding.shape)}"
    assert torch.isfinite(logits).all() and torch.isfinite(embedding).all(), "non-finite output"


def check_variant_batch_consistency(model: torch.nn.Module, wave: torch.Tensor) -> None:
    with torch.no_grad():
        whole, one = model(wave), model(wave[1:2])
    torch.testing.assert_close(whole[1:2], one, rtol=1e-3, atol=1e-4, msg=lambda m: f"batch-dependent output: {m}")


def check_variant_bf16(model: torch.nn.Module, wave: torch.Tensor) -> None:
    with torch.no_grad():
        fp32 = model(wave)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16 = model(wave)
    assert torch.isfinite(bf16.float()).all(), "non-finite logits under bf16 autocast"
    assert _relative_error(bf16, fp32) < 0.1, f"bf16 logits off by {_relative_error(bf16, fp32):.3f} (relative)"


def check_variant_gradients(model: torch.nn.Module, wave: torch.Tensor) -> None:
    model.train()
    model(wave).pow(2).mean().backward()
    dead = [name for name, p in _trainable(model) if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not dead, f"no gradient reaches {dead}"


VARIANT_CHECKS = (check_variant_shapes_and_finite, check_variant_batch_consistency, check_variant_bf16, check_variant_gradients)
"""Run in this order on one model (eval-mode checks first, the training step last)."""


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_variant_contract(variant: str) -> None:
    model, length = _variant_model(variant)
    model.eval()
    wave = _wave(length)
    for check in VARIANT_CHECKS:
        if check is check_variant_bf16 and not VARIANTS[variant].cpu_bf16:
            continue  # not run in bf16 on a CPU under `bf16: auto` (short_res: its bf16 logits blow up, docs/benchmarks.md)
        try:
            check(model, wave)
        except AssertionError as exc:
            raise AssertionError(f"{variant}, {check.__name__}: {exc}") from exc


# ----------------------------------------------------------------------------- a broken toy fails

TOY_FRONTEND = '''
"""A toy front-end whose n_frames is off by one (the contract suite must catch it)."""

from typing import ClassVar

import torch

from pipeline.models.base import Frontend


class ToyFrontend(Frontend):
    name: ClassVar[str] = "toy_wrong_frames"
    OPTIONS: ClassVar[frozenset[str]] = frozenset()
    output_kind: ClassVar[str] = "spectrogram"
    out_channels = 1
    n_bins = 8
    hop_length = 160

    def __init__(self, sample_rate: int = 16_000) -> None:
        super().__init__()
        self.sample_rate = sample_rate

    def cache_spec(self):
        return {"frontend": self.name}

    def n_frames(self, n_samples: int) -> int:
        return n_samples // self.hop_length + 1  # wrong: forward gives n_samples // hop_length

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        frames = wave[:, : wave.shape[1] // self.hop_length * self.hop_length].reshape(wave.shape[0], -1, self.hop_length)
        return frames.abs().mean(-1, keepdim=True).expand(-1, -1, self.n_bins).transpose(1, 2).unsqueeze(1)
'''


def test_a_toy_frontend_with_a_wrong_n_frames_fails_the_suite(tmp_path: Path) -> None:
    """A registered front-end with no tests of its own breaks the shape contract: this suite fails on it."""
    for folder in ("pipeline", "tests"):
        subprocess.run(["cp", "-r", str(REPO / folder), str(tmp_path / folder)], check=True)
    (tmp_path / "pipeline" / "models" / "frontends" / "toy.py").write_text(TOY_FRONTEND)
    (tmp_path / "pyproject.toml").write_text((REPO / "pyproject.toml").read_text())
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "tests/test_contracts.py", "-k", "toy_wrong_frames"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path), "HOME": str(tmp_path)},
    )
    assert run.returncode == 1, run.stdout[-2000:] + run.stderr[-2000:]
    assert "test_frontend_contract[toy_wrong_frames-shape]" in run.stdout
    assert "the contract says (B, C, F, n_frames(n))" in run.stdout
    assert "1 failed" in run.stdout, run.stdout[-2000:]
