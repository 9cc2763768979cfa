"""How much do two grid cells side by side gain over one? Paired runs of the same training loop.

`make repro` runs one cell per core, one torch thread each. Whether that doubles the grid's
throughput depends on the machine: two vCPUs that are SMT siblings of one physical core share
its execution units. This runs the pipeline's training loop (``benchmarks/train_loop.py``, one
torch thread) once alone and then ``--jobs`` copies at once, alternating ``--rounds`` times, and
reports per-process samples/s and the aggregate speed-up ``jobs x parallel / alone``.

    .venv/bin/python benchmarks/parallel_cells.py --model short_cnn --steps 40 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks._harness import benchmark_parser  # noqa: E402
from benchmarks._machine import describe  # noqa: E402


def _launch(args: argparse.Namespace, out: Path) -> subprocess.Popen:
    cmd = [
        sys.executable,
        str(REPO / "benchmarks" / "train_loop.py"),
        "--device",
        "cpu",
        "--model",
        args.model,
        "--width",
        str(args.width),
        "--steps",
        str(args.steps),
        "--clips",
        str(args.clips),
        "--seconds",
        str(args.seconds),
        "--json",
        str(out),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _rates(args: argparse.Namespace, jobs: int, tmp: Path, tag: str) -> list[float]:
    outs = [tmp / f"{tag}-{i}.json" for i in range(jobs)]
    procs = [_launch(args, out) for out in outs]
    for proc in procs:
        _, err = proc.communicate()
        if proc.returncode:
            raise SystemExit(f"train_loop.py failed: {err[-2000:]}")
    return [json.loads(out.read_text())["results"][0]["samples_per_second"] for out in outs]


def main() -> None:
    ap = benchmark_parser(__doc__, width=0.25, steps=40, clips=128, seconds=2, jobs=2, rounds=2)
    ap.add_argument("--model", default="short_cnn")
    args = ap.parse_args()
    alone: list[float] = []
    side: list[float] = []
    with tempfile.TemporaryDirectory() as d:
        for r in range(args.rounds):
            alone += _rates(args, 1, Path(d), f"alone{r}")
            side += _rates(args, args.jobs, Path(d), f"side{r}")
    a, s = statistics.median(alone), statistics.median(side)
    result = {
        "machine": describe("cpu"),
        "model": args.model,
        "width": args.width,
        "jobs": args.jobs,
        "alone_samples_per_s": a,
        "side_by_side_samples_per_s_each": s,
        "per_process_slowdown": a / s,
        "aggregate_speedup": args.jobs * s / a,
        "runs": {"alone": alone, "side_by_side": side},
    }
    print(
        f"{args.model} width {args.width}: alone {a:.1f} samples/s; {args.jobs} side by side {s:.1f} samples/s each "
        f"(each {a / s:.2f}x slower); aggregate speed-up {args.jobs * s / a:.2f}x"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
