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
    res = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / script), *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )
    assert res.returncode == 0, f"{script} failed:\n{res.stdout[-2000:]}\n{res.stderr[-3000:]}"
    return res


def test_models_benchmark(tmp_path: Path) -> None:
    out = tmp_path / "models.json"
    res = _bench(
        "models.py",
        "--variants",
        "attention_rnn",
        "gated_crnn",
        "--batch",
        "2",
        "--steps",
        "1",
        "--threads",
        "1",
        "--json",
        str(out),
    )
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


def test_mkldnn_benchmark(tmp_path: Path) -> None:
    out = tmp_path / "mkldnn.json"
    _bench("mkldnn.py", "--models", "fcn", "musicnn", "--rounds", "1", "--steps", "1", "--json", str(out))
    rows = json.loads(out.read_text())["results"]
    assert [r["model"] for r in rows] == ["fcn", "musicnn"] and [r["default_on"] for r in rows] == [True, False]
    assert all(r["on_s"] > 0 and r["off_s"] > 0 and r["input_length"] == 16_000 for r in rows)


def test_parallel_cells_benchmark(tmp_path: Path) -> None:
    out = tmp_path / "parallel.json"
    _bench("parallel_cells.py", "--model", "fcn", "--steps", "2", "--clips", "32", "--rounds", "1", "--json", str(out))
    res = json.loads(out.read_text())
    assert res["jobs"] == 2 and len(res["runs"]["alone"]) == 1 and len(res["runs"]["side_by_side"]) == 2
    assert res["aggregate_speedup"] > 0


def test_startup_benchmark(tmp_path: Path) -> None:
    out = tmp_path / "startup.json"
    _bench("startup.py", "--repeats", "1", "--only", "python", "cli --help", "--json", str(out))
    rows = json.loads(out.read_text())["results"]
    probes = {(p, m) for p in ("python", "cli --help") for m in ("bytecode", "no bytecode")}
    assert {(r["probe"], r["mode"]) for r in rows} == probes | {("first log line of musicrep train", "bytecode")}
    assert all(r["cpu_s"] is None or r["cpu_s"] >= 0 for r in rows) and all(r["wall_s"] > 0 for r in rows)


def test_train_loop_benchmark(tmp_path: Path) -> None:
    out = tmp_path / "loop.json"
    _bench(
        "train_loop.py",
        *"--device cpu --model fcn --width 0.125 --steps 2 --warmup 1 --clips 16 --seconds 2".split(),
        "--json",
        str(out),
    )
    row = json.loads(out.read_text())["results"][0]
    assert row["samples_per_second"] > 0 and 0 < row["device_busy_fraction"] <= 1.0


def test_predict_benchmark(tmp_path: Path) -> None:
    out = tmp_path / "predict.json"
    res = _bench("predict.py", "--n-files", "6", "--repeats", "1", "--rate", "22050", "--json", str(out))
    result = json.loads(out.read_text())["results"]
    assert result["n_files"] == 6 and result["chunks"]["predict"] >= 6 and result["chunks"]["evaluate"] >= 6
    assert result["ratio_predict_over_evaluate"] > 0 and result["ratio_one_file_per_batch_over_predict"] > 0
    assert "predict / evaluate" in res.stdout


def test_validation_benchmark(tmp_path: Path) -> None:
    out = tmp_path / "validation.json"
    _bench("validation.py", "--clips", "6", "--repeats", "1", "--json", str(out))
    result = json.loads(out.read_text())["results"]
    assert result["config"]["chunks"] == 18 and result["ratio_current_over_former"] > 0  # 2-s clips, 1-s input, 3 chunks
    assert result["data_path_ratio_current_over_former"] > 0 and result["waves_mib"] > 0


def test_grid_benchmark_parses_a_repro_log(tmp_path: Path) -> None:
    log = tmp_path / "repro.log"
    log.write_text(
        "\n".join(
            [
                "[repro] start 100.0",
                "[repro] data-done 130.0",
                "[repro] cell cell-fcn@synth_tags-0 130.0 160.0",
                "INFO pipeline.orchestration.stages: cell synth_tags/fcn seed0 done in 25.0 s (train 20.0 s, evaluate 1.0 s, robustness 4.0 s)",
                "[repro] cell cell-mfcc_short_cnn@synth_tags-0 131.0 150.0",
                "INFO pipeline.orchestration.stages: cell synth_tags/mfcc+short_cnn seed0 done in 15.0 s (train 12.0 s, evaluate 1.0 s, robustness 2.0 s)",
                "[repro] cells-done 160.0",
                "[repro] report-done 190.0",
                "real\t2m0.000s",
                "user\t3m0.000s",
                "sys\t0m10.000s",
            ]
        )
    )
    out = tmp_path / "grid.json"
    _bench("grid.py", str(log), "--jobs", "2", "--json", str(out))
    result = json.loads(out.read_text())
    assert result["phases_s"] == {"data stages": 30.0, "cells": 30.0, "report": 30.0, "environment and the rest": 30.0}
    summary = result["cell_summary"]
    assert summary["cells_run"] == 2 and summary["sum_work_s"] == 40.0 and summary["sum_fixed_s"] == 9.0
    assert summary["core_use"] == (30.0 + 19.0) / 60.0


def test_bf16_benchmark(tmp_path: Path) -> None:
    out = tmp_path / "bf16.json"
    _bench("bf16.py", "--models", "attention_rnn", "--batch", "2", "--steps", "1", "--rounds", "1", "--json", str(out))
    data = json.loads(out.read_text())
    (row,) = data["results"]
    assert row["model"] == "attention_rnn" and row["gflop_per_step"] > 0 and row["bf16_speedup"] > 0
    assert {"fp32 oneDNN on", "bf16 oneDNN on", "fp32 oneDNN off", "bf16 oneDNN off"} <= set(row["ms"])
    assert data["peak"]["fp32_flop_per_cycle"] in (8, 32, 64)


def test_onnx_export_benchmark(tmp_path: Path) -> None:
    out = tmp_path / "onnx.json"
    _bench("onnx_export.py", *"--variants short_res --width 0.125 --batch 2 --steps 1 --rounds 1".split(), "--json", str(out))
    (row,) = json.loads(out.read_text())["results"]
    assert row["error"] is None and row["size_bytes"] > 0 and row["onnx_ms"] > 0 and row["torch_ms"] > 0


def test_corpus_render_benchmark() -> None:
    pytest.importorskip("tinysoundfont")
    res = _bench("corpus_render.py", "--pieces", "5", "--rounds", "1", "--no-build")
    assert "x real time" in res.stderr + res.stdout


@pytest.mark.slow
def test_gpu_check_runs_quick_without_the_tracking_stack(tmp_path: Path) -> None:
    out = tmp_path / "gpu.json"
    subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "gpu.py"), "--quick", "--variants", "attention_rnn", "--json", str(out)],
        check=True,
        timeout=600,
    )
    result = json.loads(out.read_text())
    assert result["forbidden_imported"] == [] and {r["precision"] for r in result["rows"]} == {"fp32", "bf16"}
