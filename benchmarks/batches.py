"""Training batch assembly: per-item Dataset (the former path) vs vectorised epoch plans.

Both read the same memory-mapped shards (waveforms, and float16 log-mel frames), in one
process, alternating repeats:

- ``per_item``: the training path before this change, rebuilt here as the baseline: a map
  Dataset whose ``__getitem__`` does a pandas ``.iloc`` row lookup, makes a new
  ``numpy.random.default_rng`` per item, crops, and a ``DataLoader`` collates 16 items;
- ``planned``: :class:`pipeline.training.batches.CropBatches` (one plan per epoch, slice copies into
  one preallocated array per batch), through the same single-process ``DataLoader``.

Reported: milliseconds per batch of ``--batch`` (mean over an epoch), and the ratio.

    .venv/bin/python benchmarks/batches.py --clips 512 --repeats 3 --json /tmp/batches.json
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks._harness import benchmark_parser, write_results, write_stores  # noqa: E402
from pipeline.audio.chunking import random_crop  # noqa: E402
from pipeline.data.shards import FeatureStore, SegmentStore  # noqa: E402
from pipeline.training.batches import CropBatches, EpochSampler, make_loader  # noqa: E402


def _write_stores(root: Path, clips: int, samples: int, frames: int, bins: int = 96) -> tuple[SegmentStore, FeatureStore]:
    rng = np.random.default_rng(0)
    audio = rng.standard_normal(clips * samples).astype(np.float32)
    features = rng.standard_normal((1, bins, clips * frames)).astype(np.float16)
    return write_stores(root, clips, audio, features, "single")


class PerItemCrops(torch.utils.data.Dataset):
    """The former training Dataset: one pandas row, one generator and one crop per item."""

    def __init__(self, store, rows, targets, input_length, features=None, n_frames=None) -> None:
        self.store, self.rows, self.targets = store, rows, targets
        self.input_length, self.features, self.n_frames = input_length, features, n_frames
        self.epoch_seed = 0

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int):
        rng = np.random.default_rng([self.epoch_seed, i])
        row = self.rows.iloc[i]
        if self.features is not None:
            total = self.features.n_frames(row["clip_id"])
            start = int(rng.random() * (total - self.n_frames)) if total > self.n_frames else 0
            x = self.features.frames(row["clip_id"], start, self.n_frames)
        else:
            x = random_crop(self.store.wave(row), self.input_length, rng)
        return torch.from_numpy(np.ascontiguousarray(x)), torch.as_tensor(self.targets[i])


def _epoch_ms(loader, n_batches: int) -> float:
    t0 = time.perf_counter()
    seen = 0
    for _x, _y in loader:
        seen += 1
        if seen >= n_batches:
            break
    return 1000 * (time.perf_counter() - t0) / max(seen, 1)


def main() -> None:
    ap = benchmark_parser(__doc__, clips=512, batch=16)
    ap.add_argument("--samples", type=int, default=32_000, help="clip length (2 s at 16 kHz)")
    ap.add_argument("--crop", type=int, default=32_000, help="training crop (the smoke profile's L)")
    ap.add_argument("--frames", type=int, default=126, help="cached frames per clip")
    ap.add_argument("--crop-frames", type=int, default=63)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows_out = []
    with tempfile.TemporaryDirectory() as tmp:
        store, feats = _write_stores(Path(tmp), args.clips, args.samples, args.frames)
        rows = store.split("train")
        targets = np.zeros(len(rows), dtype=np.int64)
        n_batches = len(rows) // args.batch
        for mode in ("waveform", "features"):
            f = feats if mode == "features" else None
            nf = args.crop_frames if f is not None else None
            old_ds = PerItemCrops(store, rows, targets, args.crop, f, nf)
            gen = torch.Generator().manual_seed(0)
            old = torch.utils.data.DataLoader(old_ds, batch_size=args.batch, shuffle=True, generator=gen, num_workers=0)
            batches = CropBatches(store, rows, targets, args.crop, args.batch, f, nf)
            sampler = EpochSampler(len(batches))
            new = make_loader(batches, sampler, torch.device("cpu"))
            t_old, t_new = [], []
            for r in range(args.repeats):
                old_ds.epoch_seed = r
                t_old.append(_epoch_ms(old, n_batches))
                sampler.set_epoch_seed(r)
                t_new.append(_epoch_ms(new, n_batches))
            row = {
                "mode": mode,
                "batch": args.batch,
                "per_item_ms": float(np.median(t_old)),
                "planned_ms": float(np.median(t_new)),
            }
            row["speedup"] = row["per_item_ms"] / row["planned_ms"]
            rows_out.append(row)
            print(
                f"{mode:9s} batch {args.batch}: per-item {row['per_item_ms']:.3f} ms, planned {row['planned_ms']:.3f} ms "
                f"({row['speedup']:.1f}x)"
            )
    write_results(args, rows_out)


if __name__ == "__main__":
    main()
