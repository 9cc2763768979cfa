"""ONNX export of every registry model: can it be exported, with which axes, how big, how fast.

For each variant (smoke input length of a 1-s keyword clip, ``--width``, 12 outputs, random
weights: the graph, not the weights, sets size and speed) :func:`pipeline.inference.export.export_onnx`
exports the model (dynamic length where the architecture allows, else fixed) and checks it
in onnxruntime. Then, alternating in one process ``--rounds`` times, the same batch of
``--batch`` chunks runs ``--steps`` times through PyTorch (``torch.no_grad``, eval mode) and
through onnxruntime (CPU provider); both use ``--threads`` threads. Reported per variant: dynamic
length or why not, file size (and the size of the PyTorch ``state_dict``), parameters, median milliseconds per batch of each, and the
ratio ``onnxruntime / PyTorch`` (below 1: onnxruntime is faster).

Usage::

    .venv/bin/python benchmarks/onnx_export.py --json bench-onnx.json
"""

from __future__ import annotations

import argparse
import functools
import io
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks._harness import alternating_medians, write_results  # noqa: E402
from pipeline.inference.export import INPUT_NAME, export_onnx  # noqa: E402
from pipeline.models.base import ModelConfig  # noqa: E402
from pipeline.models.zoo import VARIANTS, build_model, count_parameters, input_length_for  # noqa: E402


def _torch_forward(model: torch.nn.Module, x: torch.Tensor) -> None:
    with torch.no_grad():
        model(x)


def _seconds(fn, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - start) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS))
    ap.add_argument("--width", type=float, default=0.25, help="channel width (smoke profile: 0.25)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=3, help="forward passes per timing")
    ap.add_argument("--rounds", type=int, default=5, help="alternating PyTorch/onnxruntime timings")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    import onnxruntime as ort

    rows = []
    with tempfile.TemporaryDirectory() as work:
        for name in args.variants:
            length = input_length_for(name, "smoke", 16_000, "single")
            torch.manual_seed(0)
            model = build_model(ModelConfig(name, 12, multilabel=False, width=args.width, input_length=length)).eval()
            buffer = io.BytesIO()
            torch.save(model.state_dict(), buffer)
            row: dict = {
                "variant": name,
                "input_length": length,
                "params": count_parameters(model),
                "torch_bytes": buffer.tell(),
                "error": None,
            }
            started = time.perf_counter()
            try:
                result = export_onnx(model, {"labels": [str(i) for i in range(12)]}, Path(work) / f"{name}.onnx")
            except Exception as exc:  # noqa: BLE001 - a variant that cannot be exported is a result
                row["error"] = f"{type(exc).__name__}: {exc}"
                rows.append(row)
                print(f"{name:<14} cannot be exported: {row['error']}", flush=True)
                continue
            row.update(
                export_s=time.perf_counter() - started,
                dynamic_length=result.dynamic_length,
                length_note=result.length_note,
                size_bytes=result.size_bytes,
                max_abs_diff=result.max_abs_diff,
            )
            options = ort.SessionOptions()
            options.intra_op_num_threads = args.threads
            options.inter_op_num_threads = 1
            session = ort.InferenceSession(str(result.path), options, providers=["CPUExecutionProvider"])
            x = (0.1 * np.random.default_rng(0).standard_normal((args.batch, length))).astype(np.float32)
            xt = torch.from_numpy(x)

            run_torch = functools.partial(_torch_forward, model, xt)
            run_onnx = functools.partial(session.run, None, {INPUT_NAME: x})
            run_torch(), run_onnx()  # warm-up
            timings = {
                "torch_ms": functools.partial(_seconds, run_torch, args.steps),
                "onnx_ms": functools.partial(_seconds, run_onnx, args.steps),
            }
            row.update({key: 1e3 * seconds for key, seconds in alternating_medians(timings, args.rounds).items()})
            row["onnx_over_torch"] = row["onnx_ms"] / row["torch_ms"]
            rows.append(row)
            print(
                f"{name:<14} L={length:>6} {'dynamic' if result.dynamic_length else 'fixed  '} length  "
                f"{result.size_bytes / 1e6:6.2f} MB  torch {row['torch_ms']:7.1f} ms  onnxruntime {row['onnx_ms']:7.1f} ms  "
                f"ratio {row['onnx_over_torch']:.2f}  diff {result.max_abs_diff:.1e}",
                flush=True,
            )
    write_results(args, rows)


if __name__ == "__main__":
    main()
