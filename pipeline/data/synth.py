"""Embedded synthetic datasets, one per task, generated deterministically from a seed.

They mirror the label structure of the real tasks so that a fresh clone runs the whole
pipeline in minutes and the tests need no download:

- ``synth_tags`` (music tagging, multi-label, 14 tags): chord sequences played by instruments
  that differ in *which harmonics are present* (flute: f0 plus a weak 2nd; clarinet: odd
  harmonics; brass: all harmonics; organ: octave harmonics 1, 2, 4, 8; bell: inharmonic
  partials; flute adds vibrato, organ tremolo, bell always decays), plus register (low/high),
  texture (``chords``: notes sounding together vs ``melody``: one note at a time), tempo
  (fast/slow), envelope (plucked), drums and background noise; several sources per clip, so tags
  co-occur. Major/minor is deliberately *not* a tag: with random roots and short clips it was
  near chance for every model in our first smoke runs on 2-s excerpts, so it only added noise to
  the macro average; harmonies are still drawn major or minor at random.
- ``synth_keywords`` (keyword spotting, single-label, 12 words): formant-shaped vowel
  sequences with a voiced source, random speaker pitch and contour, speed and loudness.
- ``synth_events`` (sound events, multi-label, 10 events): sirens, alarms, engine hum,
  impacts, chirps, whistles, horns, barks, rain, footsteps over a background rumble, with
  random onsets and overlaps.

Each generator writes ``audio/<clip_id>.wav`` (16 kHz, 16-bit PCM) and ``labels.csv`` with
columns ``clip_id, path, split, labels`` (labels joined by ``;``) into the raw directory.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from pipeline.core.io_utils import atomic_path

log = logging.getLogger(__name__)
SR = 16_000

TAGS = [
    "flute",
    "clarinet",
    "brass",
    "organ",
    "bell",
    "drums",
    "fast",
    "slow",
    "low",
    "high",
    "chords",
    "melody",
    "plucked",
    "noisy",
]
KEYWORDS = ["ai", "ia", "au", "ua", "iu", "ui", "ei", "oa", "aiu", "uia", "eo", "oe"]
EVENTS = [
    "siren",
    "alarm",
    "engine",
    "impact",
    "chirp",
    "whistle",
    "horn",
    "bark",
    "rain",
    "footsteps",
]


# ----------------------------------------------------------------------------- helpers
def _harmonic_tone(f0: np.ndarray, amps: dict[float, float]) -> np.ndarray:
    """Additive synthesis: partial ratios -> amplitudes, following an f0 track (Hz per sample)."""
    phase = 2 * np.pi * np.cumsum(f0) / SR
    out = np.zeros_like(f0)
    for ratio, amp in amps.items():
        alias_ok = (ratio * f0) < (SR / 2 - 200)
        out += amp * np.sin(ratio * phase) * alias_ok
    return out


def _instrument_partials(name: str) -> dict[float, float]:
    if name == "flute":
        return {1.0: 1.0, 2.0: 0.15}
    if name == "clarinet":
        return {float(k): 1.0 / k for k in range(1, 16, 2)}
    if name == "brass":
        return {float(k): 1.0 / k for k in range(1, 16)}
    if name == "organ":
        return {1.0: 1.0, 2.0: 0.8, 4.0: 0.6, 8.0: 0.4}
    if name == "bell":
        return {1.0: 1.0, 2.76: 0.6, 5.40: 0.4, 8.93: 0.25}
    raise ValueError(name)


def _normalise(x: np.ndarray, rng: np.random.Generator, lo_db: float = -18, hi_db: float = -3) -> np.ndarray:
    peak = np.max(np.abs(x)) + 1e-9
    return (x / peak * 10 ** (rng.uniform(lo_db, hi_db) / 20)).astype(np.float32)


def _brown_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    x = np.cumsum(rng.standard_normal(n))
    x -= np.convolve(x, np.ones(801) / 801, mode="same")  # remove drift
    return x / (np.std(x) + 1e-9)


def _splits(n: int, val: float, test: float, rng: np.random.Generator) -> list[str]:
    order = rng.permutation(n)
    n_test, n_val = int(round(n * test)), int(round(n * val))
    split = np.array(["train"] * n, dtype=object)
    split[order[:n_test]] = "test"
    split[order[n_test : n_test + n_val]] = "val"
    return list(split)


# ----------------------------------------------------------------------------- tags
def make_tag_clip(rng: np.random.Generator, seconds: float) -> tuple[np.ndarray, list[str]]:
    """One multi-label music-like clip and its tags."""
    n = int(seconds * SR)
    tags: set[str] = set()
    register = rng.choice(["low", "high"])
    texture = rng.choice(["chords", "melody"])
    tempo = rng.choice(["fast", "slow"])
    tags.update([register, texture, tempo])
    root_midi = rng.integers(45, 55) if register == "low" else rng.integers(72, 80)
    triad = [0, 4, 7, 12] if rng.random() < 0.5 else [0, 3, 7, 12]  # major or minor harmony (not a tag)
    note_s = rng.uniform(0.11, 0.16) if tempo == "fast" else rng.uniform(0.4, 0.6)
    n_inst = rng.choice([1, 2], p=[0.8, 0.2])
    instruments = rng.choice(["flute", "clarinet", "brass", "organ", "bell"], size=n_inst, replace=False)
    plucked = rng.random() < 0.4
    if plucked:
        tags.add("plucked")
    mix = np.zeros(n)
    note_len = int(note_s * SR)
    t_note = np.arange(note_len) / SR
    env = np.exp(-t_note / (0.25 * note_s)) if plucked else np.minimum(1, np.minimum(t_note / 0.01, (note_s - t_note) / 0.02))
    for k, inst in enumerate(instruments):
        tags.add(str(inst))
        partials = _instrument_partials(str(inst))
        octave = 12 * k if register == "low" else -12 * k
        voice = np.zeros(n)
        for start in range(0, n - note_len + 1, note_len):
            if texture == "chords":  # root, third and fifth together on a random degree
                base = root_midi + octave + rng.choice([0, 5, 7])
                notes = [base + iv for iv in triad[:3]]
            else:  # one note of the arpeggio at a time
                notes = [root_midi + octave + triad[rng.integers(0, len(triad))]]
            for midi in notes:
                f0 = np.full(note_len, 440.0 * 2 ** ((midi - 69) / 12))
                if inst == "flute":  # vibrato
                    f0 = f0 * (1 + 0.015 * np.sin(2 * np.pi * 5.5 * t_note))
                tone = _harmonic_tone(f0, partials)
                if inst == "organ":  # tremolo
                    tone = tone * (1 + 0.4 * np.sin(2 * np.pi * 7.0 * t_note))
                if inst == "bell":  # struck: always decays, whatever the playing style
                    tone = tone * np.exp(-t_note / 0.15)
                voice[start : start + note_len] += env * tone
        mix += voice / (np.max(np.abs(voice)) + 1e-9)
    if rng.random() < 0.4:
        tags.add("drums")
        beat = int(note_s * SR * (2 if tempo == "fast" else 1))
        drum = np.zeros(n)
        tk = np.arange(int(0.12 * SR)) / SR
        kick = np.sin(2 * np.pi * (50 + 80 * np.exp(-tk / 0.02)) * tk) * np.exp(-tk / 0.05)
        for i, start in enumerate(range(0, n - len(tk), beat)):
            hit = kick if i % 2 == 0 else rng.standard_normal(len(tk)) * np.exp(-tk / 0.015)
            drum[start : start + len(tk)] += hit
        mix += 1.2 * drum / (np.max(np.abs(drum)) + 1e-9)
    if rng.random() < 0.3:
        tags.add("noisy")
        mix += 0.6 * rng.standard_normal(n) * np.std(mix)
    return _normalise(mix, rng), sorted(tags)


# ----------------------------------------------------------------------------- keywords
_VOWELS = {  # formants F1, F2, F3 (Hz)
    "a": (730, 1090, 2440),
    "e": (530, 1840, 2480),
    "i": (270, 2290, 3010),
    "o": (570, 840, 2410),
    "u": (300, 870, 2240),
}


def make_keyword_clip(rng: np.random.Generator, word: str, seconds: float) -> np.ndarray:
    """A voiced 'word': formant trajectory through the vowels of ``word``, random speaker."""
    n = int(seconds * SR)
    speed = rng.uniform(0.8, 1.25)
    dur = min(seconds * 0.9, (0.18 * len(word) + 0.12) / speed)
    m = int(dur * SR)
    t = np.linspace(0, 1, m)
    base = rng.uniform(90, 250)
    contour = rng.choice(["rise", "fall", "flat", "arc"])
    shape = {"rise": t, "fall": 1 - t, "flat": np.full(m, 0.5), "arc": np.sin(np.pi * t)}[contour]
    f0 = base * (1 + 0.25 * (shape - 0.5)) * (1 + 0.01 * np.sin(2 * np.pi * 5 * t * dur))
    anchors = np.linspace(0, 1, len(word))
    formants = np.stack([np.interp(t, anchors, [_VOWELS[v][i] for v in word]) for i in range(3)])
    formants *= rng.uniform(0.92, 1.08)  # vocal-tract length
    phase = 2 * np.pi * np.cumsum(f0) / SR
    voice = np.zeros(m)
    for k in range(1, int(4000 / base) + 1):
        fk = k * f0
        gain = sum(np.exp(-0.5 * ((fk - formants[i]) / (60 + 0.06 * formants[i])) ** 2) * (1.0, 0.7, 0.3)[i] for i in range(3))
        voice += gain * np.sin(k * phase) / np.sqrt(k)
    env = np.minimum(1, np.minimum(t * dur / 0.03, (1 - t) * dur / 0.05))
    voice *= env
    out = 0.003 * rng.standard_normal(n)
    start = rng.integers(0, max(1, n - m))
    out[start : start + m] += voice / (np.max(np.abs(voice)) + 1e-9)
    return _normalise(out, rng, -26, -3)


# ----------------------------------------------------------------------------- events
def _event(name: str, rng: np.random.Generator, m: int) -> np.ndarray:
    t = np.arange(m) / SR
    if name == "siren":
        f0 = 700 + 350 * np.sin(2 * np.pi * rng.uniform(0.3, 0.8) * t)
        return _harmonic_tone(f0, {1.0: 1.0, 2.0: 0.5, 3.0: 0.3})
    if name == "alarm":
        gate = (np.floor(t * rng.uniform(3, 6) * 2) % 2 == 0).astype(float)
        return gate * _harmonic_tone(np.full(m, rng.uniform(900, 1400)), {1.0: 1.0, 3.0: 0.33, 5.0: 0.2})
    if name == "engine":
        f0 = rng.uniform(30, 60) * (1 + 0.05 * np.sin(2 * np.pi * 0.5 * t))
        return _harmonic_tone(f0, {float(k): 1.0 / k for k in range(1, 20)}) * (1 + 0.3 * np.sin(2 * np.pi * 8 * t))
    if name == "impact":
        x = np.zeros(m)
        for start in rng.integers(0, max(1, m - 2000), size=rng.integers(1, 4)):
            k = np.arange(2000) / SR
            x[start : start + 2000] += rng.standard_normal(2000) * np.exp(-k / 0.01)
        return x
    if name == "chirp":
        x = np.zeros(m)
        k = np.arange(int(0.08 * SR)) / SR
        for start in range(0, m - len(k), int(rng.uniform(0.15, 0.3) * SR)):
            f = 2500 + 20000 * k
            x[start : start + len(k)] += np.sin(2 * np.pi * np.cumsum(f) / SR) * np.hanning(len(k))
        return x
    if name == "whistle":
        f0 = rng.uniform(1800, 2600) * (1 + 0.02 * np.sin(2 * np.pi * 4 * t))
        return _harmonic_tone(f0, {1.0: 1.0})
    if name == "horn":
        return _harmonic_tone(
            np.full(m, 400.0 * rng.uniform(0.95, 1.05)), {float(k): 1.0 / k for k in range(1, 12)}
        ) + _harmonic_tone(np.full(m, 500.0 * rng.uniform(0.95, 1.05)), {float(k): 1.0 / k for k in range(1, 10)})
    if name == "bark":
        x = np.zeros(m)
        k = np.arange(int(0.15 * SR)) / SR
        for start in range(0, m - len(k), int(rng.uniform(0.35, 0.6) * SR)):
            f0 = rng.uniform(350, 500) * (1 - 0.4 * k / k[-1])
            x[start : start + len(k)] += _harmonic_tone(f0, {1.0: 0.6, 2.0: 1.0, 3.0: 0.8, 4.0: 0.4}) * np.exp(-k / 0.06)
        return x
    if name == "rain":
        noise = rng.standard_normal(m)
        return np.diff(noise, prepend=0) * 0.5 + 0.2 * noise
    if name == "footsteps":
        x = np.zeros(m)
        k = np.arange(int(0.05 * SR)) / SR
        thump = np.sin(2 * np.pi * 120 * k) * np.exp(-k / 0.012)
        for start in range(0, m - len(k), int(rng.uniform(0.4, 0.6) * SR)):
            x[start : start + len(k)] += thump + 0.3 * rng.standard_normal(len(k)) * np.exp(-k / 0.005)
        return x
    raise ValueError(name)


def make_event_clip(rng: np.random.Generator, seconds: float) -> tuple[np.ndarray, list[str]]:
    """Background rumble plus 1-3 events at random onsets (they may overlap)."""
    n = int(seconds * SR)
    mix = 0.05 * _brown_noise(n, rng)
    names = rng.choice(EVENTS, size=rng.integers(1, 4), replace=False)
    for name in names:
        m = int(rng.uniform(0.35, 0.8) * n)
        start = rng.integers(0, n - m + 1)
        ev = _event(str(name), rng, m)
        ev = ev / (np.max(np.abs(ev)) + 1e-9) * 10 ** (rng.uniform(-10, 0) / 20)
        fade = np.minimum(1, np.minimum(np.arange(m) / 160, np.arange(m)[::-1] / 160))
        mix[start : start + m] += ev * fade
    return _normalise(mix, rng), sorted(str(x) for x in names)


# ----------------------------------------------------------------------------- datasets
@dataclass(frozen=True)
class SynthSpec:
    """How one synthetic dataset is generated."""

    name: str
    labels: list[str]
    make: Callable[[np.random.Generator, float, int], tuple[np.ndarray, list[str]]]


def _make_tags(rng: np.random.Generator, seconds: float, i: int) -> tuple[np.ndarray, list[str]]:
    return make_tag_clip(rng, seconds)


def _make_keywords(rng: np.random.Generator, seconds: float, i: int) -> tuple[np.ndarray, list[str]]:
    word = KEYWORDS[i % len(KEYWORDS)]
    return make_keyword_clip(rng, word, seconds), [word]


def _make_events(rng: np.random.Generator, seconds: float, i: int) -> tuple[np.ndarray, list[str]]:
    return make_event_clip(rng, seconds)


SYNTH = {
    "synth_tags": SynthSpec("synth_tags", TAGS, _make_tags),
    "synth_keywords": SynthSpec("synth_keywords", KEYWORDS, _make_keywords),
    "synth_events": SynthSpec("synth_events", EVENTS, _make_events),
}


def generate(
    name: str, out_dir: Path, n_clips: int, clip_seconds: float, seed: int, val_fraction: float = 0.15, test_fraction: float = 0.2
) -> pd.DataFrame:
    """Write a synthetic dataset into ``out_dir`` and return its ``labels.csv`` table.

    Clip ``i`` is generated from ``np.random.default_rng([seed, i, dataset id])``, so the
    output is identical for the same arguments on every machine, and an interrupted run
    that is restarted regenerates exactly the same files.
    """
    spec = SYNTH[name]
    out_dir = Path(out_dir)
    (out_dir / "audio").mkdir(parents=True, exist_ok=True)
    dataset_id = sorted(SYNTH).index(name)
    split = _splits(n_clips, val_fraction, test_fraction, np.random.default_rng([seed, 10_000 + dataset_id]))
    rows = []
    for i in range(n_clips):
        rng = np.random.default_rng([seed, i, dataset_id])
        audio, labels = spec.make(rng, clip_seconds, i)
        clip_id = f"{name}_{i:06d}"
        rel = f"audio/{clip_id}.wav"
        with atomic_path(out_dir / rel) as tmp:
            sf.write(tmp, audio, SR, subtype="PCM_16", format="WAV")
        rows.append({"clip_id": clip_id, "path": rel, "split": split[i], "labels": ";".join(labels)})
    table = pd.DataFrame(rows)
    with atomic_path(out_dir / "labels.csv") as tmp:
        table.to_csv(tmp, index=False)
    with atomic_path(out_dir / "vocabulary.txt") as tmp:
        tmp.write_text("\n".join(spec.labels) + "\n")
    log.info("generated %s: %d clips of %.1f s in %s", name, n_clips, clip_seconds, out_dir)
    return table
