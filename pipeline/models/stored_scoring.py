"""Scoring stored clips with the evaluation protocol, the chunks cut in DataLoader workers.

Validation (every epoch), ``evaluate`` and the clean point of ``robustness`` score clips of a
segmented dataset. :class:`StoredClips` plans every chunk of those clips once (clip, start), and a
DataLoader item is one batch of ``batch_size`` chunks (of several clips) copied straight out of the
memory-mapped shards (:class:`pipeline.data.shards.WindowReader`): nothing of the split is held in
memory, and on CUDA the batches are assembled by worker processes while the GPU runs the previous
ones, then go through one reused pinned buffer (:class:`pipeline.models.inference.PinnedStage`).

The chunks and their order are those of :func:`pipeline.models.inference.predict_clips` on the same
waveforms (docs/spec.md §1.2: ``evaluate.n_chunks`` chunks at ``hop = floor((N - L) / n_chunks)``,
a short clip centred and zero-padded), so the batches, and hence the scores, are the same.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from pipeline.audio.chunking import eval_starts
from pipeline.data.shards import SegmentStore, WindowReader
from pipeline.models.base import AudioModel
from pipeline.models.inference import ChunkScores


def chunk_plan(n_samples: np.ndarray, length: int, n_chunks: int) -> tuple[np.ndarray, np.ndarray]:
    """``(clip, start)`` of every evaluation chunk, clip by clip, as :func:`~pipeline.audio.chunking.eval_chunks` cuts.

    A start < 0 is the left padding of a clip shorter than ``length`` (its content centred).
    """
    clips: list[int] = []
    starts: list[int] = []
    for i, n in enumerate(np.asarray(n_samples, dtype=np.int64).tolist()):
        own = eval_starts(n, length, n_chunks) if n >= length else [-((length - n) // 2)]
        clips.extend([i] * len(own))
        starts.extend(own)
    return np.asarray(clips, dtype=np.int64), np.asarray(starts, dtype=np.int64)


class ChunkBatches(torch.utils.data.Dataset):
    """Item ``b``: batch ``b`` of the evaluation chunks of ``rows``, ``(<= batch_size, length)`` float32.

    Args:
        store: segment store of the dataset (memory-mapped shards).
        rows: manifest rows of the clips (``shard, offset, n_samples``), in scoring order.
        length: chunk length in samples (the model's input length).
        n_chunks: ``evaluate.n_chunks``.
        batch_size: chunks per item (``runtime.eval_batch_size``).
    """

    def __init__(self, store: SegmentStore, rows: pd.DataFrame, length: int, n_chunks: int, batch_size: int) -> None:
        self.reader = WindowReader(store._shard, rows["shard"].tolist(), rows["offset"], rows["n_samples"], length)
        self.clips, self.starts = chunk_plan(self.reader.n, length, n_chunks)
        self.batch_size = int(batch_size)
        self.n_clips = len(rows)

    def __len__(self) -> int:
        return -(-len(self.clips) // self.batch_size)

    def span(self, b: int) -> slice:
        """The chunks of batch ``b``."""
        return slice(b * self.batch_size, (b + 1) * self.batch_size)

    def __getitem__(self, b: int) -> torch.Tensor:
        part = self.span(b)
        return torch.from_numpy(self.reader.read(self.clips[part], self.starts[part])).float()


def worker_count(device: torch.device, num_workers: int | str) -> int:
    """``runtime.num_workers``: ``auto`` = 4 on CUDA (the GPU waits for no batch), 0 on CPU (workers would
    only compete with the forward for the cores)."""
    if num_workers == "auto":
        return 4 if device.type == "cuda" else 0
    return int(num_workers)


class StoredClips:
    """The clips ``rows`` of ``store``, scored as often as asked (validation: every validated epoch).

    Args:
        store: segment store of the dataset.
        rows: the clips, in the order of the returned scores.
        length: chunk length (the model's input length).
        n_chunks: chunks per clip (``evaluate.n_chunks``).
        batch_size: chunks per forward (``runtime.eval_batch_size``).
        device: where the model runs (selects the worker count and the pinned staging).
        num_workers: ``runtime.num_workers`` (:func:`worker_count`); workers persist between calls.
    """

    def __init__(
        self,
        store: SegmentStore,
        rows: pd.DataFrame,
        *,
        length: int,
        n_chunks: int,
        batch_size: int,
        device: torch.device,
        num_workers: int | str = "auto",
    ) -> None:
        self.batches = ChunkBatches(store, rows, length, n_chunks, batch_size)
        self.device = device
        workers = worker_count(device, num_workers)
        self.loader = torch.utils.data.DataLoader(
            self.batches,
            batch_size=None,
            shuffle=False,
            num_workers=workers,
            persistent_workers=workers > 0,
            prefetch_factor=4 if workers > 0 else None,
        )

    def __len__(self) -> int:
        return self.batches.n_clips

    def predict(self, model: AudioModel, bf16: str | bool = "auto") -> np.ndarray:
        """``(clips, classes)`` float32 mean activated chunk scores of ``model`` (on :attr:`device`)."""
        scores = ChunkScores(model, self.device, bf16)
        for b, batch in enumerate(self.loader):
            scores.add(batch, self.batches.clips[self.batches.span(b)])
        return scores.result(len(self))
