"""Validation throughput, former path against the current one, paired in one process (issue 27).

A synthetic segmented split (``--clips`` clips of ``--clip-seconds`` of noise in memory-mapped
``.npy`` shards, as ``segment`` writes them) and an untrained grid model at smoke size (``--width``,
input ``--input-seconds``). Alternating, ``--repeats`` times each, the validation of one epoch:

- **former**: what ``train`` did until issue 27: the split's waveforms copied into RAM (once per cell;
  timed apart as ``copy_s``), then ``predict_clips`` as it was (:func:`former_predict`: each clip cut
  into ``--n-chunks`` chunks in the training process, ``--batch`` chunks per forward, on CUDA a fresh
  pinned copy of every batch);
- **current**: :class:`pipeline.models.stored_scoring.StoredClips` (the chunks planned once and copied
  straight from the memory-mapped shards, ``--workers`` DataLoader workers: ``auto`` = 4 on CUDA, 0 on
  the CPU, as ``runtime.num_workers``; one reused pinned buffer on CUDA).

``--device cuda`` runs both on the GPU (fp32), the check for a GPU box. Both give the same scores (checked). Also the data path alone (no forward): chunks per second that
the former in-process cutting and the current batch assembly deliver, at the same shape. Reported:
median seconds, clips/s, the ratio current / former, the host RAM the former path holds
(``waves_mib``), and the load average before and after (what else ran on the machine).

Usage::

    .venv/bin/python benchmarks/validation.py --model fcn --clips 400 --repeats 3 --json bench-validation.json
    .venv/bin/python benchmarks/validation.py --data-only --clip-seconds 29.1 --input-seconds 29.0 --n-chunks 16
    .venv/bin/python benchmarks/validation.py --device cuda --width 1 --clips 200 --clip-seconds 29.1 --input-seconds 29.0 --n-chunks 16 --batch 16
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks._machine import describe  # noqa: E402
from pipeline import SAMPLE_RATE  # noqa: E402
from pipeline.audio.chunking import eval_chunks  # noqa: E402
from pipeline.data.shards import SegmentStore  # noqa: E402
from pipeline.models.base import ModelConfig  # noqa: E402
from pipeline.models.inference import activate  # noqa: E402
from pipeline.models.stored_scoring import ChunkBatches, StoredClips  # noqa: E402
from pipeline.models.zoo import build_model  # noqa: E402

SHARD_SAMPLES = 64 << 20 >> 2  # 64 MiB of float32 per shard, as segment's default


def write_split(folder: Path, clips: int, samples: int) -> SegmentStore:
    """``clips`` clips of ``samples`` samples of noise in shards of about 64 MiB; a ``val`` split."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    per_shard = max(1, SHARD_SAMPLES // samples)
    rows = []
    for first in range(0, clips, per_shard):
        n = min(per_shard, clips - first)
        name = f"shard-{first // per_shard:05d}.npy"
        np.save(folder / name, 0.1 * rng.standard_normal(n * samples, dtype=np.float32))
        rows += [{"shard": name, "offset": k * samples, "n_samples": samples} for k in range(n)]
    manifest = pd.DataFrame(rows)
    manifest.insert(0, "clip_id", [f"c{i:06d}" for i in range(clips)])
    manifest["split"], manifest["labels"] = "val", [["a"]] * clips
    manifest.to_parquet(folder / "manifest.parquet", index=False)
    (folder / "meta.json").write_text(json.dumps({"labels": [f"t{i}" for i in range(10)], "kind": "multilabel"}))
    return SegmentStore(folder)


def former_chunks(store: SegmentStore, rows: pd.DataFrame, length: int, n_chunks: int, batch: int) -> int:
    """The former data path alone: waveforms copied out, cut in the process, stacked per batch."""
    pending, n = [], 0
    for wave in list(store.waves(rows)):
        for chunk in eval_chunks(wave, length, n_chunks):
            pending.append(chunk)
            if len(pending) >= batch:
                n += len(np.stack(pending))
                pending.clear()
    return n + (len(np.stack(pending)) if pending else 0)


@torch.no_grad()
def former_predict(model, waves: list[np.ndarray], n_chunks: int, batch_size: int, device: torch.device) -> np.ndarray:
    """``predict_clips`` as it was before issue 27 (fp32): chunks cut in the process, a fresh pinned copy
    of every batch on CUDA, activated chunk scores kept on the device, averaged per clip at the end."""
    length, multilabel, cuda = model.input_length, model.config.multilabel, device.type == "cuda"
    owners: list[int] = []
    pending: list[np.ndarray] = []
    outputs: list[torch.Tensor] = []

    def flush() -> None:
        batch = torch.from_numpy(np.stack(pending))
        batch = batch.pin_memory() if cuda else batch
        outputs.append(activate(model(batch.to(device, non_blocking=cuda)).float(), multilabel))
        pending.clear()

    for i, wave in enumerate(waves):
        for chunk in eval_chunks(wave, length, n_chunks):
            pending.append(chunk)
            owners.append(i)
            if len(pending) >= batch_size:
                flush()
    if pending:
        flush()
    sums = np.zeros((len(waves), model.config.n_classes), dtype=np.float64)
    np.add.at(sums, np.asarray(owners), torch.cat(outputs).cpu().numpy())
    counts = np.bincount(np.asarray(owners, dtype=np.int64), minlength=len(waves))
    return (sums / np.maximum(1, counts)[:, None]).astype(np.float32)


