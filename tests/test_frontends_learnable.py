"""The learnable front-ends leaf, sincnet, pcen and trainable_mel (issue 22): parity with
librosa.pcen, mel initialisation, gradients, batching, shapes and parameter counts (the
FRONT+BACK grid cells are in tests/test_frontends_grid.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.models.base import ModelConfig
from pipeline.models.dsp.gabor import GaborFilterbank
from pipeline.models.dsp.mel import hz_to_mel, mel_triangles
from pipeline.models.dsp.pcen import PCEN
from pipeline.models.frontends import FRONTENDS, LEARNABLE_FRONTENDS
from pipeline.models.frontends.leaf import LeafFrontend
from pipeline.models.frontends.pcen import PCENFrontend
from pipeline.models.frontends.sincnet import SincNetFrontend
from pipeline.models.frontends.trainable_mel import TrainableMelFrontend
from pipeline.models.zoo import build_model, count_parameters

SR = 16_000


def _wave(batch: int = 3, n: int = 8_000, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(n) / SR
    tones = torch.sin(2 * torch.pi * torch.tensor([220.0, 1_000.0, 3_000.0])[:batch, None] * t)
    return 0.3 * tones + 0.05 * torch.randn(batch, n, generator=g)


# ------------------------------------------------------------------ PCEN parity with librosa


def test_frozen_pcen_frontend_equals_librosa_pcen_on_its_mel_energies() -> None:
    librosa = pytest.importorskip("librosa")
    frontend = PCENFrontend(n_mels=64).requires_grad_(False)
    wave = _wave(1, 2 * SR)  # 126 frames: two EMA blocks and a carry
    energies = frontend.mel.mel(wave)[0].double().numpy()
    # librosa starts its smoother at M(-1) = 1 unless given zi; ours (as leaf-audio's) at M(-1) = E(0)
    zi = (1 - 0.025) * energies[:, :1]
    expected = librosa.pcen(energies, sr=SR, hop_length=256, gain=0.98, bias=2.0, power=0.5, b=0.025, eps=1e-6, zi=zi)
    with torch.no_grad():
        got = frontend(wave)[0, 0].double().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_pcen_per_channel_values_equal_librosa_channel_by_channel() -> None:
    librosa = pytest.importorskip("librosa")
    rng = np.random.default_rng(1)
    energies = rng.gamma(0.5, 2.0, size=(4, 150)) * np.linspace(0.1, 10, 4)[:, None]
    layer = PCEN(4, learnable=True)
    values = {
        "alpha": [0.5, 0.8, 0.9, 1.0],
        "delta": [0.5, 1.0, 2.0, 3.0],
        "root": [1.0, 2.0, 3.0, 4.0],
        "smooth": [0.01, 0.1, 0.3, 1.0],
    }
    with torch.no_grad():
        for name, vals in values.items():
            getattr(layer, name).copy_(torch.tensor(vals))
        got = layer(torch.from_numpy(energies).float()).double().numpy()
    for c in range(4):
        expected = librosa.pcen(
            energies[c : c + 1],
            gain=values["alpha"][c],
            bias=values["delta"][c],
            power=1.0 / values["root"][c],
            b=values["smooth"][c],
            eps=1e-6,
            zi=(1 - values["smooth"][c]) * energies[c : c + 1, :1],
        )
        np.testing.assert_allclose(got[c], expected[0], rtol=1e-4, atol=1e-5, err_msg=f"channel {c}")


# ------------------------------------------------------------------ mel initialisation


def test_leaf_gabor_centres_at_init_are_the_mel_band_centres() -> None:
    import torchaudio.functional as AF

    leaf = LeafFrontend()
    centres = leaf.center_frequencies().detach().double().numpy()
    # independent reference: the peaks of torchaudio's HTK mel triangles, 60-7800 Hz, on a 1-Hz grid
    fb = AF.melscale_fbanks(8_001, 60.0, 7_800.0, 40, SR, norm=None, mel_scale="htk")
    np.testing.assert_allclose(centres, fb.argmax(0).double().numpy(), atol=1.0)
    steps = np.diff(hz_to_mel(centres))
    np.testing.assert_allclose(steps, steps.mean(), rtol=1e-4)  # equally spaced in mel


def test_gabor_responses_peak_at_their_centres_with_the_mel_half_maximum_width() -> None:
    bank = GaborFilterbank()
    freqs, response = bank.frequency_response(n_freqs=4_001)  # 2-Hz grid
    centres, fwhm = mel_triangles(40, 60.0, 7_800.0)
    np.testing.assert_allclose(freqs[response.argmax(1)], centres, atol=2.5)
    peak = response.max(1, keepdims=True)
    above = (response >= peak / 2).sum(1) * (freqs[1] - freqs[0])
    np.testing.assert_allclose(above, fwhm, rtol=0.1, atol=6.0)
    np.testing.assert_allclose(peak[10:, 0], 1.0, rtol=0.02)  # unit gain at the centre
    assert np.all(peak[:10, 0] > 0.85)  # the widest low filters are cut by the 401-tap window


def test_sincnet_band_edges_at_init_are_mel_spaced() -> None:
    bank = SincNetFrontend().filters
    low = bank.low_hz.detach().double().numpy()
    high = low + bank.band_hz.detach().double().numpy()
    edges = np.concatenate([low, high[-1:]])
    assert edges[0] == pytest.approx(30.0) and edges[-1] == pytest.approx(SR / 2 - 100.0)
    steps = np.diff(hz_to_mel(edges))
    np.testing.assert_allclose(steps, steps.mean(), rtol=1e-4)
    centres = bank.center_frequencies().detach().numpy()
    assert np.all(np.diff(centres) > 0)
    freqs, response = bank.frequency_response(n_freqs=2_001)
    mid = slice(50, 80)  # bands (> 400 Hz) wide against the 251-tap Hamming window's main lobe
    gain_at_centre = response[np.arange(80), np.abs(freqs[None, :] - centres[:, None]).argmin(1)]
    low, high = (f.detach().double().numpy() for f in bank.cutoffs())
    # the reference's normalisation (centre tap 1): pass-band gain sr / (2 (f2 - f1))
    np.testing.assert_allclose((gain_at_centre * 2 * (high - low) / SR)[mid], 1.0, atol=0.08)


def test_trainable_mel_at_init_equals_mel() -> None:
    wave = _wave()
    mel = FRONTENDS["mel"](n_mels=96)
    trainable = TrainableMelFrontend(n_mels=96)
    with torch.no_grad():
        torch.testing.assert_close(trainable(wave), mel(wave), rtol=0, atol=0)


# ------------------------------------------------------------------ vectorised paths


@pytest.mark.parametrize("frontend", [LeafFrontend, SincNetFrontend])
def test_fft_filtering_equals_direct_convolution(frontend) -> None:
    bank = frontend().filters
    wave = _wave(2, 3_001)
    with torch.no_grad():
        torch.testing.assert_close(bank(wave), bank.forward_direct(wave), rtol=1e-4, atol=1e-5 * float(bank(wave).abs().max()))


# ------------------------------------------------------------------ gradients, batching, shapes

PAPER_COUNTS = {"leaf": 280, "sincnet": 320, "pcen": 4 * 96, "trainable_mel": 257 * 96}
"""Trainable parameters at the defaults: leaf-audio ``Leaf()`` (40 filters x 7), leaf-audio
``SincNet(n_filters=80)`` (80 x (2 + 2)), leaf-audio ``PCENLayer`` on 96 bands (4 x 96),
nnAudio ``MelSpectrogram(trainable_mel=True)`` (96 x 257); docs/frontends.md."""


@pytest.mark.parametrize("name", LEARNABLE_FRONTENDS)
def test_parameter_count_equals_the_reference(name) -> None:
    assert count_parameters(FRONTENDS[name]()) == PAPER_COUNTS[name]


@pytest.mark.parametrize("name", LEARNABLE_FRONTENDS)
def test_gradients_reach_every_learnable_parameter(name) -> None:
    frontend = FRONTENDS[name]()
    out = frontend(_wave())
    (out * torch.linspace(-1, 1, out.shape[-2])[:, None]).square().mean().backward()
    for pname, p in frontend.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
        assert (p.grad != 0).any(), f"{name}.{pname} gets no gradient"
    if name == "trainable_mel":  # the zeros of the mel initialisation learn too (straight-through clamp)
        zeros = frontend.filterbank.detach() == 0
        assert (frontend.filterbank.grad[zeros] != 0).float().mean() > 0.5


def test_trainable_mel_can_keep_the_mel_support() -> None:
    frontend = TrainableMelFrontend(learn_support=False)
    frontend(_wave()).square().mean().backward()
    zeros = frontend.filterbank.detach() == 0
    assert (frontend.filterbank.grad[zeros] == 0).all() and (frontend.filterbank.grad[~zeros] != 0).any()


@pytest.mark.parametrize("name", LEARNABLE_FRONTENDS)
def test_batched_and_single_clip_outputs_agree_and_shapes_are_documented(name) -> None:
    frontend = FRONTENDS[name]()
    for n in (4_000, 6_789):
        wave = _wave(3, n)
        with torch.no_grad():
            batched = frontend(wave)
            singles = torch.cat([frontend(wave[i : i + 1]) for i in range(3)])
        assert (
            batched.shape
            == (3, 1, frontend.n_bins, frontend.n_frames(n))
            == (3, 1, frontend.n_bins, 1 + n // frontend.hop_length)
        )
        torch.testing.assert_close(batched, singles, rtol=1e-4, atol=1e-4)
        assert torch.isfinite(batched).all()
    assert frontend.cache_spec() is None  # learnable: never cached


@pytest.mark.parametrize("name", LEARNABLE_FRONTENDS)
def test_runs_under_bf16_autocast(name) -> None:
    frontend = FRONTENDS[name]()
    wave = _wave(2, 4_000)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = frontend(wave)
    assert out.shape == (2, 1, frontend.n_bins, frontend.n_frames(4_000)) and torch.isfinite(out.float()).all()


# ------------------------------------------------------------------ registry and report figure


def test_models_command_lists_every_frontend_with_its_parameter_count(monkeypatch, capsys) -> None:
    import json
    import sys

    from pipeline.cli.main import main

    monkeypatch.setattr(sys, "argv", ["musicrep", "models", "--frontends", "--json"])
    try:
        main()
    except SystemExit as exc:
        assert not exc.code
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == set(FRONTENDS)
    for name in LEARNABLE_FRONTENDS:
        assert rows[name]["params"] == PAPER_COUNTS[name] and rows[name]["cacheable"] is False
    assert rows["mel"]["cacheable"] is True and rows["mel"]["params"] == 0


@pytest.mark.parametrize("variant", ["leaf+fcn", "pcen+fcn", "short_cnn"])
def test_learned_frontend_figure(tmp_path, variant) -> None:
    from pipeline.report.frontend_figures import learnable_frontend_figure

    model = build_model(ModelConfig(variant, n_classes=3, multilabel=True, width=0.125, input_length=4_000))
    path = learnable_frontend_figure(model, variant, tmp_path / "f.png")
    if variant == "short_cnn":  # mel: nothing learnt, no figure
        assert path is None
    else:
        assert path.stat().st_size > 10_000


def test_report_draws_the_learned_filters_of_learnable_frontends_only() -> None:
    from pipeline.report.plots import _needs_model

    for variant, wanted in [("leaf+short_cnn", True), ("trainable_mel+fcn", True), ("hcnn", True), ("short_cnn", False)]:
        assert _needs_model({"config": {"variant": variant}})[0] is wanted, variant
