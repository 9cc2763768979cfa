"""The GPU check: what the paper grid's cost projection assumes, measured on the card at hand.

Needs only torch 2.11 + torchaudio 2.11, numpy (the model code builds its filters with it) and
pydantic (the model zoo validates its options with it; 2.7 MiB of wheels, ``benchmarks/gpu_device.sh``
carries them): no mlflow, dvc, prefect, pandas or soundfile on its import path, so it runs on a bare
GPU image with this repository checked out (``python benchmarks/gpu.py``; docs/benchmarks.md). Per
variant of the model zoo, at its paper input length L (MTAT, 50 tags, full width):

* training samples/s in fp32 and in bf16 autocast (and with ``torch.compile`` for ``--compile``
  variants), batch 16, after warm-up steps;
* validation throughput: clips/s of the 16-chunk evaluation (chunks per forward: ``--eval-batch``);
* peak memory (``torch.cuda.max_memory_allocated``; on CPU the process's peak RSS);
* once, the training data path's device-busy fraction: a loader with workers cropping batches from a
  memory-mapped synthetic waveform cache feeds training steps of ``--data-variant``; busy = step time
  / (step time + time waiting for the next batch).

``--quick`` (a few seconds per variant on a CPU: batch 2, 1 timed step, 2 chunks) proves the script;
``--budget-s`` (default 420) stops starting new measurements, so a full run stays under 8 minutes.
Output: a Markdown table on stdout and ``--json`` (machine, settings, rows).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.models.base import ModelConfig  # noqa: E402
from pipeline.models.zoo import VARIANTS, build_model, input_length_for  # noqa: E402

log = logging.getLogger("benchmarks.gpu")
MTAT_CLIP_SAMPLES = 465_600  # 29.1 s at 16 kHz
N_CLASSES = 50
FORBIDDEN = ("mlflow", "dvc", "prefect", "pandas", "soundfile")
"""Modules this script must not import (a bare GPU image has none of them; pydantic travels as wheels)."""


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def autocast(device: torch.device, bf16: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def build(variant: str, device: torch.device) -> tuple[torch.nn.Module, int]:
    length = input_length_for(variant, "paper", MTAT_CLIP_SAMPLES, "multilabel")
    model = build_model(ModelConfig(variant, n_classes=N_CLASSES, multilabel=True, width=1.0, input_length=length))
    return model.to(device), length


def train_rate(model, length, device, *, batch, steps, warmup, bf16, compiled) -> float:
    """Training samples/s: forward + BCE-with-logits + backward + Adam step."""
    net = torch.compile(model) if compiled else model
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = torch.randn(batch, length, device=device)
    y = (torch.rand(batch, N_CLASSES, device=device) < 0.1).float()
    model.train()
    for i in range(warmup + steps):
        if i == warmup:
            sync(device)
            start = time.perf_counter()
        with autocast(device, bf16):
            logits = net(x)
        loss = F.binary_cross_entropy_with_logits(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    sync(device)
    return batch * steps / (time.perf_counter() - start)


@torch.no_grad()
def eval_rate(model, length, device, *, chunks, eval_batch, steps, bf16) -> float:
    """Validation clips/s: ``chunks`` chunks per clip, ``eval_batch`` chunks per forward."""
    model.eval()
    x = torch.randn(eval_batch, length, device=device)
    with autocast(device, bf16):
        model(x)
        sync(device)
        start = time.perf_counter()
        for _ in range(steps):
            torch.sigmoid(model(x).float())
        sync(device)
    return eval_batch * steps / (time.perf_counter() - start) / chunks


def measure(variant: str, device: torch.device, args: argparse.Namespace) -> list[dict]:
    """One row per precision (and compile) of ``variant``."""
    rows = []
    for bf16 in (False, True):
        for compiled in (False, True) if variant in args.compile else (False,):
            if device.type == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats(device)
            model, length = build(variant, device)
            kw = {"bf16": bf16}
            row = {"variant": variant, "L": length, "precision": "bf16" if bf16 else "fp32", "compile": compiled}
            try:
                row["train_samples_s"] = train_rate(
                    model, length, device, batch=args.batch, steps=args.steps, warmup=args.warmup, compiled=compiled, **kw
                )
                row["val_clips_s"] = eval_rate(
                    model, length, device, chunks=args.chunks, eval_batch=args.eval_batch, steps=args.steps, **kw
                )
                row["peak_mb"] = peak_mb(device)
            except (RuntimeError, torch.OutOfMemoryError) as exc:  # one variant's failure is a row, not the end
                row["error"] = str(exc).splitlines()[0][:160]
            rows.append(row)
            del model
    return rows


class CropCache(torch.utils.data.Dataset):
    """Random crops of ``length`` samples from a memory-mapped float32 cache of equal-length clips."""

    def __init__(self, path: Path, n_clips: int, clip: int, length: int) -> None:
        self.path, self.shape, self.length = path, (n_clips, clip), length

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        waves = np.load(self.path, mmap_mode="r")
        start = int(np.random.default_rng(i).integers(0, self.shape[1] - self.length + 1))
        x = torch.from_numpy(np.array(waves[i, start : start + self.length]))
        return x, (torch.rand(N_CLASSES) < 0.1).float()


def data_path_busy(variant: str, device: torch.device, args: argparse.Namespace) -> dict:
    """Device-busy fraction of training fed by loader workers from a synthetic memory-mapped cache."""
    model, length = build(variant, device)
    clip = max(length, MTAT_CLIP_SAMPLES // (8 if args.quick else 1))
    n_clips = args.batch * (args.steps + args.warmup)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    workers = 0 if args.quick else args.workers
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cache.npy"
        np.save(path, np.random.default_rng(0).standard_normal((n_clips, clip), dtype=np.float32))
        loader = torch.utils.data.DataLoader(
            CropCache(path, n_clips, clip, length),
            batch_size=args.batch,
            num_workers=workers,
            pin_memory=device.type == "cuda",
            shuffle=True,
        )
        wait = busy = 0.0
        t = time.perf_counter()
        for step, (x, y) in enumerate(loader):
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            got = time.perf_counter()
            with autocast(device, args.data_bf16):
                loss = F.binary_cross_entropy_with_logits(model(x).float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sync(device)
            done = time.perf_counter()
            if step >= args.warmup:
                wait, busy = wait + got - t, busy + done - got
            t = done
    return {"variant": variant, "workers": workers, "busy_fraction": busy / max(busy + wait, 1e-9)}


def describe(device: torch.device) -> dict:
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    return {
        "device": str(device),
        "gpu": gpu,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "cpu": platform.processor() or platform.machine(),
    }


def table(rows: list[dict]) -> str:
    out = [
        "| variant | L | precision | compile | train samples/s | val clips/s (16 chunks) | peak MB |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            out.append(f"| {r['variant']} | {r['L']} | {r['precision']} | {r['compile']} | error: {r['error']} | | |")
        else:
            out.append(
                f"| {r['variant']} | {r['L']:,} | {r['precision']} | {r['compile']} | {r['train_samples_s']:.1f} "
                f"| {r['val_clips_s']:.2f} | {r['peak_mb']:.0f} |"
            )
    return "\n".join(out)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS))
    ap.add_argument("--compile", nargs="*", default=["fcn", "short_res", "hcnn"], help="variants also timed under torch.compile")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--chunks", type=int, default=16)
    ap.add_argument("--eval-batch", type=int, default=64, help="chunks per validation forward")
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--data-variant", default="short_res")
    ap.add_argument("--data-bf16", action="store_true")
    ap.add_argument("--budget-s", type=float, default=420.0, help="start no new variant after this many seconds")
    ap.add_argument("--quick", action="store_true", help="prove the script: batch 2, 1 step, 2 chunks, no compile")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    if args.quick:
        args.batch, args.steps, args.warmup, args.chunks, args.eval_batch, args.compile = 2, 1, 1, 2, 2, []
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    device = torch.device(args.device)
    started, rows = time.perf_counter(), []
    for variant in args.variants:
        if time.perf_counter() - started > args.budget_s:
            log.warning("budget of %.0f s spent: %s and later variants not measured", args.budget_s, variant)
            break
        rows += measure(variant, device, args)
        log.info("%s done at %.0f s", variant, time.perf_counter() - started)
    result = {
        "machine": describe(device),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "rows": rows,
        "data_path": data_path_busy(args.data_variant, device, args),
        "seconds": time.perf_counter() - started,
        "forbidden_imported": sorted(m for m in FORBIDDEN if m in sys.modules),
    }
    print(table(rows))
    print(
        f"\ndata path ({result['data_path']['variant']}, {result['data_path']['workers']} workers): device busy {result['data_path']['busy_fraction']:.0%}"
    )
    print(
        f"{result['seconds']:.0f} s on {result['machine']['gpu'] or result['machine']['cpu']}; imported of {FORBIDDEN}: {result['forbidden_imported']}"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