def current_chunks(clips: StoredClips) -> int:
    """The current data path alone: the DataLoader's batches."""
    return sum(len(x) for x in clips.loader)


def _median_rate(runs: list[float], count: int) -> dict[str, float]:
    median = statistics.median(runs)
    return {"wall_s": [round(x, 4) for x in runs], "median_s": round(median, 4), "per_s": round(count / median, 1)}


def _validation_rounds(model, waves, current: StoredClips, args, device: torch.device) -> dict[str, list[float]]:
    """Paired rounds of one validation pass, former and current, the order alternating; scores checked equal."""
    former_predict(model, waves[:4], args.n_chunks, args.batch, device)  # warm-up (kernels, allocator)
    current.predict(model, bf16="off")  # warm-up of the current path too (workers, page cache)
    runs: dict[str, list[float]] = {"former": [], "current": []}
    for r in range(args.repeats):
        scores = {}
        for name in ("former", "current") if r % 2 == 0 else ("current", "former"):
            t0 = time.perf_counter()
            if name == "former":
                scores[name] = former_predict(model, waves, args.n_chunks, args.batch, device)
            else:
                scores[name] = current.predict(model, bf16="off")
            if device.type == "cuda":
                torch.cuda.synchronize()
            runs[name].append(time.perf_counter() - t0)
        np.testing.assert_allclose(scores["current"], scores["former"], rtol=1e-5, atol=1e-6)  # the same batches
    return runs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="fcn", help="registry variant (untrained)")
    ap.add_argument("--width", type=float, default=0.25, help="train.width (smoke: 0.25)")
    ap.add_argument("--clips", type=int, default=400, help="validation clips")
    ap.add_argument("--clip-seconds", type=float, default=2.0, help="clip length (smoke synth_tags: 2 s)")
    ap.add_argument("--input-seconds", type=float, default=1.0, help="model input length (smoke: 1 s)")
    ap.add_argument("--n-chunks", type=int, default=3, help="evaluate.n_chunks (smoke 3, paper 16)")
    ap.add_argument("--batch", type=int, default=32, help="runtime.eval_batch_size (smoke 32)")
    ap.add_argument("--workers", default="auto", help="DataLoader workers of the current path (auto: 4 on CUDA, 0 on CPU)")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where the model runs (fp32)")
    ap.add_argument("--repeats", type=int, default=3, help="paired rounds (the order alternates)")
    ap.add_argument("--data-only", action="store_true", help="only the data paths (no model forward)")
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0 = torch's default)")
    ap.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads or torch.get_num_threads())
    logging.basicConfig(level=logging.WARNING)
    device = torch.device(args.device)
    length, samples = round(args.input_seconds * SAMPLE_RATE), round(args.clip_seconds * SAMPLE_RATE)
    load_before = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="musicrep-bench-validation-"))
    try:
        store = write_split(work / "segments", args.clips, samples)
        rows = store.split("val")
        current = StoredClips(
            store, rows, length=length, n_chunks=args.n_chunks, batch_size=args.batch, device=device, num_workers=args.workers
        )
        n_chunks_total = len(ChunkBatches(store, rows, length, args.n_chunks, args.batch).clips)
        result: dict[str, object] = {
            "config": {k: v for k, v in vars(args).items() if k != "json"} | {"chunks": n_chunks_total},
            "waves_mib": round(args.clips * samples * 4 / 2**20, 1),
        }
        data = {"former": [], "current": []}
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            assert former_chunks(store, rows, length, args.n_chunks, args.batch) == n_chunks_total
            data["former"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            assert current_chunks(current) == n_chunks_total
            data["current"].append(time.perf_counter() - t0)
        result["data_path_chunks"] = {k: _median_rate(v, n_chunks_total) for k, v in data.items()}
        if not args.data_only:
            torch.manual_seed(0)
            config = ModelConfig(args.model, 10, True, width=args.width, input_length=length)
            model = build_model(config).eval().to(device)
            t0 = time.perf_counter()
            waves = list(store.waves(rows))  # what the former Validation held for the whole cell
            result["copy_s"] = round(time.perf_counter() - t0, 4)
            runs = _validation_rounds(model, waves, current, args, device)
            result["validation_clips"] = {k: _median_rate(v, args.clips) for k, v in runs.items()}
            result["ratio_current_over_former"] = round(
                result["validation_clips"]["current"]["per_s"] / result["validation_clips"]["former"]["per_s"], 3
            )
        data_ratio = result["data_path_chunks"]["current"]["per_s"] / result["data_path_chunks"]["former"]["per_s"]
        result["data_path_ratio_current_over_former"] = round(data_ratio, 3)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result["loadavg_before_after"] = [round(load_before[0], 2), round(os.getloadavg()[0], 2)]
    print(json.dumps(result, indent=1))
    if args.json:
        payload = {"results": result, "environment": describe(args.device)}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
