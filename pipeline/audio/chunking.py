"""Chunking of clips into model inputs (docs/spec.md §1.2).

- Training: one random crop of ``L`` samples per draw.
- Evaluation: ``n_chunks`` chunks per clip at ``hop = floor((N - L) / n_chunks)``; the
  chunk scores are averaged.
- Clips shorter than ``L`` are zero-padded to ``L``, the clip *centred* (deterministic;
  the reference pads at a random offset).
"""

from __future__ import annotations

import numpy as np


def pad_center(wave: np.ndarray, length: int) -> np.ndarray:
    """Zero-pad a 1-D array to ``length`` with the content centred (no-op if long enough)."""
    n = wave.shape[-1]
    if n >= length:
        return wave
    left = (length - n) // 2
    pad = [(0, 0)] * (wave.ndim - 1) + [(left, length - n - left)]
    return np.pad(wave, pad)


def eval_starts(n: int, length: int, n_chunks: int) -> list[int]:
    """Start offsets of the evaluation chunks of a clip of ``n`` samples (docs/spec.md §1.2)."""
    if n <= length:
        return [0]
    hop = (n - length) // n_chunks
    if hop == 0:
        return [0, n - length]
    return [i * hop for i in range(n_chunks)]


def eval_chunks(wave: np.ndarray, length: int, n_chunks: int) -> np.ndarray:
    """``(samples,)`` -> ``(chunks, length)`` evaluation chunks (padded when short)."""
    wave = pad_center(wave, length)
    return np.stack([wave[s : s + length] for s in eval_starts(len(wave), length, n_chunks)])


def random_crop(wave: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
    """One training crop: ``start = floor(u * (N - L))``; short clips are centre-padded."""
    wave = pad_center(wave, length)
    n = wave.shape[-1]
    start = int(rng.random() * (n - length)) if n > length else 0
    return wave[..., start : start + length]
