"""``predict`` on many short files against ``evaluate`` on as many clips, side by side.

Builds a tiny project in a temporary folder (``synth_keywords``: download, segment, train
one short epoch of a small model, as the tests do), takes ``--n-files`` one-second clips
from its segments and writes each as a WAV file (at ``--rate``; 16 kHz: no resampling).
Then, alternating in one process, ``--repeats`` times each:

- **evaluate**: what the ``evaluate`` stage does for its scores: load the packaged model,
  read the clips from the memory-mapped shards and score them with
  :func:`pipeline.models.inference.predict_clips` (``evaluate.n_chunks`` chunks per clip,
  ``runtime.eval_batch_size`` chunks per forward pass);
- **predict**: :func:`pipeline.inference.predict.predict` on the WAV files (load the model, find the
  files, decode, resample, chunk, forward in batches of ``--batch-size`` chunks shared
  across files, per-file scores);
- **one file per batch** (unless ``--no-per-file``): the old behaviour of ``predict``, each
  file's chunks forwarded on their own (same decoding, same model), emulated by running
  :func:`pipeline.inference.predict.iter_outputs` on one file at a time.

Reported: median wall seconds of each and the ratios ``predict / evaluate`` (goal <= 1.5)
and ``one file per batch / predict``.

Usage::

    .venv/bin/python benchmarks/predict.py --n-files 600 --repeats 3 --json bench-predict.json
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks._machine import describe  # noqa: E402
from pipeline.audio.chunking import eval_starts  # noqa: E402
from pipeline.config.params import load_params  # noqa: E402
from pipeline.core.paths import Layout  # noqa: E402
from pipeline.data.shards import SegmentStore  # noqa: E402
from pipeline.inference.predict import BATCH_SIZE  # noqa: E402
from pipeline.orchestration import stages  # noqa: E402

TASK = "synth_keywords"


def _project(work: Path, model: str, n_clips: int):
    """Download, segment and train a tiny model; return ``(params, layout, model_dir)``."""
    overrides = {
        "grid": {"tasks": [TASK], "models": [model]},
        "datasets": {TASK: {"n_clips": n_clips, "clip_seconds": 1.0}},
        "train": {"epochs": 1, "batch_size": 8, "width": 0.125, "steps_per_epoch": 3},
        "features": {"enabled": False},
    }
    params = load_params(REPO / "params.yaml", overrides=overrides)
    layout = Layout(work / "project")
    stages.download(TASK, params, layout)
    stages.segment(TASK, params, layout)
    return params, layout, stages.train(TASK, model, params, layout, resume=False)


def _write_wavs(store: SegmentStore, rows, folder: Path, rate: int) -> list[Path]:
    from pipeline.audio.io import resample

    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i, wave in enumerate(store.waves(rows)):
        path = folder / f"clip{i:05d}.wav"
        sf.write(path, resample(np.asarray(wave, np.float32), 16000, rate) if rate != 16000 else wave, rate, subtype="FLOAT")
        files.append(path)
    return files


def _evaluate(params, model_dir: Path, store: SegmentStore, rows) -> tuple[float, int]:
    from pipeline.models.checkpoint import load_model
    from pipeline.models.inference import predict_clips

    t0 = time.perf_counter()
    model, _ = load_model(model_dir, map_location="cpu")
    scores = predict_clips(
        model,
        store.waves(rows),
        n_chunks=params.evaluate.n_chunks,
        batch_size=params.runtime.eval_batch_size,
        device=torch.device("cpu"),
        bf16=params.train.bf16,
    )
    wall = time.perf_counter() - t0
    assert len(scores) == len(rows)
    chunks = sum(
        len(eval_starts(max(int(n), model.input_length), model.input_length, params.evaluate.n_chunks)) for n in rows["n_samples"]
    )
    return wall, chunks


def _predict(model_dir: Path, files: list[Path], batch_size: int) -> tuple[float, int]:
    from pipeline.inference.predict import predict

    t0 = time.perf_counter()
    pred = predict(files, str(model_dir), batch_size=batch_size, device="cpu")
    wall = time.perf_counter() - t0
    assert len(pred.records) == len(files) and not pred.failures
    return wall, sum(r["n_chunks"] for r in pred.records)


def _one_file_per_batch(model_dir: Path, files: list[Path], batch_size: int) -> tuple[float, int]:
    from pipeline.inference.predict import _chunk_length, collect_inputs, iter_outputs, load_for_inference
    from pipeline.models.inference import activate
    from pipeline.models.runtime import Runtime

    t0 = time.perf_counter()
    net, _card, _ = load_for_inference(str(model_dir), Runtime.resolve("cpu"))
    chunk, hop = _chunk_length(net, None, None)
    multilabel = bool(net.config.multilabel)
    n = 0
    for path in collect_inputs(files):
        (out,) = iter_outputs(
            net, [path], lambda x: activate(net(x).float(), multilabel), chunk=chunk, hop=hop, batch_size=batch_size
        )
        n += out.n_chunks
    return time.perf_counter() - t0, n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n-files", type=int, default=600, help="one-second files for predict = clips for evaluate")
    ap.add_argument("--model", default="hcnn", help="grid model trained for the benchmark (tiny width, 3 steps)")
    ap.add_argument("--rate", type=int, default=16000, help="sample rate of the WAV files (16000: no resampling)")
    ap.add_argument(
        "--batch-size", type=int, default=BATCH_SIZE, help=f"predict --batch-size (default {BATCH_SIZE}, its default)"
    )
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (0 = torch's default)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-per-file", action="store_true", help="skip the one-file-per-batch emulation")
    ap.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="musicrep-bench-predict-"))
    try:
        t0 = time.perf_counter()
        params, layout, model_dir = _project(work, args.model, max(48, args.n_files))
        store = SegmentStore(layout.segments(TASK))
        rows = store.manifest.iloc[: args.n_files].reset_index(drop=True)
        files = _write_wavs(store, rows, work / "wavs", args.rate)
        setup_s = time.perf_counter() - t0
        runs: dict[str, list[float]] = {"evaluate": [], "predict": [], "one_file_per_batch": []}
        chunks: dict[str, int] = {}
        _predict(model_dir, files[:8], args.batch_size)  # warm-up: imports, allocator, page cache
        _evaluate(params, model_dir, store, rows.iloc[:8])
        for _ in range(args.repeats):
            wall, chunks["evaluate"] = _evaluate(params, model_dir, store, rows)
            runs["evaluate"].append(wall)
            wall, chunks["predict"] = _predict(model_dir, files, args.batch_size)
            runs["predict"].append(wall)
            if not args.no_per_file:
                wall, chunks["one_file_per_batch"] = _one_file_per_batch(model_dir, files, args.batch_size)
                runs["one_file_per_batch"].append(wall)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    median = {k: statistics.median(v) for k, v in runs.items() if v}
    result = {
        "model": args.model,
        "n_files": len(files),
        "rate": args.rate,
        "batch_size": args.batch_size,
        "evaluate_batch_size": params.runtime.eval_batch_size,
        "evaluate_n_chunks": params.evaluate.n_chunks,
        "chunks": chunks,
        "wall_s": {k: [round(x, 4) for x in v] for k, v in runs.items() if v},
        "median_s": {k: round(v, 4) for k, v in median.items()},
        "files_per_s": {k: round(len(files) / v, 1) for k, v in median.items()},
        "ratio_predict_over_evaluate": round(median["predict"] / median["evaluate"], 3),
        "setup_s": round(setup_s, 1),
    }
    if "one_file_per_batch" in median:
        result["ratio_one_file_per_batch_over_evaluate"] = round(median["one_file_per_batch"] / median["evaluate"], 3)
        result["ratio_one_file_per_batch_over_predict"] = round(median["one_file_per_batch"] / median["predict"], 3)
    print(f"{len(files)} one-second files ({args.rate} Hz), {args.model}, torch threads {torch.get_num_threads()}")
    for k, v in median.items():
        print(f"  {k:<20} {v:8.3f} s  {len(files) / v:8.1f} files/s  {chunks[k]} chunks")
    print(f"  predict / evaluate = {result['ratio_predict_over_evaluate']}")
    if "one_file_per_batch" in median:
        print(f"  one file per batch / evaluate = {result['ratio_one_file_per_batch_over_evaluate']}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"results": result, "environment": describe("cpu")}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
