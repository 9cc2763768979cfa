"""Harmonic filterbank (spec section 3): grid, centres, ERB bandwidths, gradients, modes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.models.dsp.transforms import (
    ERB_ALPHA,
    ERB_BETA,
    HarmonicFilterbank,
    harmonic_pitch_grid,
    stft_bin_frequencies,
    triangular_filterbank,
)
from pipeline.models.frontends.harmonic import HarmonicFrontend

pytestmark = pytest.mark.fast  # the DSP tier: part of `pytest -m fast`


@pytest.fixture(scope="module")
def wave() -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.randn(2, 8_000, generator=generator) * 0.1


@pytest.mark.parametrize(("n_harmonics", "bands"), [(1, 190), (2, 166), (3, 152), (4, 142), (5, 134), (6, 128)])
def test_grid_size_per_number_of_harmonics(n_harmonics: int, bands: int) -> None:
    assert len(harmonic_pitch_grid(16_000, n_harmonics, 2)) == bands


def test_default_grid_c1_to_below_e6_in_50_cent_steps() -> None:
    f0 = harmonic_pitch_grid()
    assert len(f0) == 128
    assert f0[0] == pytest.approx(32.7032, abs=1e-3)
    assert f0[-1] == pytest.approx(1280.97, abs=1e-2)
    np.testing.assert_allclose(f0[1:] / f0[:-1], 2 ** (1 / 24), rtol=1e-12)


def test_six_harmonics_give_768_harmonic_major_filters() -> None:
    bank = HarmonicFilterbank()
    centers = bank.center_frequencies()
    assert centers.shape == (768,)
    f0 = bank.fundamentals()
    for h in range(1, 7):
        torch.testing.assert_close(centers[(h - 1) * 128 : h * 128], h * f0)
    assert centers.max().item() == pytest.approx(7685.8, abs=0.1)


@pytest.mark.parametrize("harmonic", [1, 2, 3, 4, 5, 6])
def test_nth_harmonic_filter_peaks_at_n_times_f0(harmonic: int) -> None:
    bank = HarmonicFilterbank()
    fine = torch.linspace(0.0, 8_000.0, 160_001, dtype=torch.float64)  # 0.05 Hz grid
    band = 40
    index = (harmonic - 1) * bank.n_bands + band
    center = bank.center_frequencies()[index].double()
    response = triangular_filterbank(fine, center.reshape(1), bank.bandwidths()[index].double().reshape(1))[:, 0]
    assert fine[response.argmax()].item() == pytest.approx(harmonic * bank.fundamentals()[band].item(), abs=0.05)
    assert response.max().item() == pytest.approx(1.0, abs=5e-3)
    # on the STFT bins the same filter peaks at the bin nearest to its centre
    column = bank.filterbank()[:, index]
    nearest = torch.argmin((bank.bin_freqs - center.float()).abs())
    assert column.argmax() == nearest


@pytest.mark.parametrize("q", [1.0, 2.0, 0.5])
def test_bandwidth_is_erb_over_q(q: float) -> None:
    bank = HarmonicFilterbank()
    with torch.no_grad():
        bank.bw_q.fill_(q)
    centers = bank.center_frequencies()
    torch.testing.assert_close(bank.bandwidths(), (ERB_ALPHA * centers + ERB_BETA) / q)
    # the support of the triangle on a fine grid is exactly the bandwidth
    fine = torch.linspace(0.0, 8_000.0, 320_001, dtype=torch.float64)  # 0.025 Hz grid
    index = 3 * 128 + 77
    bw = bank.bandwidths()[index].double()
    response = triangular_filterbank(fine, centers[index].double().reshape(1), bw.reshape(1))[:, 0]
    support = fine[response > 0]
    assert (support[-1] - support[0]).item() == pytest.approx(bw.item(), abs=0.06)


def test_erb_values_at_q1_match_spec() -> None:
    bank = HarmonicFilterbank()
    bw = bank.bandwidths().detach()
    assert bw[0].item() == pytest.approx(28.2, abs=0.05)
    assert bw[127].item() == pytest.approx(162.9, abs=0.05)
    assert bw[767].item() == pytest.approx(854.0, abs=0.1)


def test_empty_filters_faithful_and_floored() -> None:
    bank = HarmonicFilterbank()
    assert int((bank.filterbank().sum(0) == 0).sum()) == 1  # docs/spec.md §3.7 at Q = 1
    with torch.no_grad():
        bank.bw_q.fill_(2.0)
    empty = bank.filterbank().detach().sum(0) == 0
    assert int(empty.sum()) == 70 and int(empty[:128].sum()) == 29
    floored = HarmonicFilterbank(bw_floor=True)
    with torch.no_grad():
        floored.bw_q.fill_(2.0)
    assert int((floored.filterbank().detach().sum(0) == 0).sum()) == 0


def test_output_is_db_of_filtered_power_spectrum(wave: torch.Tensor) -> None:
    bank = HarmonicFilterbank()
    out = bank(wave)
    assert out.shape == (2, 6, 128, 1 + 8_000 // 256)
    power = (
        torch.stft(wave, 512, 256, window=torch.hann_window(512), center=True, pad_mode="reflect", return_complex=True).abs() ** 2
    )
    expected = 10 * torch.log10(torch.clamp(torch.einsum("bkt,km->bmt", power, bank.filterbank()), min=1e-10))
    torch.testing.assert_close(out.detach(), expected.reshape(2, 6, 128, -1).detach(), atol=1e-3, rtol=1e-4)


def test_gradient_reaches_q(wave: torch.Tensor) -> None:
    bank = HarmonicFilterbank(learn_bw="only_Q")
    assert [name for name, _ in bank.named_parameters()] == ["bw_q"]
    bank(wave).mean().backward()
    assert bank.bw_q.grad is not None and torch.isfinite(bank.bw_q.grad) and bank.bw_q.grad.abs() > 0


def test_gradient_reaches_f0_when_learnt(wave: torch.Tensor) -> None:
    bank = HarmonicFilterbank(learn_f0=True)
    assert dict(bank.named_parameters())["log_f0"].shape == (128,)
    bank(wave).mean().backward()
    grad = bank.log_f0.grad
    assert grad is not None and torch.isfinite(grad).all() and (grad != 0).sum() > 100
    # harmonics stay tied to the fundamentals after an update
    with torch.no_grad():
        bank.log_f0.add_(0.01)
    centers = bank.center_frequencies().reshape(6, 128)
    torch.testing.assert_close(centers / centers[0], torch.arange(1.0, 7.0).unsqueeze(1).expand(6, 128))


def test_fixed_mode_has_no_trainable_parameters() -> None:
    bank = HarmonicFilterbank(learn_bw="fix")
    assert sum(p.numel() for p in bank.parameters()) == 0
    frontend = HarmonicFrontend(learn_bw="fix")
    assert sum(p.numel() for p in frontend.parameters() if p.requires_grad) == 0


def test_full_mode_trains_alpha_beta_q() -> None:
    bank = HarmonicFilterbank(learn_bw="full")
    assert sorted(name for name, _ in bank.named_parameters()) == ["bw_alpha", "bw_beta", "bw_q"]


def test_invalid_settings_raise() -> None:
    with pytest.raises(ValueError, match="learn_bw"):
        HarmonicFilterbank(learn_bw="everything")
    with pytest.raises(ValueError, match="n_harmonics"):
        HarmonicFilterbank(n_harmonics=0)


def test_frontend_shape_and_no_cache(wave: torch.Tensor) -> None:
    frontend = HarmonicFrontend(n_harmonics=4, semitone_scale=1)
    out = frontend(wave)
    assert out.shape == (2, 4, 71, frontend.n_frames(8_000))
    assert frontend.out_channels == 4 and frontend.n_bins == 71
    assert frontend.cache_spec() is None


def test_state_dict_round_trip_keeps_q() -> None:
    bank = HarmonicFilterbank(learn_f0=True)
    with torch.no_grad():
        bank.bw_q.fill_(1.7)
        bank.log_f0.add_(0.02)
    other = HarmonicFilterbank(learn_f0=True)
    other.load_state_dict(bank.state_dict())
    torch.testing.assert_close(other.filterbank(), bank.filterbank())
    assert set(bank.state_dict()) == {"bw_q", "log_f0"}


def test_bin_frequencies_span_zero_to_nyquist() -> None:
    bins = stft_bin_frequencies(16_000, 512)
    assert bins.shape == (257,) and bins[0] == 0 and bins[-1] == 8_000
    assert (bins[1] - bins[0]).item() == pytest.approx(31.25)
