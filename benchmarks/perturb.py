"""Benchmark the robustness perturbations: clips/s and real-time factor per perturbation.

Each perturbation runs on a batch of ``--batch`` clips of ``--seconds`` s (a harmonic tone
mix with noise, 16 kHz) for ``--repeats`` timed calls after one warm-up call (which also
builds cached resampling kernels); the reported time is the median call. Real-time factor =
seconds of audio processed per second of wall time (higher is faster; 20 = 20x real time).

Examples::

    .venv/bin/python benchmarks/perturb.py --threads 1 --repeats 3
    .venv/bin/python benchmarks/perturb.py --device cuda --batch 32 --json bench_perturb.json

Run it with nothing else busy: on a shared 2-core machine the numbers move by +-30 %.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._machine import describe  # noqa: E402
from pipeline.robustness.noises import synthetic_noises  # noqa: E402
from pipeline.robustness.perturb import apply  # noqa: E402

SR = 16_000
CASES = [
    ("white_noise", 10.0),
    ("background_noise", 0.0),
    ("pitch_shift", 1.0),
    ("pitch_shift", -1.0),
    ("pitch_shift", 0.5),
    ("time_stretch", 0.8),
    ("time_stretch", 1.25),
    ("gain", 6.0),
    ("dynamic_range", 20.0),
    ("ref_white_noise", 0.2),
    ("ref_dynamic_range", 4.0),
    ("ref_time_stretch", 2**0.5),
    ("ref_pitch_shift", -1.0),
]


def _audio(batch: int, seconds: float) -> torch.Tensor:
    t = np.arange(int(seconds * SR)) / SR
    rng = np.random.default_rng(0)
    rows = [
        sum(0.2 / k * np.sin(2 * np.pi * f0 * k * t) for k in range(1, 6)) + 0.01 * rng.standard_normal(len(t))
        for f0 in rng.uniform(110, 440, size=batch)
    ]
    return torch.from_numpy(np.stack(rows).astype(np.float32))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def run(device: torch.device, batch: int, seconds: float, repeats: int, cases=CASES) -> list[dict]:
    x = _audio(batch, seconds).to(device)
    bank = list(synthetic_noises(0).values())
    seeds = list(range(batch))
    out = []
    for name, level in cases:
        apply(name, x, level, seeds, noise=bank)  # warm-up (kernels, caches)
        _sync(device)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            apply(name, x, level, seeds, noise=bank)
            _sync(device)
            times.append(time.perf_counter() - t0)
        med = statistics.median(times)
        out.append(
            {
                "perturbation": name,
                "level": level,
                "device": device.type,
                "batch": batch,
                "seconds": seconds,
                "median_s": round(med, 5),
                "clips_per_s": round(batch / med, 2),
                "realtime_factor": round(batch * seconds / med, 1),
            }
        )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--device", default="cpu", choices=["cpu", "cuda", "both"], help="cpu, cuda, or both (cuda is skipped when absent)"
    )
    ap.add_argument("--batch", type=int, default=1, help="clips per call")
    ap.add_argument("--seconds", type=float, default=4.0, help="clip length in seconds")
    ap.add_argument("--repeats", type=int, default=3, help="timed calls per perturbation")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (0 = torch default)")
    ap.add_argument("--only", nargs="*", help="perturbation names to run (default: all cases)")
    ap.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cases = [c for c in CASES if not args.only or c[0] in args.only]
    devices = ["cpu", "cuda"] if args.device == "both" else [args.device]
    results = []
    for dev in devices:
        if dev == "cuda" and not torch.cuda.is_available():
            print("CUDA not available; skipped", file=sys.stderr)
            continue
        results += run(torch.device(dev), args.batch, args.seconds, args.repeats, cases)
    print(f"{'perturbation':<18} {'level':>7} {'device':>6} {'batch':>5} {'ms/call':>9} {'clips/s':>9} {'x realtime':>10}")
    for r in results:
        print(
            f"{r['perturbation']:<18} {r['level']:>7g} {r['device']:>6} {r['batch']:>5} {1000 * r['median_s']:>9.1f} "
            f"{r['clips_per_s']:>9.1f} {r['realtime_factor']:>10.1f}"
        )
    if args.json:
        meta = describe(args.device if args.device != "both" else "cuda")
        args.json.write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
