"""Benchmark the ``segment`` stage: clips per second and real-time factor.

Two workloads, each run through :func:`pipeline.data.segment.segment_dataset` exactly as the
pipeline runs it:

- **fsdd**: the Free Spoken Digit recordings from a local folder (``--fsdd DIR`` holding
  ``recordings/*.wav``; 8 kHz, ~0.44 s each -> many tiny files, resampled 8 -> 16 kHz);
- **mp3**: ``--n-mp3`` generated 44.1 kHz stereo mp3 files of ``--mp3-seconds`` (default 30 s,
  the MagnaTagATune clip length) as a folder dataset (decode + downmix + resample 44.1 -> 16 kHz).

Each workload runs once per ``--threads`` value (torch intra-op threads; 0 = torch's default)
and ``--resample-threads`` value (:data:`pipeline.audio.io.RESAMPLE_THREADS`, the threads
the resampler is scoped to; 0 = the ``--threads`` value, the behaviour before that scope),
so the table reports ratios measured in one run on one machine. ``--rounds`` repeats the
whole set, alternating, for paired timings. Real-time factor (RTF) =
processing seconds / audio seconds (lower is faster); ``x realtime`` is its inverse.

Usage::

    .venv/bin/python benchmarks/segment.py --fsdd /path/to/fsdd --n-mp3 8 --threads 1,0 --json out.json
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
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
from pipeline.config.params import load_params  # noqa: E402
from pipeline.core.paths import Layout  # noqa: E402
from pipeline.data.registry import get_source  # noqa: E402
from pipeline.data.segment import segment_dataset  # noqa: E402


def _make_mp3s(folder: Path, n: int, seconds: float, sr: int = 44100) -> None:
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * sr)) / sr
    for i in range(n):
        left = 0.3 * np.sin(2 * np.pi * (220 + 30 * i) * t) + 0.02 * rng.standard_normal(len(t))
        right = 0.3 * np.sin(2 * np.pi * (330 + 30 * i) * t) + 0.02 * rng.standard_normal(len(t))
        path = folder / ("a" if i % 2 else "b") / f"track{i:03d}.mp3"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(path), np.stack([left, right], axis=1).astype(np.float32), sr, format="MP3")


def _run(dataset: str, params, layout: Layout, threads: int, default_threads: int, resample_threads: int = 1) -> dict:
    import pipeline.audio.io as audio

    torch.set_num_threads(threads or default_threads)
    before, audio.RESAMPLE_THREADS = audio.RESAMPLE_THREADS, resample_threads
    try:
        t0 = time.perf_counter()
        out = segment_dataset(dataset, params, layout)
        wall = time.perf_counter() - t0
    finally:
        audio.RESAMPLE_THREADS = before
    meta = json.loads((out / "meta.json").read_text())
    clips = int(meta["coverage"]["present"])
    audio_s = float(meta["total_seconds"])
    return {
        "workload": dataset if dataset != "folder" else "mp3",
        "threads": threads or f"default ({default_threads})",
        "resample_threads": resample_threads or "= threads",
        "clips": clips,
        "audio_s": round(audio_s, 2),
        "wall_s": round(wall, 3),
        "clips_per_s": round(clips / wall, 2),
        "rtf": round(wall / audio_s, 5),
        "x_realtime": round(audio_s / wall, 1),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fsdd", type=Path, help="folder holding recordings/*.wav (a copy of FSDD); omitted: skip")
    ap.add_argument("--n-mp3", type=int, default=8, help="generated mp3 files (0: skip)")
    ap.add_argument("--mp3-seconds", type=float, default=30.0)
    ap.add_argument("--threads", default="1,0", help="comma-separated torch thread counts to compare (0 = default)")
    ap.add_argument(
        "--resample-threads", default="1", help="comma-separated resampler thread counts to compare (0 = the --threads value)"
    )
    ap.add_argument("--rounds", type=int, default=1, help="repeat every setting, alternating")
    ap.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    default_threads = torch.get_num_threads()
    threads = [int(x) for x in args.threads.split(",") if x.strip()]
    settings = [(n, r) for n in threads for r in (int(x) for x in args.resample_threads.split(",") if x.strip())]
    rows: list[dict] = []
    work = Path(tempfile.mkdtemp(prefix="musicrep-bench-segment-"))
    try:
        if args.fsdd:
            if not (args.fsdd / "recordings").is_dir():
                ap.error(f"{args.fsdd} has no recordings/ folder")
            layout = Layout(work / "fsdd")
            params = load_params(REPO / "params.yaml", overrides={"datasets": {"fsdd": {"mirror": str(args.fsdd.resolve())}}})
            get_source("fsdd", params).fetch(layout.raw("fsdd"), params)
            rows += [_run("fsdd", params, layout, n, default_threads, r) for _ in range(args.rounds) for n, r in settings]
        if args.n_mp3 > 0:
            audio = work / "mp3-audio"
            _make_mp3s(audio, args.n_mp3, args.mp3_seconds)
            layout = Layout(work / "mp3")
            params = load_params(
                REPO / "params.yaml",
                overrides={"datasets": {"folder": {"path": str(audio), "clip_seconds": min(60.0, args.mp3_seconds)}}},
            )
            get_source("folder", params).fetch(layout.raw("folder"), params)
            rows += [_run("folder", params, layout, n, default_threads, r) for _ in range(args.rounds) for n, r in settings]
    finally:
        torch.set_num_threads(default_threads)
        shutil.rmtree(work, ignore_errors=True)
    if not rows:
        ap.error("nothing to run: pass --fsdd DIR and/or --n-mp3 N")
    cols = ["workload", "threads", "resample_threads", "clips", "audio_s", "wall_s", "clips_per_s", "rtf", "x_realtime"]
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in cols}
    print("  ".join(c.ljust(widths[c]) for c in cols))
    for r in rows:
        print("  ".join(str(r[c]).ljust(widths[c]) for c in cols))
    env = {
        **describe("cpu"),
        "soundfile": sf.__version__,
        "libsndfile": sf.__libsndfile_version__,
        "torch_default_threads": default_threads,
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"results": rows, "environment": env}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
