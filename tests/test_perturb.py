"""Perturbations and noise banks: levels are exact, deterministic, batched, device-agnostic (fast)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.core.errors import UserError
from pipeline.core.paths import Layout
from pipeline.robustness import perturb as P
from pipeline.robustness.noises import SYNTHETIC_KINDS, load_noise, synthetic_noises

SR = 16_000
CENTS_TOL = 3.0  # pitch tolerance: FFT-peak estimate (0.25 Hz bins, parabolic interpolation) + 0.1-cent ratio


def _music(seconds: float = 2.0, seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    rng = np.random.default_rng(seed)
    x = sum(0.2 / k * np.sin(2 * np.pi * 220 * k * t + rng.uniform(0, 6)) for k in range(1, 6))
    x = x * (0.6 + 0.4 * np.sin(2 * np.pi * 1.5 * t)) + 0.01 * rng.standard_normal(len(t))
    return x.astype(np.float32)


def _snr_db(clean: np.ndarray, mixed: np.ndarray) -> float:
    clean, mixed = clean.astype(np.float64), mixed.astype(np.float64)
    return 10 * math.log10(np.mean(clean**2) / np.mean((mixed - clean) ** 2))


def _peak_hz(x: np.ndarray) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    k = int(np.argmax(spec[1:-1])) + 1
    a, b, c = np.log(spec[k - 1 : k + 2] + 1e-30)
    return (k + 0.5 * (a - c) / (a - 2 * b + c)) * SR / len(x)


@pytest.fixture(scope="module")
def bank() -> list[np.ndarray]:
    return load_noise("synthetic", Layout(Path(".")), seed=0)


@pytest.mark.parametrize("snr", [30.0, 10.0, 0.0, -5.0, -10.0])
def test_white_noise_snr_is_exact(snr: float) -> None:
    x = np.stack([_music(seed=0), 0.05 * _music(seed=1)])
    y = P.apply("white_noise", x, snr, seed=3)
    for row in range(2):
        assert abs(_snr_db(x[row], y[row]) - snr) < 0.1


@pytest.mark.parametrize("snr", [30.0, 10.0, 0.0, -5.0, -10.0, math.inf])
def test_snr_mixing_by_torchaudio_matches_the_former_formula(snr: float) -> None:
    """``_mix_at_snr`` uses ``torchaudio.functional.add_noise``; results equal the former scaling."""
    g = torch.Generator().manual_seed(7)
    x = torch.randn(6, 4000, generator=g) * torch.rand(6, 1, generator=g)
    x[2] = 0.0  # a silent row stays silent
    noise = torch.randn(6, 4000, generator=g)
    px, pn = x.double().pow(2).mean(-1, keepdim=True), noise.double().pow(2).mean(-1, keepdim=True)
    former = (x.double() + torch.sqrt(px / (pn * 10.0 ** (snr / 10.0))) * noise.double()).to(x.dtype)
    mixed = P._mix_at_snr(x, noise, snr)
    torch.testing.assert_close(mixed, former, rtol=1e-6, atol=1e-7)
    assert torch.equal(mixed[2], x[2])


@pytest.mark.parametrize("snr", [20.0, 5.0, 0.0, -5.0])
def test_background_noise_snr_is_exact(bank, snr: float) -> None:
    x = np.stack([_music(seed=2), 3.0 * _music(seed=4)])
    y = P.apply("background_noise", x, snr, seed=[11, 12], noise=bank)
    for row in range(2):
        assert abs(_snr_db(x[row], y[row]) - snr) < 0.1


def test_short_noise_is_tiled() -> None:
    period = np.sin(2 * np.pi * np.arange(1000) / 50).astype(np.float32) + 0.1
    segs = P.noise_segments([period], 2, 5500, seeds=[1, 2])
    for seg in segs:
        assert seg.shape == (5500,)
        np.testing.assert_array_equal(seg[:1000], seg[1000:2000])  # looped with the noise's period
        np.testing.assert_array_equal(seg[:3500], seg[2000:5500])
    x = _music(seconds=1.0)
    y = P.apply("background_noise", x, 0.0, seed=5, noise=[period])
    assert y.shape == x.shape and abs(_snr_db(x, y)) < 0.1


def test_noise_offset_depends_on_seed(bank) -> None:
    a = P.noise_segments(bank, 1, 4000, [1])[0]
    b = P.noise_segments(bank, 1, 4000, [2])[0]
    assert not np.array_equal(a, b)


@pytest.mark.parametrize(
    "name,level",
    [
        ("white_noise", 5.0),
        ("background_noise", 0.0),
        ("ref_white_noise", 0.2),
    ],
)
def test_same_seed_same_output_different_seed_different(bank, name: str, level: float) -> None:
    x = _music(seconds=1.0)
    a = P.apply(name, x, level, seed=7, noise=bank)
    b = P.apply(name, x, level, seed=7, noise=bank)
    c = P.apply(name, x, level, seed=8, noise=bank)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


@pytest.mark.parametrize(
    "name,level",
    [
        ("white_noise", 0.0),
        ("background_noise", 5.0),
        ("pitch_shift", 1.0),
        ("gain", -6.0),
        ("dynamic_range", 20.0),
        ("ref_dynamic_range", 4.0),
        ("time_stretch", 1.25),
    ],
)
def test_batched_rows_equal_single_rows(bank, name: str, level: float) -> None:
    rows = np.stack([_music(1.0, seed=s) * g for s, g in [(0, 1.0), (1, 0.2), (2, 0.7)]])
    seeds = [101, 202, 303]
    batched = P.apply(name, rows, level, seed=seeds, noise=bank)
    assert not np.allclose(batched[0], batched[1])
    for i in range(3):
        single = P.apply(name, rows[i : i + 1], level, seed=[seeds[i]], noise=bank)
        np.testing.assert_allclose(batched[i], single[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("semitones", [-1.0, 1.0, 2.0, -0.5])
def test_pitch_shift_moves_a_sine_by_the_ratio(semitones: float) -> None:
    f0 = 440.0
    x = (0.5 * np.sin(2 * np.pi * f0 * np.arange(4 * SR) / SR)).astype(np.float32)
    y = P.apply("pitch_shift", x, semitones)
    assert y.shape == x.shape
    mid = slice(SR // 2, 7 * SR // 2)  # away from the edges
    measured = 1200 * math.log2(_peak_hz(y[mid]) / _peak_hz(x[mid]))
    assert abs(measured - 100 * semitones) < CENTS_TOL
    assert abs(P.pitch_error_cents(semitones)) <= 0.1


def test_pitch_ratio_is_small_and_accurate() -> None:
    assert P.pitch_ratio(1.0) == (89, 84) and P.pitch_ratio(-1.0) == (84, 89)
    for s in np.arange(-12, 12.25, 0.25):
        p, q = P.pitch_ratio(float(s))
        assert q <= 1024 and p <= 2048
        assert abs(P.pitch_error_cents(float(s))) <= 0.1


@pytest.mark.parametrize("rate", [0.8, 1.25, 2**0.5])
def test_time_stretch_changes_duration_keeps_pitch(rate: float) -> None:
    f0 = 330.0
    x = (0.5 * np.sin(2 * np.pi * f0 * np.arange(3 * SR) / SR)).astype(np.float32)
    y = P.apply("time_stretch", x, rate)
    assert len(y) == round(len(x) / rate)
    mid = slice(SR // 4, len(y) - SR // 4)
    assert abs(1200 * math.log2(_peak_hz(y[mid]) / f0)) < CENTS_TOL
    # level roughly kept (a phase vocoder loses up to ~10 % on a pure tone at rate 0.8, as librosa does)
    assert abs(np.sqrt(np.mean(y[mid] ** 2)) / np.sqrt(np.mean(x**2)) - 1) < 0.15


def test_time_stretch_matches_librosa() -> None:
    librosa = pytest.importorskip("librosa")
    x = _music(seconds=2.0)
    for rate in (0.8, 1.25):
        ours = P.apply("ref_time_stretch", x, rate)
        ref = librosa.effects.time_stretch(x, rate=rate)
        assert ours.shape == ref.shape
        assert np.corrcoef(ours, ref)[0, 1] > 0.999


@pytest.mark.parametrize("db", [-20.0, -6.0, 3.0, 20.0])
def test_gain_changes_rms_by_db(db: float) -> None:
    x = _music(1.0)
    y = P.apply("gain", x, db)
    change = 20 * math.log10(np.sqrt(np.mean(y.astype(np.float64) ** 2)) / np.sqrt(np.mean(x.astype(np.float64) ** 2)))
    assert abs(change - db) < 1e-3
    clipped = P.gain(torch.from_numpy(x), 40.0, clip=True)
    assert float(clipped.abs().max()) <= 1.0


def test_dynamic_range_reduces_dynamics_keeps_rms() -> None:
    t = np.arange(2 * SR) / SR
    x = (np.sin(2 * np.pi * 300 * t) * np.where((t % 0.5) < 0.25, 0.8, 0.02)).astype(np.float32)
    np.testing.assert_array_equal(P.apply("dynamic_range", x, 0.0), x)
    y = P.apply("dynamic_range", x, 30.0)
    assert abs(np.sqrt(np.mean(y**2)) / np.sqrt(np.mean(x**2)) - 1) < 1e-4

    def spread(z: np.ndarray) -> float:  # loud-to-quiet level difference, dB
        loud, quiet = z[(t % 0.5) < 0.25][2000:], z[(t % 0.5) >= 0.25][2000:]
        return 10 * math.log10(np.mean(loud**2) / np.mean(quiet**2))

    assert spread(x) - spread(y) > 15  # 34 dB -> about 34 - 0.75 * 30 plus ballistics


def _sox_compand_exact(x: np.ndarray, preset: P.CompandPreset) -> np.ndarray:
    """Sample-by-sample SoX compand (mono), the loop of SoX's compand.c, for reference."""
    a, d = P._sox_coef(preset.attack, SR), P._sox_coef(preset.decay, SR)
    v, env = 10 ** (preset.initial_db / 20), np.empty(len(x))
    for i, s in enumerate(np.abs(x).tolist()):
        delta = s - v
        v += delta * (a if delta > 0 else d)
        env[i] = v
    env = env[np.minimum(np.arange(len(x)) + int(preset.delay * SR), len(x) - 1)]
    xin = np.array([p[0] for p in preset.points], dtype=float)
    g = np.array([p[1] - p[0] for p in preset.points], dtype=float)
    gain_db = np.interp(20 * np.log10(np.maximum(env, 1e-300)), xin, g) + preset.gain_db
    return np.clip(x * 10 ** (gain_db / 20), -1, 1)


