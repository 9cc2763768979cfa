"""fp32 vs bf16 autocast for CPU training, per variant, paired in one process, with FLOPs.

Times one training step of every smoke-profile variant as the grid trains it (forward, fp32
BCE-with-logits, backward, Adam; width 0.25, batch 16, 1-s inputs, one torch thread; the
mel variants train on cached front-end outputs, so their step is the back-end alone, as in
``pipeline.training.train``), in fp32 and under ``torch.autocast("cpu", dtype=torch.bfloat16)``, with
oneDNN on and off and, for models with 2-D convolutions, in ``channels_last``. The settings
alternate in ``--rounds`` rounds (each round times ``--steps`` steps of each setting after one
warm-up step), so a slow spell of a shared machine hits them all alike; the table reports the
median step of each setting over the rounds.

FLOPs per training step are counted once per variant with
:class:`torch.utils.flop_counter.FlopCounterMode` on an fp32 step (convolutions, matmuls,
attention and their backward passes; element-wise work, FFTs, recurrent cells outside matmuls
and the Adam update are not counted), and divided by the measured step time to give achieved
GFLOP/s. The speed-up compares the two settings training uses: fp32 with the variant's oneDNN
default (``VariantSpec.cpu_mkldnn``) and bf16 with oneDNN on (``runtime.mkldnn: auto`` under bf16
autocast). The CPU's peak (``benchmarks/_machine.cpu_peak``, from ``/proc/cpuinfo``) is logged
and written to the JSON.

    .venv/bin/python benchmarks/bf16.py --rounds 3 --steps 3 --json bf16.json
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks._harness import benchmark_parser, write_results  # noqa: E402
from benchmarks._machine import cpu_peak  # noqa: E402
from pipeline.models.base import AudioModel, ModelConfig  # noqa: E402
from pipeline.models.inference import cpu_bf16_support  # noqa: E402
from pipeline.models.zoo import VARIANTS, build_model, input_length_for  # noqa: E402

log = logging.getLogger("bf16")
N_CLASSES = 14


def _setup(name: str, samples: int, width: float, batch: int) -> tuple[AudioModel, Callable, torch.Tensor, torch.Tensor]:
    """The model, the training forward (back-end alone for cacheable front-ends) and one batch."""
    length = input_length_for(name, "smoke", samples, "multilabel")
    torch.manual_seed(0)
    model = build_model(ModelConfig(name, N_CLASSES, multilabel=True, width=width, input_length=length)).train()
    x = torch.randn(batch, length) * 0.1
    y = (torch.rand(batch, N_CLASSES) > 0.7).float()
    if model.frontend.cache_spec() is not None:
        with torch.no_grad():
            x = model.frontend(x).detach()
        return model, model.forward_features, x, y
    return model, model, x, y


def _steps(
    fn: Callable, model: AudioModel, x: torch.Tensor, y: torch.Tensor, opt, n: int, *, bf16: bool, mkldnn: bool
) -> list[float]:
    loss_fn = torch.nn.BCEWithLogitsLoss()
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    times = []
    with torch.backends.mkldnn.flags(enabled=mkldnn):
        for i in range(n + 1):  # the first step warms up (allocations, kernel choice)
            t = time.perf_counter()
            with autocast:
                logits = fn(x)
            loss = loss_fn(logits.float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if i:
                times.append(time.perf_counter() - t)
    return times


def count_flops(fn: Callable, model: AudioModel, x: torch.Tensor, y: torch.Tensor) -> int:
    """FLOPs of one fp32 training step (forward + BCE + backward) as FlopCounterMode counts them."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        loss = torch.nn.functional.binary_cross_entropy_with_logits(fn(x), y)
        loss.backward()
    model.zero_grad(set_to_none=True)
    return int(counter.get_total_flops())


def settings_for(model: AudioModel) -> list[tuple[str, bool, bool, bool]]:
    """``(label, bf16, mkldnn, channels_last)`` settings measured for ``model``."""
    rows = []
    for mkldnn in (True, False):
        for bf16 in (False, True):
            rows.append((f"{'bf16' if bf16 else 'fp32'} oneDNN {'on' if mkldnn else 'off'}", bf16, mkldnn, False))
    if any(isinstance(m, torch.nn.Conv2d) for m in model.modules()):
        for bf16 in (False, True):
            rows.append((f"{'bf16' if bf16 else 'fp32'} channels_last", bf16, True, True))
    return rows


def measure(name: str, args: argparse.Namespace) -> dict[str, object]:
    model, fn, x, y = _setup(name, args.samples, args.width, args.batch)
    flops = count_flops(fn, model, x, y)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    settings = settings_for(model)
    times: dict[str, list[float]] = {label: [] for label, *_ in settings}
    for _ in range(args.rounds):
        for label, bf16, mkldnn, channels_last in settings:
            model.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
            xin = x.contiguous(memory_format=torch.channels_last) if channels_last and x.dim() == 4 else x
            times[label].append(statistics.median(_steps(fn, model, xin, y, opt, args.steps, bf16=bf16, mkldnn=mkldnn)))
    model.to(memory_format=torch.contiguous_format)
    ms = {label: 1e3 * statistics.median(v) for label, v in times.items()}
    spec = VARIANTS[name]
    default = "on" if spec.cpu_mkldnn else "off"
    row: dict[str, object] = {
        "model": name,
        "input": list(x.shape),
        "gflop_per_step": flops / 1e9,
        "ms": ms,
        "mkldnn_default": default,
        "bf16_speedup": ms[f"fp32 oneDNN {default}"] / ms["bf16 oneDNN on"],  # as runtime.mkldnn: auto under bf16
        "best": min(ms, key=ms.get),
    }
    row["gflops_fp32"] = flops / 1e9 / (ms[f"fp32 oneDNN {default}"] / 1e3)
    row["gflops_bf16"] = flops / 1e9 / (ms["bf16 oneDNN on"] / 1e3)
    return row


def main() -> None:
    ap = benchmark_parser(__doc__, width=0.25, batch=16, steps=3, rounds=3)
    ap.add_argument("--models", nargs="+", default=list(VARIANTS))
    ap.add_argument("--samples", type=int, default=16_000, help="input length in samples (the smoke crop: 1 s)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(1)
    peak = cpu_peak()
    log.info("CPU bf16 support: %s; peak per core: %s", cpu_bf16_support(), peak)
    rows = []
    for name in args.models:
        if name not in VARIANTS:
            raise SystemExit(f"unknown variant {name!r}")
        row = measure(name, args)
        rows.append(row)
        cells = "  ".join(f"{k} {v:.1f}" for k, v in row["ms"].items())
        log.info(
            "%-14s %.3f GFLOP/step  bf16 speed-up %.2fx  fp32 %.1f / bf16 %.1f GFLOP/s  best: %s  [ms: %s]",
            name,
            row["gflop_per_step"],
            row["bf16_speedup"],
            row["gflops_fp32"],
            row["gflops_bf16"],
            row["best"],
            cells,
        )
    write_results(args, rows, bf16_support=cpu_bf16_support(), peak=peak)


if __name__ == "__main__":
    main()
