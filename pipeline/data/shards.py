"""Readers for the segment and feature caches (memory-mapped ``.npy`` shards)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.core.errors import UserError
from pipeline.core.task_kinds import MULTILABEL


def _field(row: Any, key: str) -> Any:
    return row[key] if isinstance(row, (dict, pd.Series)) else getattr(row, key)


def select_clips(rows: pd.DataFrame, max_clips: int | None, seed: int) -> pd.DataFrame:
    """At most ``max_clips`` rows: a seeded random subset, kept in manifest order (``None``: all).

    Used by ``train.val_max_clips``, ``evaluate.max_clips`` and ``robustness.max_clips``: the same
    seed gives the same subset, so the evaluation and robustness subsets coincide.
    """
    if max_clips is None or len(rows) <= max_clips:
        return rows.reset_index(drop=True)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x0B5]))
    idx = np.sort(rng.choice(len(rows), size=int(max_clips), replace=False))
    return rows.iloc[idx].reset_index(drop=True)


class SegmentStore:
    """Waveforms of one segmented dataset (``data/segments/<dataset>/``).

    Args:
        seg_dir: directory written by :func:`pipeline.data.segment.segment_dataset`.
    """

    def __init__(self, seg_dir: str | Path) -> None:
        self.dir = Path(seg_dir)
        if not (self.dir / "manifest.parquet").exists():
            raise UserError(f"{self.dir} has no segmented dataset; run `musicrep segment {self.dir.name}` first.")
        self._shards: dict[str, np.ndarray] = {}

    @cached_property
    def manifest(self) -> pd.DataFrame:
        return pd.read_parquet(self.dir / "manifest.parquet")

    @cached_property
    def meta(self) -> dict[str, Any]:
        return json.loads((self.dir / "meta.json").read_text())

    @property
    def labels(self) -> list[str]:
        return list(self.meta["labels"])

    @property
    def multilabel(self) -> bool:
        return self.meta["kind"] == MULTILABEL

    def split(self, name: str) -> pd.DataFrame:
        """Rows of one split (``train``/``val``/``test``) in manifest order."""
        return self.manifest[self.manifest["split"] == name].reset_index(drop=True)

    def _shard(self, name: str) -> np.ndarray:
        if name not in self._shards:
            self._shards[name] = np.load(self.dir / name, mmap_mode="r")
        return self._shards[name]

    def wave(self, row: Any) -> np.ndarray:
        """The waveform of one manifest row (dict, Series or itertuples row), ``(samples,)`` float32."""
        shard, offset, n = (_field(row, k) for k in ("shard", "offset", "n_samples"))
        return np.array(self._shard(shard)[int(offset) : int(offset) + int(n)], dtype=np.float32)

    def waves(self, rows: pd.DataFrame) -> Iterator[np.ndarray]:
        for row in rows.itertuples(index=False):
            yield self.wave(row)


class WindowReader:
    """Copies fixed-length windows of many clips out of memory-mapped shards into one array.

    A window ``[start, start + length)`` may begin before the clip (``start < 0``) or end after
    it: the part outside the clip is ``pad_value``. Nothing is read into memory but the windows
    asked for, so DataLoader workers can assemble batches straight from the page cache.

    Args:
        open_shard: shard name -> memory-mapped array (``SegmentStore._shard`` or ``FeatureStore._shard``),
            samples or frames on the last axis.
        shards: the shard of each clip.
        offsets: where each clip starts in its shard (last axis).
        lengths: each clip's samples or frames.
        length: window length.
        pad_value: the value outside a clip (0 for waveforms, the front-end's silence for features).
    """

    def __init__(
        self,
        open_shard: Callable[[str], np.ndarray],
        shards: list[str],
        offsets: Any,
        lengths: Any,
        length: int,
        pad_value: float = 0.0,
    ) -> None:
        self._open = open_shard
        names = sorted(set(shards))
        self.shard_names = names
        self.shard_of = np.array([names.index(s) for s in shards], dtype=np.int64)
        self.offset = np.asarray(offsets, dtype=np.int64)
        self.n = np.asarray(lengths, dtype=np.int64)
        self.length = int(length)
        self.pad_value = float(pad_value)
        sample = open_shard(names[0]) if names else None
        self.lead_shape = tuple(sample.shape[:-1]) if sample is not None else ()

    def read(self, clips: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """``(len(clips),) + lead_shape + (length,)`` windows, in the shards' dtype (float16 features stay float16)."""
        length = self.length
        shards = [self._open(name) for name in self.shard_names]
        dtype = shards[0].dtype if shards else np.float32
        x = np.empty((len(clips),) + self.lead_shape + (length,), dtype=dtype)
        lo = np.maximum(starts, 0)
        hi = np.minimum(starts + length, self.n[clips])
        base = self.offset[clips]
        which = self.shard_of[clips]
        for row, (a, b, s, o, k) in enumerate(zip(lo.tolist(), hi.tolist(), starts.tolist(), base.tolist(), which.tolist())):
            a0, b0 = a - s, max(b - s, a - s)
            if b > a:
                x[row, ..., a0:b0] = shards[k][..., o + a : o + b]
            if a0 > 0:
                x[row, ..., :a0] = self.pad_value
            if b0 < length:
                x[row, ..., b0:] = self.pad_value
        return x


class FeatureStore:
    """Cached front-end outputs of one dataset and transform (``data/features/<ds>/<name>-<hash>/``).

    ``index.parquet`` maps ``clip_id`` to ``shard, offset, n_frames``; shards are float16
    ``(channels, bins, frames)`` arrays concatenated along frames.
    """

    def __init__(self, feat_dir: str | Path) -> None:
        self.dir = Path(feat_dir)
        self.index = pd.read_parquet(self.dir / "index.parquet").set_index("clip_id")
        self.spec = json.loads((self.dir / "spec.json").read_text())
        self._shards: dict[str, np.ndarray] = {}

    def _shard(self, name: str) -> np.ndarray:
        if name not in self._shards:
            self._shards[name] = np.load(self.dir / name, mmap_mode="r")
        return self._shards[name]

    def frames(self, clip_id: str, start: int = 0, length: int | None = None) -> np.ndarray:
        """Frames ``[start, start+length)`` of a clip as float32 ``(channels, bins, length)``."""
        row = self.index.loc[clip_id]
        n = int(row["n_frames"])
        length = n - start if length is None else length
        lo = int(row["offset"]) + start
        arr = self._shard(row["shard"])[..., lo : lo + min(length, n - start)]
        out = np.asarray(arr, dtype=np.float32)
        if out.shape[-1] < length:  # pad with the transform's value for silence, on the right
            pad = np.full(out.shape[:-1] + (length - out.shape[-1],), self.pad_value, dtype=np.float32)
            out = np.concatenate([out, pad], axis=-1)
        return out

    @property
    def pad_value(self) -> float:
        """Front-end output for digital silence (e.g. -100 dB for log-mel)."""
        return float(self.spec.get("pad_value", -100.0))

    def n_frames(self, clip_id: str) -> int:
        return int(self.index.loc[clip_id]["n_frames"])