@pytest.mark.parametrize("preset", [4, 6])
def test_ref_dynamic_range_approximates_sox(preset: int) -> None:
    t = np.arange(int(1.5 * SR)) / SR
    x = (np.sin(2 * np.pi * 220 * t) * (0.02 + 0.5 * (np.sin(2 * np.pi * 1.3 * t) > 0))).astype(np.float32)
    ours = P.apply("ref_dynamic_range", x, float(preset)).astype(np.float64)
    exact = _sox_compand_exact(x.astype(np.float64), P.SOX_PRESETS[preset])
    rel_rms = np.sqrt(np.mean((ours - exact) ** 2) / np.mean(exact**2))
    assert rel_rms < 0.01
    loud = np.abs(x) > 1e-2
    assert np.max(np.abs(20 * np.log10(np.abs(ours[loud]) / np.abs(exact[loud])))) < 0.2  # dB


def test_ref_white_noise_follows_reference_formula() -> None:
    x = _music(1.0)
    r = 0.3
    y = P.apply("ref_white_noise", x, r, seed=1)
    n = (y - (1 - r) * x) / r
    assert abs(np.abs(n).max() - x.max()) < 1e-4  # noise peak = max(x)


def test_levels_are_validated() -> None:
    x = _music(0.5)
    for name, level in [
        ("time_stretch", 0.0),
        ("ref_dynamic_range", 3.5),
        ("ref_white_noise", 1.5),
        ("dynamic_range", -1.0),
        ("nope", 1.0),
    ]:
        with pytest.raises(ValueError):
            P.apply(name, x, level)
    with pytest.raises(ValueError):
        P.apply("background_noise", x, 0.0, seed=1, noise=None)


