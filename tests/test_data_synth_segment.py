"""Synthetic datasets and the segment stage."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from pipeline.core.paths import Layout
from pipeline.data import synth
from pipeline.data.shards import SegmentStore
from pipeline.orchestration import stages


def test_synth_is_deterministic(tmp_path: Path) -> None:
    a = synth.generate("synth_tags", tmp_path / "a", 6, 1.0, seed=3)
    b = synth.generate("synth_tags", tmp_path / "b", 6, 1.0, seed=3)
    c = synth.generate("synth_tags", tmp_path / "c", 6, 1.0, seed=4)
    assert a.equals(b)
    xa = sf.read(tmp_path / "a" / a.path[0])[0]
    assert np.array_equal(xa, sf.read(tmp_path / "b" / b.path[0])[0])
    assert not np.array_equal(xa, sf.read(tmp_path / "c" / c.path[0])[0])


def test_synth_label_structure(tmp_path: Path) -> None:
    tags = synth.generate("synth_tags", tmp_path / "t", 40, 1.0, seed=0)
    labels = [set(s.split(";")) for s in tags["labels"]]
    assert all(len(tagset) >= 3 for tagset in labels)  # register, mode, tempo + instruments: tags co-occur
    assert all(({"low", "high"} & tagset) and ({"chords", "melody"} & tagset) for tagset in labels)
    kw = synth.generate("synth_keywords", tmp_path / "k", 24, 1.0, seed=0)
    assert set(kw["labels"]) == set(synth.KEYWORDS)
    ev = synth.generate("synth_events", tmp_path / "e", 20, 2.0, seed=0)
    assert {x for s in ev["labels"] for x in s.split(";")} <= set(synth.EVENTS)
    assert set(tags["split"]) == {"train", "val", "test"}


def test_harmonic_labels_differ_in_spectrum() -> None:
    """Clarinet (odd harmonics) vs brass (all harmonics): the 2nd harmonic tells them apart."""
    f0 = np.full(16000, 220.0)
    for name, expect_even in (("clarinet", False), ("brass", True)):
        x = synth._harmonic_tone(f0, synth._instrument_partials(name))
        spec = np.abs(np.fft.rfft(x))
        assert (spec[440] > 0.1 * spec[220]) == expect_even


def test_segment_writes_shards_manifest_and_skips_bad_files(tmp_path: Path, tiny_params) -> None:
    params = tiny_params(tasks=["synth_keywords"])
    layout = Layout(tmp_path)
    raw = stages.download("synth_keywords", params, layout)
    table = pd.read_csv(raw / "labels.csv")
    (raw / table.path[0]).write_bytes(b"RIFF not really audio")  # corrupt
    sf.write(raw / table.path[1], np.zeros(16000, dtype=np.float32), 16000)  # silent
    sf.write(raw / table.path[2], np.zeros(0, dtype=np.float32), 16000)  # empty
    out = stages.segment("synth_keywords", params, layout)
    store = SegmentStore(out)
    m = store.manifest
    assert list(m.columns[:7]) == ["clip_id", "split", "labels", "shard", "offset", "n_samples", "source_sha256"]
    assert len(m) == len(table) - 3
    report = json.loads((out / "report.json").read_text())
    reasons = {r["clip_id"]: r["reason"] for r in report["skipped"]}
    assert set(reasons) == set(table.clip_id[:3])
    assert "silent" in reasons[table.clip_id[1]]
    assert report["coverage"]["present"] == len(m) and report["coverage"]["expected"] == len(table)
    wave = store.wave(m.iloc[0])
    assert wave.dtype == np.float32 and len(wave) == 16000
    ref = sf.read(raw / table.path[3], dtype="float32")[0]
    assert np.allclose(store.wave(m.iloc[0]), ref, atol=1e-6)
    shard = np.load(out / m.shard[0], mmap_mode="r")
    assert isinstance(shard, np.memmap)


def test_segment_resamples_and_mixes_down(tmp_path: Path, tiny_params) -> None:
    from pipeline.audio.io import read_audio

    t = np.arange(44100) / 44100
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 440 * t)], 1).astype(np.float32) * 0.5
    for ext, fmt in ((".wav", "WAV"), (".flac", "FLAC"), (".ogg", "OGG"), (".mp3", "MP3")):
        path = tmp_path / f"x{ext}"
        sf.write(path, stereo, 44100, format=fmt)
        y = read_audio(path)
        assert abs(len(y) - 16000) < 2000, ext  # mp3 adds encoder padding
        peak = np.argmax(np.abs(np.fft.rfft(y[:16000] if len(y) >= 16000 else np.pad(y, (0, 16000 - len(y))))))
        assert abs(peak - 440) <= 2, ext
