"""Noise sources for ``background_noise``: built-in synthetic noises, Speech Commands, any folder.

:func:`load_noise` returns a *noise bank*: a list of 1-D float32 arrays at 16 kHz. The
perturbation picks one noise and a start offset per clip from the clip's seed and loops the
noise when it is shorter than the clip, so the bank's files may have any length.

``"synthetic"`` noises are generated with NumPy only (FFT-domain filtering, no SciPy), from the
seed, in well under a second:

- ``babble``: six overlapping synthetic talkers; each talker is a glottal pulse train whose
  pitch follows a slow contour (declination, intonation, per-syllable jumps), cut into
  syllables separated by pauses, each syllable shaped by the formants (F1-F3) of a random
  vowel and, sometimes, preceded by a fricative noise burst;
- ``traffic``: brown (1/f²) rumble plus passing vehicles: band-limited engine noise and an
  engine hum whose pitch drops as the vehicle passes (Doppler), under a rise-and-fall swell;
- ``music``: a chord progression of harmonic tones (triads/sevenths with a bass note), each
  note with its own harmonic mix and decay, and a melody line on top;
- ``cafe``: distant babble (ten talkers, low-passed) over pink room tone with dish/cutlery
  clinks (inharmonic decaying partials at 2-7 kHz);
- ``rain``: high-passed pink hiss with thousands of droplet plinks (short decaying tones)
  and a few louder drops, soft-limited to a crest factor of about 5.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pipeline.audio.io import AUDIO_EXTENSIONS, AudioError, read_audio
from pipeline.core.errors import UserError
from pipeline.core.paths import Layout
from pipeline.robustness.perturb import INFO

if TYPE_CHECKING:
    from pipeline.config.params import Params

log = logging.getLogger(__name__)
SR = 16_000
SYNTHETIC_KINDS = ("babble", "traffic", "music", "cafe", "rain")
TARGET_RMS = 0.1

# (F1, F2, F3) in Hz of a few vowels (adult average) and their bandwidths
_VOWELS = np.array(
    [
        [730, 1090, 2440],
        [530, 1840, 2480],
        [270, 2290, 3010],
        [570, 840, 2410],
        [300, 870, 2240],
        [660, 1720, 2410],
        [490, 1350, 1690],
        [440, 1020, 2240],
    ],
    dtype=np.float64,
)
_BANDWIDTHS = np.array([80.0, 110.0, 160.0])


def _normalise(x: np.ndarray) -> np.ndarray:
    x = x - x.mean()
    rms = float(np.sqrt(np.mean(x**2)))
    x = x * (TARGET_RMS / rms) if rms > 0 else x
    peak = float(np.abs(x).max())
    if peak > 0.99:
        x = x * (0.99 / peak)
    return x.astype(np.float32)


def _shaped_noise(rng: np.random.Generator, n: int, response) -> np.ndarray:
    """White Gaussian noise filtered in the frequency domain by ``response(freqs_hz)``."""
    spec = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / SR)
    return np.fft.irfft(spec * response(freqs), n)


def _pink(f: np.ndarray, lo: float = 20.0) -> np.ndarray:
    return 1.0 / np.sqrt(np.maximum(f, lo))


def _envelope(n: int, attack: int, release: int) -> np.ndarray:
    env = np.ones(n)
    attack, release = min(attack, n // 2), min(release, n // 2)
    if attack:
        env[:attack] = np.sin(np.linspace(0, np.pi / 2, attack)) ** 2
    if release:
        env[n - release :] = np.cos(np.linspace(0, np.pi / 2, release)) ** 2
    return env


def _talker(rng: np.random.Generator, n: int) -> np.ndarray:
    """One synthetic voice: formant-filtered pulse train with a pitch contour, in syllables."""
    t = np.arange(n) / SR
    base = rng.uniform(95, 240)
    contour = base * 2 ** (
        0.12 * np.sin(2 * np.pi * rng.uniform(0.2, 0.5) * t + rng.uniform(0, 6.3)) - 0.04 * (t % rng.uniform(1.5, 3.0))
    )
    phase = np.cumsum(contour / SR)
    pulses = np.diff(np.floor(phase), prepend=0.0)
    # glottal spectral tilt (about -12 dB/octave above 300 Hz) is applied per syllable below
    out = np.zeros(n)
    pos = int(max(0.0, rng.uniform(-0.2, 0.3)) * SR)
    while pos < n:
        dur = int(rng.uniform(0.11, 0.3) * SR)
        seg_n = min(dur, n - pos)
        if seg_n < 256:
            break
        jump = 2 ** (rng.uniform(-0.1, 0.1))
        exc = pulses[pos : pos + seg_n] * jump
        spec = np.fft.rfft(exc)
        freqs = np.fft.rfftfreq(seg_n, 1 / SR)
        f123 = _VOWELS[rng.integers(len(_VOWELS))] * rng.uniform(0.9, 1.15)
        resp = sum(a / (1 + ((freqs - f) / (bw / 2)) ** 2) for f, bw, a in zip(f123, _BANDWIDTHS, (1.0, 0.6, 0.3)))
        resp = resp / (1 + (freqs / 300.0) ** 2) ** 0.5
        syl = np.fft.irfft(spec * resp, seg_n) * _envelope(seg_n, int(0.02 * SR), int(0.05 * SR))
        syl *= rng.uniform(0.5, 1.0)
        if rng.random() < 0.35:  # fricative onset
            fn = min(int(rng.uniform(0.03, 0.08) * SR), seg_n)
            centre = rng.uniform(2500, 6000)
            fric = _shaped_noise(rng, fn, lambda f, centre=centre: np.exp(-0.5 * ((f - centre) / 900) ** 2))
            syl[:fn] += 0.5 * np.std(syl) / (np.std(fric) + 1e-12) * fric * _envelope(fn, fn // 4, fn // 3)
        out[pos : pos + seg_n] += syl
        pos += seg_n
        if rng.random() < 0.18:  # pause between words
            pos += int(rng.uniform(0.08, 0.4) * SR)
    return out


def _babble(rng: np.random.Generator, n: int, voices: int = 6) -> np.ndarray:
    out = np.zeros(n)
    for _ in range(voices):
        v = _talker(rng, n)
        rms = np.sqrt(np.mean(v**2)) + 1e-12
        out += v / rms * rng.uniform(0.4, 1.0)
    return out


def _traffic(rng: np.random.Generator, n: int) -> np.ndarray:
    t = np.arange(n) / SR
    rumble = _shaped_noise(rng, n, lambda f: 1.0 / np.maximum(f, 15.0) / (1 + (f / 800.0) ** 2))
    out = rumble / (np.std(rumble) + 1e-12) * 0.35
    for _ in range(max(2, rng.poisson(n / SR / 2.0))):
        t0, tau = rng.uniform(0, n / SR), rng.uniform(0.4, 1.4)
        swell = 1.0 / (1.0 + ((t - t0) / tau) ** 2)
        engine = _shaped_noise(rng, n, lambda f: np.exp(-0.5 * ((f - 400) / 350) ** 2) + 0.3 / np.maximum(f / 100, 1))
        engine /= np.std(engine) + 1e-12
        f_eng = rng.uniform(35, 90) * (1 - 0.06 * np.tanh((t - t0) / (0.3 * tau)))
        ph = 2 * np.pi * np.cumsum(f_eng) / SR
        hum = sum(np.sin(k * ph + rng.uniform(0, 6.3)) / k for k in range(1, 7))
        out += swell * rng.uniform(0.6, 2.0) * (engine + 0.8 * hum)
    return out


def _tone(f0: float, n: int, rng: np.random.Generator, n_harm: int = 8) -> np.ndarray:
    t = np.arange(n) / SR
    out = np.zeros(n)
    slope = rng.uniform(0.8, 2.0)
    for k in range(1, n_harm + 1):
        fk = f0 * k * (1 + rng.uniform(-0.002, 0.002))
        if fk > 0.45 * SR:
            break
        out += np.sin(2 * np.pi * fk * t + rng.uniform(0, 6.3)) * rng.uniform(0.5, 1.0) / k**slope
    decay = np.exp(-t / rng.uniform(0.3, 1.2))
    return out * decay * _envelope(n, int(0.008 * SR), int(0.03 * SR))


def _music(rng: np.random.Generator, n: int) -> np.ndarray:
    out = np.zeros(n)
    pos = 0
    major = rng.random() < 0.5
    while pos < n:
        dur = min(int(rng.uniform(0.45, 1.0) * SR), n - pos)
        if dur < 512:
            break
        root = int(rng.integers(45, 60))
        third = 4 if rng.random() < (0.7 if major else 0.3) else 3
        chord = [root, root + third, root + 7] + ([root + 10] if rng.random() < 0.3 else [])
        notes = chord + [root - 12]
        for m in notes:
            out[pos : pos + dur] += _tone(440.0 * 2 ** ((m - 69) / 12), dur, rng) * (1.2 if m < root else 0.8)
        step = dur // int(rng.integers(2, 5))
        for k in range(0, dur - step + 1, step):  # melody over the chord
            m = int(rng.choice(chord)) + 12 + int(rng.choice([0, 12]))
            out[pos + k : pos + k + step] += 0.6 * _tone(440.0 * 2 ** ((m - 69) / 12), step, rng, n_harm=5)
        pos += dur
    return out


def _clinks(rng: np.random.Generator, n: int, rate_hz: float) -> np.ndarray:
    out = np.zeros(n)
    for _ in range(rng.poisson(rate_hz * n / SR)):
        start, m = int(rng.integers(0, n)), int(0.25 * SR)
        m = min(m, n - start)
        tt = np.arange(m) / SR
        ping = sum(
            np.sin(2 * np.pi * rng.uniform(2000, 7000) * tt + rng.uniform(0, 6.3)) * rng.uniform(0.3, 1.0) for _ in range(3)
        )
        out[start : start + m] += ping * np.exp(-tt / rng.uniform(0.02, 0.08)) * rng.uniform(0.5, 2.0)
    return out


def _cafe(rng: np.random.Generator, n: int) -> np.ndarray:
    crowd = _babble(rng, n, voices=10)
    crowd = np.fft.irfft(np.fft.rfft(crowd) / (1 + (np.fft.rfftfreq(n, 1 / SR) / 2500.0) ** 2), n)
    room = _shaped_noise(rng, n, _pink)
    out = crowd / (np.std(crowd) + 1e-12) + 0.3 * room / (np.std(room) + 1e-12)
    return out + 0.8 * _clinks(rng, n, rate_hz=1.5)


def _rain(rng: np.random.Generator, n: int) -> np.ndarray:
    hiss = _shaped_noise(rng, n, lambda f: _pink(f) * (f / 1500.0) ** 2 / (1 + (f / 1500.0) ** 2))
    out = hiss / (np.std(hiss) + 1e-12)
    drops = np.zeros(n)
    kernel_n = int(0.012 * SR)
    tt = np.arange(kernel_n) / SR
    for _ in range(8):  # eight droplet "colours", each an impulse train convolved (FFT) with a plink
        train = np.zeros(n)
        k = rng.poisson(150 * n / SR)
        train[rng.integers(0, n, size=k)] = rng.lognormal(0.0, 0.4, size=k)
        plink = np.sin(2 * np.pi * rng.uniform(1000, 5000) * tt) * np.exp(-tt / rng.uniform(0.0015, 0.005))
        size = 1 << int(np.ceil(np.log2(n + kernel_n)))  # fast FFT size
        drops += np.fft.irfft(np.fft.rfft(train, size) * np.fft.rfft(plink, size), size)[:n]
    out += 0.8 * drops / (np.std(drops) + 1e-12)
    for _ in range(rng.poisson(1.0 * n / SR)):  # a few big drops on a surface
        start = int(rng.integers(0, n))
        m = min(int(0.05 * SR), n - start)
        t2 = np.arange(m) / SR
        out[start : start + m] += 2 * np.sin(2 * np.pi * rng.uniform(300, 900) * t2) * np.exp(-t2 / 0.01)
    limit = 5 * np.std(out)  # soft limiter: keeps the crest factor (and so the usable RMS) speech-like
    return limit * np.tanh(out / limit)


_GENERATORS = {"babble": _babble, "traffic": _traffic, "music": _music, "cafe": _cafe, "rain": _rain}


def synthetic_noises(seed: int = 0, seconds: float = 8.0) -> dict[str, np.ndarray]:
    """The built-in noises, ``{kind: (seconds·16000,) float32}`` with RMS 0.1 (peak <= 0.99).

    Deterministic: the same ``seed`` gives bit-identical arrays; each kind has its own stream
    (``SeedSequence([seed, kind index])``), so kinds do not change when one is edited.
    """
    n = int(round(seconds * SR))
    out = {}
    for i, kind in enumerate(SYNTHETIC_KINDS):
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), i]))
        out[kind] = _normalise(_GENERATORS[kind](rng, n))
    return out


def _read_folder(folder: Path) -> list[np.ndarray]:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
    bank = []
    for path in files:
        try:
            wave = read_audio(path)
        except AudioError as exc:
            log.warning("noise file %s skipped: %s", path, exc)
            continue
        if not np.any(wave != 0):
            log.warning("noise file %s skipped: silent", path)
            continue
        bank.append(np.ascontiguousarray(wave, dtype=np.float32))
    return bank


def speech_commands_noise_dir(layout: Layout) -> Path | None:
    """The ``_background_noise_`` folder of a downloaded Speech Commands, or ``None``."""
    raw = layout.raw("speech_commands")
    for cand in [raw / "_background_noise_", *sorted(raw.glob("speech_commands*/_background_noise_"))]:
        if cand.is_dir() and any(cand.glob("*.wav")):
            return cand
    return None


def load_noise(source: str, layout: Layout, seed: int = 0) -> list[np.ndarray]:
    """Load a noise bank: a list of 1-D float32 arrays at 16 kHz.

    Args:
        source: ``"synthetic"`` (built-in, generated from ``seed``), ``"speech_commands"`` (the
            six ``_background_noise_`` recordings of a downloaded Speech Commands, under
            ``data/raw/speech_commands/[speech_commands*/]_background_noise_/``), or a folder of
            audio files (wav, flac, ogg, mp3, aiff; searched recursively; a relative path is
            tried under ``layout.root`` first, then the working directory).
        layout: project layout (for the raw data directory).
        seed: seed of the synthetic noises (real recordings are loaded as they are).

    Raises:
        UserError: the Speech Commands noises or the folder are missing or hold no usable audio.
    """
    if source == "synthetic":
        return list(synthetic_noises(seed).values())
    if source == "speech_commands":
        folder = speech_commands_noise_dir(layout)
        if folder is None:
            raise UserError(
                f"no Speech Commands background noises under {layout.raw('speech_commands')}; run "
                "`musicrep download speech_commands` first, or set robustness.noise_source to 'synthetic' or a folder."
            )
        bank = _read_folder(folder)
        if not bank:
            raise UserError(f"{folder} holds no readable noise recordings; re-run `musicrep download speech_commands`.")
        return bank
    path = Path(source).expanduser()
    if not path.is_absolute() and (layout.root / path).is_dir():
        path = layout.root / path
    if not path.is_dir():
        raise UserError(
            f"robustness.noise_source {source!r} is neither 'synthetic', 'speech_commands' nor an existing folder "
            "of audio files; fix params.yaml."
        )
    bank = _read_folder(path)
    if not bank:
        raise UserError(f"noise folder {path} holds no readable, non-silent audio files (wav, flac, ogg, mp3, aiff).")
    log.info("loaded %d noise files from %s", len(bank), path)
    return bank


def noise_dependencies(params: Params) -> list[str]:
    """What a cell's robustness step reads besides its task: the noise bank of ``robustness.noise_source``.

    ``speech_commands`` -> ``data/raw/speech_commands`` (the ``download`` output when Speech Commands is
    in the grid; otherwise DVC stops the cell before it trains, naming the missing folder); a folder ->
    that folder; ``synthetic`` (generated by code the cell already depends on), no noise perturbation in
    ``robustness.grid`` or robustness off -> nothing.
    """

    rp = params.robustness
    if (
        not rp.enabled
        or rp.noise_source == "synthetic"
        or not any(INFO[k].needs_noise for k, v in rp.grid.items() if k in INFO and v)
    ):
        return []
    if rp.noise_source == "speech_commands":
        return ["data/raw/speech_commands"]
    return [rp.noise_source]
