"""oneDNN (mkldnn) convolutions on or off for CPU training, per variant, side by side.

PyTorch runs CPU convolutions through oneDNN by default; for some layer shapes its native
kernels are faster (musicnn's backward was measured 2x faster without oneDNN, so its
``VariantSpec.cpu_mkldnn`` is off and ``runtime.mkldnn: auto`` follows it). This times one
training step (forward, backward, Adam step) of every smoke-profile variant with oneDNN on and
off, alternating the two in ``--rounds`` rounds in one process, on the input the smoke grid
trains on (1 s = 16,000 samples, width 0.25, batch 16, one torch thread), and reports the
median step time of each and ``off / on`` (below 1: off is faster).

    .venv/bin/python benchmarks/mkldnn.py --rounds 3 --steps 4 --json mkldnn.json
"""

from __future__ import annotations

import functools
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks._harness import alternating_medians, benchmark_parser, write_results  # noqa: E402
from pipeline.models.base import ModelConfig  # noqa: E402
from pipeline.models.zoo import VARIANTS, build_model, input_length_for  # noqa: E402


def _step_seconds(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, opt: torch.optim.Optimizer, steps: int, on: bool
) -> float:
    loss_fn = torch.nn.BCEWithLogitsLoss()
    times = []
    with torch.backends.mkldnn.flags(enabled=on):
        for i in range(steps + 1):  # the first step warms up (allocations, kernel choice)
            t = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            loss_fn(model(x), y).backward()
            opt.step()
            if i:
                times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = benchmark_parser(__doc__, width=0.25, batch=16, steps=4, rounds=3)
    ap.add_argument("--models", nargs="+", default=list(VARIANTS))
    ap.add_argument("--samples", type=int, default=16_000, help="clip length in samples (the smoke crop: 1 s)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = []
    for name in args.models:
        if name not in VARIANTS:
            raise SystemExit(f"unknown variant {name!r}")
        length = input_length_for(name, "smoke", args.samples, "multilabel")
        torch.manual_seed(0)
        model = build_model(ModelConfig(name, 14, multilabel=True, width=args.width, input_length=length)).train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        x, y = torch.randn(args.batch, length) * 0.1, (torch.rand(args.batch, 14) > 0.7).float()
        step = functools.partial(_step_seconds, model, x, y, opt, args.steps)
        timings = {"on_s": functools.partial(step, True), "off_s": functools.partial(step, False)}
        row = {
            "model": name,
            "input_length": length,
            **alternating_medians(timings, args.rounds),
            "default_on": VARIANTS[name].cpu_mkldnn,
        }
        row["off_over_on"] = row["off_s"] / row["on_s"]
        rows.append(row)
        print(
            f"{name:<14} L={length:>6}  oneDNN on {row['on_s'] * 1e3:7.1f} ms  off {row['off_s'] * 1e3:7.1f} ms  "
            f"off/on {row['off_over_on']:.2f}  (default: {'on' if row['default_on'] else 'off'})",
            flush=True,
        )
    write_results(args, rows)


if __name__ == "__main__":
    main()
