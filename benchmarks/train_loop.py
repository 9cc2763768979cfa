"""Does the data path keep the device busy? The training loop from cached shards, measured.

Builds a synthetic log-mel feature cache and segment store (``--clips`` clips of
``--seconds`` s, memory-mapped ``.npy`` shards as the pipeline writes them), then runs the
pipeline's own training data path (:class:`pipeline.training.batches.CropBatches` through
:func:`pipeline.training.batches.make_loader`, pinned memory and workers on CUDA) into a model of the
zoo with the loop's settings (bf16 autocast, ``channels_last``, ``cudnn.benchmark``, loss kept
on the device, optional ``torch.compile``).

Reported per run: samples/s, the **device-busy fraction** (on CUDA: GPU time of the training
steps from CUDA events over the loop's wall time, i.e. how much of the time the GPU had work;
on CPU: the time spent in forward/backward/step over the loop's wall time, i.e. what the data
path costs), and peak memory (``torch.cuda.max_memory_allocated`` on CUDA).

    .venv/bin/python benchmarks/train_loop.py --device cuda --model short_res --width 1.0 --steps 200
    .venv/bin/python benchmarks/train_loop.py --device cpu --model fcn --width 0.25 --steps 5 --clips 64
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks._harness import benchmark_parser, write_results, write_stores  # noqa: E402
from pipeline.data.shards import FeatureStore, SegmentStore  # noqa: E402
from pipeline.models.base import ModelConfig  # noqa: E402
from pipeline.models.inference import autocast_for, use_bf16  # noqa: E402
from pipeline.models.zoo import build_model, input_length_for  # noqa: E402
from pipeline.training.batches import CropBatches, EpochSampler, make_loader  # noqa: E402
from pipeline.training.train import prepare_for_device  # noqa: E402


def write_cache(root: Path, clips: int, samples: int, bins: int, hop: int) -> tuple[SegmentStore, FeatureStore]:
    """A segment store and a float16 ``(1, bins, frames)`` feature cache of random data."""
    rng = np.random.default_rng(0)
    frames = samples // hop + 1
    audio = np.zeros(clips * samples, dtype=np.float32)
    features = (rng.standard_normal((1, bins, clips * frames)) * 10 - 40).astype(np.float16)
    return write_stores(root, clips, audio, features, "multilabel")


def run(args: argparse.Namespace, compile_mode: str) -> dict[str, float | str]:
    device = torch.device(args.device)
    config = ModelConfig(
        variant=args.model,
        n_classes=50,
        multilabel=True,
        width=args.width,
        input_length=input_length_for(args.model, "paper", args.seconds * 16_000, "multilabel"),
    )
    model = build_model(config).to(device)
    if model.frontend.cache_spec() is None:
        raise SystemExit(f"{args.model} has no cached front-end; pick a mel model (fcn, short_cnn, short_res, ...)")
    forward = prepare_for_device(model, device, compile_mode, features=True)  # as the training loop from the cache
    bf16 = use_bf16("auto" if args.bf16 else "off", device, args.model)  # as train.bf16: auto
    n_frames = model.frontend.n_frames(model.input_length)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    with tempfile.TemporaryDirectory() as tmp:
        spec = model.frontend.cache_spec()
        store, feats = write_cache(Path(tmp), args.clips, args.seconds * 16_000, int(spec["n_mels"]), int(spec["hop_length"]))
        rows = store.split("train")
        targets = (np.random.default_rng(1).random((len(rows), 50)) < 0.1).astype(np.float32)
        batches = CropBatches(store, rows, targets, model.input_length, args.batch, feats, n_frames)
        sampler = EpochSampler(len(batches))
        loader = make_loader(batches, sampler, device, args.workers)
        cuda = device.type == "cuda"
        events: list[tuple[torch.cuda.Event, torch.cuda.Event]] = []
        busy = 0.0
        loss_sum = torch.zeros((), device=device)
        steps, samples, epoch = 0, 0, 0
        model.train()
        t0 = None
        while steps < args.steps + args.warmup:
            sampler.set_epoch_seed(epoch)
            epoch += 1
            for x, y in loader:
                if steps == args.warmup:  # start the clock after warm-up (cudnn autotune, compile)
                    if cuda:
                        torch.cuda.synchronize()
                        torch.cuda.reset_peak_memory_stats()
                    t0, busy, events = time.perf_counter(), 0.0, []
                x, y = x.to(device, non_blocking=cuda), y.to(device, non_blocking=cuda)
                if cuda:
                    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                    start.record()
                s0 = time.perf_counter()
                with autocast_for(device, bf16):
                    logits = forward(x)
                loss = loss_fn(logits.float(), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                loss_sum += loss.detach()
                if cuda:
                    end.record()
                    events.append((start, end))
                else:
                    busy += time.perf_counter() - s0
                steps += 1
                if steps > args.warmup:
                    samples += len(x)
                if steps >= args.steps + args.warmup:
                    break
        if cuda:
            torch.cuda.synchronize()
            busy = sum(a.elapsed_time(b) for a, b in events) / 1000
        wall = time.perf_counter() - (t0 or time.perf_counter())
    return {
        "model": args.model,
        "width": args.width,
        "compile": compile_mode,
        "batch": args.batch,
        "samples_per_second": samples / wall if wall else 0.0,
        "device_busy_fraction": busy / wall if wall else 0.0,
        "peak_memory_mb": torch.cuda.max_memory_allocated() / 2**20 if cuda else float("nan"),
        "final_loss": float(loss_sum) / max(steps, 1),
    }


def main() -> None:
    ap = benchmark_parser(__doc__, width=1.0, batch=16, steps=100, warmup=5, clips=512, seconds=8)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--model", default="short_res")
    ap.add_argument("--workers", default="auto")
    ap.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=True, help="as train.bf16: auto (--no-bf16: off)")
    ap.add_argument("--compile", nargs="+", default=["off"], choices=["off", "on"], help="modes to run side by side")
    args = ap.parse_args()
    if args.workers != "auto":
        args.workers = int(args.workers)
    rows = []
    for mode in args.compile:
        row = run(args, mode)
        rows.append(row)
        print(
            f"{row['model']} width {row['width']} compile {mode}: {row['samples_per_second']:.1f} samples/s, "
            f"device busy {100 * row['device_busy_fraction']:.1f} %, peak {row['peak_memory_mb']:.0f} MB"
        )
    write_results(args, rows, args.device)


if __name__ == "__main__":
    main()