def test_registry_is_consistent() -> None:
    assert set(P.PERTURBATIONS) == set(P.INFO)
    for name in P.PERTURBATIONS:
        assert P.INFO[name].unit in {"snr", "semitones", "rate", "db", "preset"}


def test_silent_rows_stay_silent() -> None:
    x = np.zeros((2, 800), dtype=np.float32)
    x[1] = _music(0.05)
    y = P.apply("white_noise", x, 0.0, seed=1)
    np.testing.assert_array_equal(y[0], 0)
    assert np.all(np.isfinite(y))


def test_synthetic_noises_are_deterministic_and_distinct() -> None:
    a, b, c = synthetic_noises(0, seconds=2.0), synthetic_noises(0, seconds=2.0), synthetic_noises(1, seconds=2.0)
    assert list(a) == list(SYNTHETIC_KINDS)
    for kind in SYNTHETIC_KINDS:
        assert a[kind].dtype == np.float32 and a[kind].shape == (2 * SR,)
        np.testing.assert_array_equal(a[kind], b[kind])
        assert not np.array_equal(a[kind], c[kind])
        assert abs(np.sqrt(np.mean(a[kind].astype(np.float64) ** 2)) - 0.1) < 0.02
        assert np.abs(a[kind]).max() <= 0.99 + 1e-6


