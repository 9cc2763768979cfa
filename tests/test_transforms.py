"""Front-end transforms: parity with librosa at stated tolerances, shapes, cache specs.

Tolerances (float32 torch against float64 librosa, 2 s test signal = 440 Hz tone + noise):

- mel filterbank: max abs difference 1e-4 (weights peak at ~1);
- log-mel: 0.01 dB max abs difference;
- STFT magnitude: 1e-5 x max magnitude; log-magnitude STFT: 0.01 dB;
- MFCC: 1e-3 absolute (coefficients up to ~60);
- CQT (recursive decimation, not librosa's soxr resampler): magnitude correlation > 0.999
  over the whole (bins x frames) map and tone-bin magnitudes within 1 % of librosa.
"""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest
import torch

librosa = pytest.importorskip("librosa")

from pipeline.models.dsp.mel import MelSettings, mel_filterbank  # noqa: E402
from pipeline.models.dsp.transforms import (  # noqa: E402
    MFCC,
    ConstantQTransform,
    LogMelSpectrogram,
    LogSpectrogram,
    Spectrogram,
    power_to_db,
)
from pipeline.models.frontends import FRONTENDS  # noqa: E402

pytestmark = pytest.mark.fast  # the DSP tier: part of `pytest -m fast`

SR = 16_000


@pytest.fixture(scope="module")
def signal() -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(2 * SR) / SR
    return (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(len(t))).astype(np.float32)


@pytest.fixture(scope="module")
def tones() -> tuple[np.ndarray, list[float]]:
    rng = np.random.default_rng(1)
    t = np.arange(2 * SR) / SR
    freqs = [110.0, 440.0, 1000.0, 3000.0]
    y = sum(a * np.sin(2 * np.pi * f * t) for a, f in zip((0.5, 0.3, 0.2, 0.1), freqs))
    return (y + 0.01 * rng.standard_normal(len(t))).astype(np.float32), freqs


def _librosa_mel_power(y: np.ndarray, n_mels: int) -> np.ndarray:
    return librosa.feature.melspectrogram(
        y=y,
        sr=SR,
        n_fft=512,
        hop_length=256,
        window="hann",
        center=True,
        pad_mode="reflect",
        power=2.0,
        n_mels=n_mels,
        fmin=0.0,
        fmax=8_000.0,
        htk=True,
        norm=None,
    )


@pytest.mark.parametrize("n_mels", [96, 128])
def test_mel_filterbank_matches_librosa_htk_unnormalised(n_mels: int) -> None:
    ours = mel_filterbank(SR, 512, n_mels, 0.0, 8_000.0).numpy()
    ref = librosa.filters.mel(sr=SR, n_fft=512, n_mels=n_mels, fmin=0.0, fmax=8_000.0, htk=True, norm=None).T
    np.testing.assert_allclose(ours, ref, atol=1e-4)


