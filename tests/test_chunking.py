"""The evaluation and training chunking of docs/spec.md §1.2, with the paper's input lengths.

``hop = floor((N - L) / n_chunks)``, chunk ``i`` covers ``[i*hop, i*hop + L)``; the tail after the
last chunk is unused; clips shorter than ``L`` are centre-padded to ``L`` (one chunk).
"""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.audio.chunking import eval_chunks, eval_starts, pad_center, random_crop

pytestmark = pytest.mark.fast

MTAT_N = 465_600  # a 29.1-s MagnaTagATune clip at 16 kHz


@pytest.mark.parametrize(
    ("n", "length", "hop"),
    [
        (160_000, 48_000, 7_000),  # DCASE 2017: 16 chunks of 3 s over a 10-s clip
        (MTAT_N, 48_000, 26_100),  # Musicnn on MTAT
        (MTAT_N, 59_049, 25_409),  # short-chunk CNN / ResNet and Sample-CNN: floor(406,551 / 16)
        (MTAT_N, 240_000, 14_100),  # CNN-SA (15 s)
        (MTAT_N, 464_000, 100),  # FCN / CRNN: the 16 chunks almost coincide
    ],
)
def test_eval_starts_follow_the_paper_hop(n: int, length: int, hop: int) -> None:
    starts = eval_starts(n, length, 16)
    assert starts == [i * hop for i in range(16)]
    assert starts[-1] + length <= n  # every chunk lies inside the clip; the tail after the last is unused
    assert n - (starts[-1] + length) < hop + 16  # ... and that tail is shorter than one hop (+ rounding)


def test_eval_starts_edge_cases() -> None:
    assert eval_starts(16_000, 16_000, 16) == [0]  # exactly one input: one chunk
    assert eval_starts(8_000, 16_000, 16) == [0]  # shorter: padded, one chunk
    assert eval_starts(464_010, 464_000, 16) == [0, 10]  # hop 0: the first and the last input
    assert eval_starts(100_000, 40_000, 1) == [0]


def test_eval_chunks_are_the_slices_at_the_starts() -> None:
    wave = np.arange(160_000, dtype=np.float32)
    chunks = eval_chunks(wave, 48_000, 16)
    assert chunks.shape == (16, 48_000)
    for i, chunk in enumerate(chunks):
        np.testing.assert_array_equal(chunk, wave[i * 7_000 : i * 7_000 + 48_000])


def test_short_clips_are_centre_padded_into_one_chunk() -> None:
    wave = np.ones(10, dtype=np.float32)
    chunks = eval_chunks(wave, 16, 4)
    assert chunks.shape == (1, 16)
    np.testing.assert_array_equal(chunks[0], [0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0])
    assert pad_center(wave, 5) is wave  # long enough: untouched


def test_random_crop_start_is_floor_u_times_free_length() -> None:
    wave = np.arange(100, dtype=np.float32)
    rng, ref = np.random.default_rng(3), np.random.default_rng(3)
    for _ in range(20):
        crop = random_crop(wave, 30, rng)
        start = int(ref.random() * 70)
        np.testing.assert_array_equal(crop, wave[start : start + 30])