def test_load_noise_folder_and_errors(tmp_path) -> None:
    import soundfile as sf

    with pytest.raises(UserError, match="musicrep download speech_commands"):
        load_noise("speech_commands", Layout(tmp_path))
    with pytest.raises(UserError, match="neither"):
        load_noise(str(tmp_path / "absent"), Layout(tmp_path))
    folder = tmp_path / "noises" / "sub"
    folder.mkdir(parents=True)
    sf.write(folder / "a.wav", 0.1 * np.random.default_rng(0).standard_normal(8000), 8000)  # resampled to 16 kHz
    sf.write(folder / "silent.wav", np.zeros(1000), 16000)
    (folder / "broken.wav").write_bytes(b"not audio")
    bank = load_noise("noises", Layout(tmp_path))  # relative to the layout root
    assert len(bank) == 1 and bank[0].shape == (16000,)
    sc = tmp_path / "data" / "raw" / "speech_commands" / "speech_commands_v0.02" / "_background_noise_"
    sc.mkdir(parents=True)
    sf.write(sc / "white_noise.wav", 0.1 * np.random.default_rng(1).standard_normal(4000), 16000)
    assert len(load_noise("speech_commands", Layout(tmp_path))) == 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_runs_on_cuda_and_matches_cpu(bank) -> None:
    x = torch.from_numpy(np.stack([_music(1.0, 0), _music(1.0, 1)]))
    for name, level in [
        ("white_noise", 0.0),
        ("background_noise", 0.0),
        ("pitch_shift", 1.0),
        ("time_stretch", 0.8),
        ("gain", 6.0),
        ("dynamic_range", 20.0),
        ("ref_dynamic_range", 6.0),
        ("ref_white_noise", 0.2),
    ]:
        gpu = P.apply(name, x.cuda(), level, seed=[1, 2], noise=bank)
        assert gpu.is_cuda
        cpu = P.apply(name, x, level, seed=[1, 2], noise=bank)
        torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-3, atol=1e-3)


