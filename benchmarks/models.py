"""Benchmark the model zoo: parameters, training throughput and peak memory per variant.

Every variant runs at its paper input length (home task, 50 outputs, multi-label) for
``--steps`` timed training steps (forward + BCE-with-logits + backward) after one warm-up
step. Each variant is measured in a fresh process so CPU peak memory (``ru_maxrss``
growth) belongs to that variant alone; on CUDA peak memory is
``torch.cuda.max_memory_allocated``.

Examples::

    .venv/bin/python benchmarks/models.py --steps 1 --batch 4 --variants short_cnn musicnn
    .venv/bin/python benchmarks/models.py --device cuda --bf16 --compile --json bench.json

Numbers from one run are comparable with each other (same machine, same load); compare
ratios, not absolute times, across machines.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import logging
import multiprocessing
import resource
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks._machine import describe  # noqa: E402
from pipeline.models.base import ModelConfig  # noqa: E402
from pipeline.models.zoo import VARIANTS, build_model, count_parameters, input_length_for  # noqa: E402

logger = logging.getLogger("benchmarks.models")

MTAT_CLIP_SAMPLES = 465_600  # 29.1 s at 16 kHz: each variant's paper L for the tagging task
N_CLASSES = 50


@dataclass
class BenchmarkResult:
    """One variant's measurement (``error`` set and numbers zero when the run failed)."""

    variant: str
    input_length: int
    params: int
    batch: int
    steps: int
    device: str
    step_seconds: float
    samples_per_second: float
    peak_memory_mb: float
    compile: bool
    bf16: bool
    error: str | None = None


def _peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(
    variant: str, batch: int, steps: int, device_name: str, compile_model: bool, bf16: bool, threads: int | None
) -> BenchmarkResult:
    """Time ``steps`` training steps of ``variant`` (after one warm-up) and record peak memory."""
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    device = torch.device(device_name)
    length = input_length_for(variant, "paper", MTAT_CLIP_SAMPLES, "multilabel")
    config = ModelConfig(variant, N_CLASSES, multilabel=True, input_length=length)
    model = build_model(config).to(device).train()
    params = count_parameters(model)
    step_model = torch.compile(model) if compile_model else model
    wave = torch.randn(batch, length, device=device) * 0.1
    target = torch.randint(0, 2, (batch, N_CLASSES), device=device).float()
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()

    def step() -> None:
        with autocast:
            loss = F.binary_cross_entropy_with_logits(step_model(wave).float(), target)
        loss.backward()
        model.zero_grad(set_to_none=True)

    rss_before = _peak_rss_mb()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    step()  # warm-up (and compilation)
    _sync(device)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - start)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        peak = _peak_rss_mb() - rss_before
    median = statistics.median(times)
    return BenchmarkResult(variant, length, params, batch, steps, device_name, median, batch / median, peak, compile_model, bf16)


def _measure_isolated(args: tuple) -> BenchmarkResult:
    variant, batch, steps, device, compile_model, bf16, threads = args
    try:
        return measure(variant, batch, steps, device, compile_model, bf16, threads)
    except Exception as exc:  # noqa: BLE001 - report the failure in the table, keep going
        return BenchmarkResult(
            variant, 0, 0, batch, steps, device, 0.0, 0.0, 0.0, compile_model, bf16, error=f"{type(exc).__name__}: {exc}"
        )


def format_table(results: list[BenchmarkResult], reference: str = "fcn") -> str:
    """Plain-text table of the results; ``x ref`` = samples/s relative to ``reference`` in the same run."""
    ref = next((r.samples_per_second for r in results if r.variant == reference and not r.error), None)
    header = (
        f"{'variant':<15}{'L':>9}{'params':>13}{'step s':>9}{'samples/s':>11}"
        f"{'x ' + reference if ref else '':>10}{'peak MiB':>10}"
    )
    lines = [header, "-" * len(header)]
    for r in results:
        if r.error:
            lines.append(f"{r.variant:<15}  failed: {r.error}")
            continue
        ratio = f"{r.samples_per_second / ref:>10.2f}" if ref else f"{'':>10}"
        lines.append(
            f"{r.variant:<15}{r.input_length:>9,}{r.params:>13,}{r.step_seconds:>9.3f}"
            f"{r.samples_per_second:>11.2f}{ratio}{r.peak_memory_mb:>10.0f}"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--variants",
        nargs="+",
        default=list(VARIANTS),
        choices=list(VARIANTS),
        metavar="NAME",
        help="variants to measure (default: all)",
    )
    parser.add_argument("--batch", type=int, default=16, help="batch size (default 16)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps after one warm-up (default 3)")
    parser.add_argument(
        "--device",
        default="cuda" if torch.cuda.is_available() else "cpu",
        help="torch device (default: cuda if available, else cpu)",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--compile", action="store_true", help="wrap the model in torch.compile")
    parser.add_argument("--bf16", action="store_true", help="autocast to bfloat16")
    parser.add_argument("--json", type=Path, default=None, metavar="OUT", help="also write the results as JSON")
    args = parser.parse_args(argv)
    if args.batch < 2:
        parser.error("--batch must be >= 2 (BatchNorm in training mode)")
    if args.steps < 1:
        parser.error("--steps must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = parse_args(argv)
    results = []
    context = multiprocessing.get_context("spawn")
    for variant in args.variants:
        logger.info("measuring %s (batch %d, %d steps, %s)", variant, args.batch, args.steps, args.device)
        with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            job = (variant, args.batch, args.steps, args.device, args.compile, args.bf16, args.threads)
            results.append(pool.submit(_measure_isolated, job).result())
    table = format_table(results)
    sys.stdout.write(table + "\n")
    if args.json:
        meta = describe(args.device)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"meta": meta, "results": [asdict(r) for r in results]}, indent=2))
        logger.info("wrote %s", args.json)
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
