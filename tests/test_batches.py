"""Vectorised batch assembly (pipeline/training/batches.py) crops exactly what the per-item rule crops."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.batches import _write_stores  # noqa: E402
from pipeline.audio.chunking import pad_center  # noqa: E402
from pipeline.training.batches import CropBatches, EpochSampler, epoch_plan, make_loader  # noqa: E402


@pytest.fixture()
def stores(tmp_path: Path):
    return _write_stores(tmp_path, clips=40, samples=3000, frames=20, bins=8)


def _expected_wave(store, row, start: int, length: int) -> np.ndarray:
    wave = pad_center(store.wave(row), length)
    return wave[start : start + length] if len(wave) > length else wave[:length]


@pytest.mark.parametrize("length", [1000, 3000, 4001])  # shorter than, equal to and longer than the clips
def test_waveform_crops_follow_the_crop_rule(stores, length: int) -> None:
    store, _ = stores
    rows = store.split("train")
    b = CropBatches(store, rows, np.arange(len(rows)), length, batch_size=7)
    plan = epoch_plan(len(rows), 123)
    x, y = b[(123, 2)]
    clips = plan.order[14:21]
    assert x.shape == (7, length) and y.tolist() == clips.tolist()
    for k, c in enumerate(clips):
        n = int(rows.loc[c, "n_samples"])
        start = int(np.floor(plan.unit[c] * (n - length))) if n > length else 0
        np.testing.assert_array_equal(x[k].numpy(), _expected_wave(store, rows.loc[c], start, length))


def test_feature_crops_equal_the_feature_store(stores) -> None:
    store, feats = stores
    rows = store.split("train")
    for n_frames in (9, 26):  # a crop, and longer than the clip (padded on the right)
        b = CropBatches(store, rows, np.zeros(len(rows)), 0, batch_size=5, features=feats, n_frames=n_frames)
        plan = epoch_plan(len(rows), 7)
        x, _ = b[(7, 1)]
        assert x.dtype == torch.float32 and x.shape == (5, 1, 8, n_frames)
        for k, c in enumerate(plan.order[5:10]):
            total = 20
            start = int(np.floor(plan.unit[c] * (total - n_frames))) if total > n_frames else 0
            np.testing.assert_array_equal(x[k].numpy(), feats.frames(rows.loc[c, "clip_id"], start, n_frames))


def test_plans_are_deterministic_and_workers_see_the_same_batches(stores) -> None:
    store, _ = stores
    rows = store.split("train")
    b = CropBatches(store, rows, np.arange(len(rows)), 1000, batch_size=8)
    sampler = EpochSampler(len(b), max_batches=4)
    sampler.set_epoch_seed(5)
    inline = [x.clone() for x, _ in make_loader(b, sampler, torch.device("cpu"), num_workers=0)]
    with_workers = [x for x, _ in make_loader(b, sampler, torch.device("cpu"), num_workers=2)]
    assert len(inline) == 4 and all(torch.equal(a, c) for a, c in zip(inline, with_workers))
    sampler.set_epoch_seed(6)
    other = [x for x, _ in make_loader(b, sampler, torch.device("cpu"), num_workers=0)]
    assert not torch.equal(inline[0], other[0])
    torch_order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(5)).numpy()
    assert np.array_equal(epoch_plan(len(rows), 5).order, torch_order)  # the DataLoader's former shuffle order