@pytest.mark.parametrize("n_mels", [96, 128])
def test_log_mel_matches_librosa(signal: np.ndarray, n_mels: int) -> None:
    ref = librosa.power_to_db(_librosa_mel_power(signal, n_mels), ref=1.0, amin=1e-10, top_db=None)
    ours = LogMelSpectrogram(MelSettings(SR, n_mels=n_mels))(torch.from_numpy(signal)).numpy()
    assert ours.shape == ref.shape == (n_mels, 1 + len(signal) // 256)
    np.testing.assert_allclose(ours, ref, atol=0.01)


def test_stft_magnitude_and_log_magnitude_match_librosa(signal: np.ndarray) -> None:
    ref = np.abs(librosa.stft(signal, n_fft=512, hop_length=256, window="hann", center=True, pad_mode="reflect"))
    ours = Spectrogram(power=1.0)(torch.from_numpy(signal)).numpy()
    assert ours.shape == ref.shape == (257, 126)
    np.testing.assert_allclose(ours, ref, atol=1e-5 * ref.max())
    ref_db = librosa.amplitude_to_db(ref, ref=1.0, amin=1e-5, top_db=None)
    np.testing.assert_allclose(LogSpectrogram()(torch.from_numpy(signal)).numpy(), ref_db, atol=0.01)


def test_mfcc_matches_librosa(signal: np.ndarray) -> None:
    log_mel = librosa.power_to_db(_librosa_mel_power(signal, 128), ref=1.0, amin=1e-10, top_db=None)
    ref = librosa.feature.mfcc(S=log_mel, n_mfcc=40, dct_type=2, norm="ortho")
    ours = MFCC(n_mfcc=40, settings=MelSettings(n_mels=128))(torch.from_numpy(signal)).numpy()
    assert ours.shape == ref.shape == (40, 126)
    np.testing.assert_allclose(ours, ref, atol=1e-3)


@pytest.mark.parametrize("hop", [256, 664])  # 664 = 8 x 83: only 3 decimations, longer low kernels
def test_cqt_matches_librosa(tones: tuple[np.ndarray, list[float]], hop: int) -> None:
    y, freqs = tones
    fmin = librosa.note_to_hz("C1")
    ref = np.abs(librosa.cqt(y, sr=SR, hop_length=hop, fmin=fmin, n_bins=84, bins_per_octave=12))
    ours = ConstantQTransform(SR, hop, fmin, 84, 12)(torch.from_numpy(y)).numpy()
    assert ours.shape == ref.shape == (84, 1 + len(y) // hop)
    assert np.corrcoef(ours.ravel(), ref.ravel())[0, 1] > 0.999
    inner = slice(4, -4)  # away from the zero-padded edges
    for f in freqs:
        k = int(round(12 * np.log2(f / fmin)))
        np.testing.assert_allclose(ours[k, inner].mean(), ref[k, inner].mean(), rtol=0.01)
        assert ours[:, inner].mean(axis=1).argmax() == np.argmax(ref[:, inner].mean(axis=1))


def test_cqt_rejects_bins_near_nyquist() -> None:
    with pytest.raises(ValueError, match="Nyquist"):
        ConstantQTransform(n_bins=96)


def test_power_to_db_floor_and_reference() -> None:
    power = torch.tensor([0.0, 1e-12, 1.0, 100.0])
    torch.testing.assert_close(power_to_db(power), torch.tensor([-100.0, -100.0, 0.0, 20.0]))


def test_magnitude_mel_is_20_log10() -> None:
    wave = torch.randn(SR) * 0.1
    mag = LogMelSpectrogram(MelSettings(power=1.0))
    torch.testing.assert_close(mag(wave), 20 * torch.log10(torch.clamp(mag.mel(wave), min=1e-5)))


@pytest.mark.parametrize("n_samples", [1_024, 16_000, 59_049])
@pytest.mark.parametrize("name", ["mel", "linear", "log", "cqt", "mfcc", "harmonic"])
def test_frontend_frame_count(name: str, n_samples: int) -> None:
    frontend = FRONTENDS[name]()
    out = frontend(torch.randn(2, n_samples))
    assert out.shape == (2, frontend.out_channels, frontend.n_bins, frontend.n_frames(n_samples))
    assert frontend.n_frames(n_samples) == 1 + n_samples // 256
    assert torch.isfinite(out).all()


def test_raw_frontend_adds_channel_axis() -> None:
    frontend = FRONTENDS["raw"]()
    wave = torch.randn(3, 1_000)
    assert torch.equal(frontend(wave), wave.unsqueeze(1))
    assert frontend.cache_spec() is None and frontend.n_frames(1_000) == 1_000


@pytest.mark.parametrize("name", ["mel", "linear", "log", "cqt", "mfcc"])
def test_cache_spec_is_stable_json_and_parameter_sensitive(name: str) -> None:
    first, second = FRONTENDS[name]().cache_spec(), FRONTENDS[name]().cache_spec()
    assert first is not None and first["frontend"] == name
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)
    changed = FRONTENDS[name](hop_length=128).cache_spec()
    assert changed["hop_length"] == 128 and changed != first


def test_mel_cache_spec_lists_every_parameter() -> None:
    spec = FRONTENDS["mel"](n_mels=128).cache_spec()
    for key in (
        "sample_rate",
        "n_fft",
        "hop_length",
        "win_length",
        "n_mels",
        "f_min",
        "f_max",
        "power",
        "mel_scale",
        "center",
        "pad_mode",
        "window",
        "db",
    ):
        assert key in spec, key
    assert spec["n_mels"] == 128 and spec["mel_scale"] == "htk" and spec["db"]["top_db"] is None


def test_frontend_output_equals_its_transform() -> None:
    """Cached features (filled by the transform) equal the front-end's own output."""
    frontend = FRONTENDS["mel"](n_mels=96)
    wave = torch.randn(2, 8_000)
    torch.testing.assert_close(frontend(wave)[:, 0], LogMelSpectrogram(MelSettings(n_mels=96))(wave))


MEL_OPTIONS = {"n_mels": 40, "n_fft": 1_024, "hop_length": 128, "f_min": 50.0, "f_max": 7_000.0, "power": 1.0}


@pytest.mark.parametrize("name", ["mel", "mfcc", "pcen", "trainable_mel"])
def test_every_mel_frontend_builds_its_filterbank_from_the_one_settings_type(name: str) -> None:
    """The mel front-ends take the fields of ``MelSettings`` as options, and all of them reach the filterbank."""
    frontend = FRONTENDS[name](sample_rate=SR, **MEL_OPTIONS)
    parts = {"mel": ("transform",), "mfcc": ("transform", "log_mel")}.get(name, ("mel",))
    mel = functools.reduce(getattr, parts, frontend)
    expected = LogMelSpectrogram(MelSettings(SR, **MEL_OPTIONS))
    assert mel.params() == expected.params() and frontend.hop_length == 128
    torch.testing.assert_close(mel.mel_fb, expected.mel_fb)
    settings, rest = MelSettings.take({**MEL_OPTIONS, "alpha": 0.5})
    assert settings == MelSettings(**MEL_OPTIONS) and rest == {"alpha": 0.5}


def test_constant_buffers_are_not_checkpointed() -> None:
    transform = LogMelSpectrogram()
    assert {name for name, _ in transform.named_buffers()} == {"mel_fb", "spectrogram.window"}
    assert transform.state_dict() == {}  # constants are rebuilt, never checkpointed