# --- the contract every registered perturbation keeps (a contributor's too: docs/contributing.md) -------------

_NOISE = list(synthetic_noises(seconds=1.0).values())[:1]


def _run(name: str, x: torch.Tensor, level: float, seed) -> torch.Tensor:
    return P.apply(name, x, level, seed=seed, noise=_NOISE)


@pytest.mark.parametrize("name", list(P.PERTURBATIONS))
def test_perturbation_contract(name: str) -> None:
    """Batched rows, finite output of the input's dtype, the identity level changes nothing, the example level
    does, the same seed gives the same output, a row does not depend on its batch, and a row-wise seed list works."""
    info = P.INFO[name]
    x = torch.from_numpy(np.stack([_music(0.5, seed=s) for s in range(3)]))
    y = _run(name, x, info.example, [1, 2, 3])
    assert y.dtype == x.dtype and y.shape[0] == 3 and torch.isfinite(y).all(), f"{name}: batch, dtype or finiteness broken"
    assert not torch.equal(y[:, : min(y.shape[1], x.shape[1])], x[:, : min(y.shape[1], x.shape[1])]), (
        f"{name}: example level {info.example} left the audio unchanged"
    )
    torch.testing.assert_close(_run(name, x, info.example, [1, 2, 3]), y, msg=f"{name}: not deterministic")
    torch.testing.assert_close(_run(name, x[1:2], info.example, [2]), y[1:2], msg=f"{name}: a row depends on its batch")
    if info.identity is not None and math.isfinite(info.identity):
        torch.testing.assert_close(_run(name, x, info.identity, [1, 2, 3]), x, atol=1e-5, rtol=0, msg=f"{name}: identity level")
    assert P.INFO[name].check is None or P.INFO[name].check(info.example) is None, f"{name}: its example level is out of range"


_TOY_BROKEN = '''

@perturbation("db", "toy gain (dB)", 0.0, -6.0)
def toy_gain(waves: torch.Tensor, db: float, seed: SeedLike = None) -> torch.Tensor:
    """A toy whose identity level is wrong: 0 dB halves the audio."""
    return waves * 10 ** (db / 20) * 0.5
'''


def test_a_perturbation_is_one_decorated_function_and_a_broken_one_fails_the_contract(tmp_path: Path) -> None:
    """The docs' recipe in a scratch copy: the decorated function alone registers it (name, unit, range, the
    `robustness.grid` check); the contract above passes on the docs' toy and fails on one that breaks identity."""
    import re
    import shutil
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    text = (repo / "docs" / "contributing.md").read_text()
    block = re.search(r"```python\n(.*?)```", text[text.index("## A perturbation") :], flags=re.S)
    assert block, "docs/contributing.md lost the perturbation recipe's code block"
    clone = tmp_path / "clone"
    for folder in ("pipeline", "tests", "docs"):
        shutil.copytree(repo / folder, clone / folder, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(repo / "pyproject.toml", clone / "pyproject.toml")
    perturb_py = clone / "pipeline" / "robustness" / "perturb.py"
    perturb_py.write_text(perturb_py.read_text() + "\n\n" + block.group(1))
    env = {**__import__("os").environ, "PYTHONPATH": str(clone)}

    def pytest_in_clone(*args: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "tests/test_perturb.py", *args]
        return subprocess.run(cmd, cwd=clone, capture_output=True, text=True, timeout=300, env=env)

    ok = pytest_in_clone("-k", "contract and toy_")
    assert ok.returncode == 0 and "1 passed" in ok.stdout, ok.stdout[-2000:]
    perturb_py.write_text(perturb_py.read_text() + _TOY_BROKEN)
    broken = pytest_in_clone("-k", "contract and toy_gain")
    assert broken.returncode == 1 and "toy_gain: identity level" in broken.stdout, broken.stdout[-2000:]
