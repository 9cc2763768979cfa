"""The benchmark scripts run end to end on tiny settings and write parseable JSON.

They are not timed here (machines are noisy); this only keeps them from rotting. The measured
numbers live in docs/benchmarks.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _bench(script: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    res = subprocess.run([sys.executable, str(REPO / "benchmarks" / script), *args], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, f"{script} failed:\n{res.stdout[-2000:]}\n{res.stderr[-3000:]}"
    return res


def test_models_benchmark(tmp_path: Path) -> None:
    out = tmp_path / "models.json"
    res = _bench("models.py", "--variants", "attention_rnn", "gated_crnn", "--batch", "2", "--steps", "1",
                 "--threads", "1", "--json", str(out))
    rows = json.loads(out.read_text())["results"]
    assert [r["variant"] for r in rows] == ["attention_rnn", "gated_crnn"]
    assert all(r["error"] is None and r["samples_per_second"] > 0 and r["params"] > 0 for r in rows)
    assert "attention_rnn" in res.stdout


def test_perturb_benchmark(tmp_path: Path) -> None:
    out = tmp_path / "perturb.json"
    _bench("perturb.py", "--only", "white_noise", "gain", "--repeats", "1", "--seconds", "1", "--json", str(out))
    text = out.read_text()
    assert "white_noise" in text and "gain" in text
    json.loads(text)


def test_segment_benchmark(tmp_path: Path) -> None:
    out = tmp_path / "segment.json"
    _bench("segment.py", "--n-mp3", "1", "--mp3-seconds", "2", "--threads", "1", "--json", str(out))
    rows = json.loads(out.read_text())["results"]
    assert len(rows) == 1 and rows[0]["clips"] == 1 and rows[0]["clips_per_s"] > 0


@pytest.mark.parametrize("model", ["fcn"])
def test_train_cache_benchmark(tmp_path: Path, model: str) -> None:
    out = tmp_path / "cache.json"
    _bench("train_cache.py", "--models", model, "--seconds", "0.5", "--steps", "1", "--json", str(out))
    result = json.loads(out.read_text())
    assert result["rows"][0]["model"] == model and result["rows"][0]["ratio_cached_over_waveform"] > 0


def test_batches_benchmark(tmp_path: Path) -> None:
    out = tmp_path / "batches.json"
    _bench("batches.py", "--clips", "64", "--repeats", "1", "--json", str(out))
    rows = json.loads(out.read_text())["results"]
    assert [r["mode"] for r in rows] == ["waveform", "features"]
    assert all(r["per_item_ms"] > 0 and r["planned_ms"] > 0 for r in rows)


def test_startup_benchmark(tmp_path: Path) -> None:
    out = tmp_path / "startup.json"
    _bench("startup.py", "--repeats", "1", "--only", "python", "cli --help", "--json", str(out))
    rows = json.loads(out.read_text())["results"]
    assert {(r["probe"], r["mode"]) for r in rows} == {(p, m) for p in ("python", "cli --help") for m in ("bytecode", "no bytecode")}
    assert all(r["cpu_s"] >= 0 for r in rows)


def test_train_loop_benchmark(tmp_path: Path) -> None:
    out = tmp_path / "loop.json"
    _bench("train_loop.py", "--device", "cpu", "--model", "fcn", "--width", "0.125", "--steps", "2", "--warmup", "1",
           "--clips", "16", "--seconds", "2", "--json", str(out))
    row = json.loads(out.read_text())["results"][0]
    assert row["samples_per_second"] > 0 and 0 < row["device_busy_fraction"] <= 1.0
