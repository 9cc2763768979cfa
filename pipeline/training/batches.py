"""Training batches assembled straight from the memory-mapped shards.

Every epoch draws one random crop per training clip. The whole epoch is planned at once
from ``epoch_seed`` (a permutation of the clips and one crop position each), so a batch
is a handful of slice copies out of the ``.npy`` shards into one preallocated array: no
pandas row access and no random generator per item. The plan depends only on
``(epoch_seed, clip index)``, so a resumed run and a run with DataLoader workers see the
same batches as an uninterrupted single-process run.

Crop rule (as :func:`pipeline.audio.chunking.random_crop`): a clip of ``n >= L`` samples starts
at ``floor(u * (n - L))``; a shorter clip is zero-padded with its content centred. Cached
features are cropped the same way along frames and padded on the right with the cache's
silence value.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from pipeline.data.shards import FeatureStore, SegmentStore, WindowReader


@dataclass(frozen=True)
class EpochPlan:
    """Order and crop positions of one epoch.

    Attributes:
        order: ``(clips,)`` permutation of the training clips.
        unit: ``(clips,)`` uniform draws in ``[0, 1)``, one per clip (indexed by clip).
    """

    order: np.ndarray
    unit: np.ndarray


def epoch_plan(n_clips: int, epoch_seed: int) -> EpochPlan:
    """The plan of the epoch seeded by ``epoch_seed`` (same on every process and device)."""
    gen = torch.Generator().manual_seed(int(epoch_seed))
    order = torch.randperm(n_clips, generator=gen).numpy()
    unit = np.random.default_rng([int(epoch_seed), 0x5EED]).random(n_clips)
    return EpochPlan(order, unit)


class CropBatches(torch.utils.data.Dataset):
    """Batch-level dataset: item ``(epoch_seed, b)`` is batch ``b`` of that epoch.

    Args:
        store: segment store of the dataset.
        rows: training rows of the manifest (``shard, offset, n_samples, clip_id``).
        targets: ``(clips, classes)`` float multi-hot or ``(clips,)`` int64 class indices.
        input_length: crop length in samples (waveform mode).
        batch_size: clips per batch (the last batch of an epoch may be smaller).
        features: crop cached frames from this store instead of waveforms.
        n_frames: frames per crop in feature mode.

    Shape of a batch: ``x`` is ``(batch, input_length)`` float32 waveforms or
    ``(batch, channels, bins, n_frames)`` float32 features; ``y`` is the targets' rows.
    """

    def __init__(
        self,
        store: SegmentStore,
        rows: pd.DataFrame,
        targets: np.ndarray,
        input_length: int,
        batch_size: int,
        features: FeatureStore | None = None,
        n_frames: int | None = None,
    ) -> None:
        self.batch_size = int(batch_size)
        self.targets = np.ascontiguousarray(targets)
        self.features = features
        if features is not None:
            index = features.index.loc[rows["clip_id"].tolist()]
            self.reader = WindowReader(
                features._shard, index["shard"].tolist(), index["offset"], index["n_frames"], int(n_frames), features.pad_value
            )
        else:
            self.reader = WindowReader(store._shard, rows["shard"].tolist(), rows["offset"], rows["n_samples"], int(input_length))
        self.n, self.length = self.reader.n, self.reader.length
        self._plan: tuple[int, EpochPlan] | None = None

    def __len__(self) -> int:  # batches per epoch
        return -(-len(self.n) // self.batch_size)

    def plan(self, epoch_seed: int) -> EpochPlan:
        """The plan of one epoch, kept for the epoch being read (each worker keeps its own)."""
        if self._plan is None or self._plan[0] != epoch_seed:
            self._plan = (epoch_seed, epoch_plan(len(self.n), epoch_seed))
        return self._plan[1]

    def starts(self, clips: np.ndarray, unit: np.ndarray) -> np.ndarray:
        """Crop start of each clip: >= 0 inside the clip, < 0 = left padding of a short clip."""
        n, length = self.n[clips], self.length
        inside = np.floor(unit[clips] * np.maximum(n - length, 0)).astype(np.int64)
        if self.features is not None:  # features: short clips padded on the right
            return inside
        return np.where(n >= length, inside, -((length - n) // 2))

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        epoch_seed, b = key
        plan = self.plan(int(epoch_seed))
        clips = plan.order[b * self.batch_size : (b + 1) * self.batch_size]
        return self.assemble(clips, self.starts(clips, plan.unit))

    def assemble(self, clips: np.ndarray, starts: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """The crops ``[start, start + L)`` of ``clips`` (padding outside the clip) and their targets."""
        return torch.from_numpy(self.reader.read(clips, starts)).float(), torch.from_numpy(self.targets[clips])


class EpochSampler(torch.utils.data.Sampler):
    """Yields the keys ``(epoch_seed, batch)`` of one epoch; ``set_epoch_seed`` before each epoch.

    Under torchrun (``world`` > 1, :mod:`pipeline.training.distributed`) rank ``r`` gets the batches
    ``b`` with ``b % world == r``, the same count on every rank (the remainder is dropped, or
    batches are reused when there are fewer than ranks), as ``DistributedSampler`` does.
    """

    def __init__(self, n_batches: int, max_batches: int | None = None, rank: int = 0, world: int = 1) -> None:
        self.n_batches = n_batches if max_batches is None else min(n_batches, max_batches)
        self.epoch_seed = 0
        self.batches = (
            [(rank + k * world) % self.n_batches for k in range(max(1, self.n_batches // world))]
            if world > 1
            else list(range(self.n_batches))
        )

    def set_epoch_seed(self, epoch_seed: int) -> None:
        self.epoch_seed = int(epoch_seed)

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter((self.epoch_seed, b) for b in self.batches)


def make_loader(
    batches: CropBatches, sampler: EpochSampler, device: torch.device, num_workers: int | str = "auto"
) -> torch.utils.data.DataLoader:
    """One DataLoader for the whole run (built once, not per epoch).

    On CUDA (``num_workers="auto"``): 4 persistent worker processes and pinned memory, so
    batch assembly overlaps the GPU step and host-to-device copies can be asynchronous.
    On CPU: assembly in the training process (workers would only compete for the cores).
    """
    cuda = device.type == "cuda"
    workers = (4 if cuda else 0) if num_workers == "auto" else int(num_workers)
    return torch.utils.data.DataLoader(
        batches,
        batch_size=None,
        sampler=sampler,
        num_workers=workers,
        pin_memory=cuda,
        persistent_workers=workers > 0,
        prefetch_factor=4 if workers > 0 else None,
    )
