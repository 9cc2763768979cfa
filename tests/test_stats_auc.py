"""The bootstrap's macro ROC-AUC counted from draw counts equals the rank-sum statistic bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sst

from pipeline.evaluation.stats import clip_interval, metric_on


def rank_sum_auc(y: np.ndarray, scores: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """The previous implementation: ``scipy.stats.rankdata`` over every resampled array."""
    ys, ss = y[idx].astype(np.float64), scores[idx].astype(np.float64)
    ranks = sst.rankdata(ss, axis=-2)
    n_pos = ys.sum(-2)
    n_neg = ys.shape[-2] - n_pos
    u = (ranks * ys).sum(-2) - n_pos * (n_pos + 1) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = np.where((n_pos > 0) & (n_neg > 0), u / (n_pos * n_neg), np.nan)
        return np.nanmean(auc, axis=-1)


@pytest.mark.parametrize(("n", "classes", "levels"), [(120, 14, None), (60, 6, 4), (9, 3, 2), (40, 5, 1)])
def test_counted_auc_equals_rank_sum_auc_exactly(n, classes, levels) -> None:
    rng = np.random.default_rng(n)
    y = (rng.random((n, classes)) < 0.25).astype(int)
    y[:, -1] = 0  # a class without positives is left out
    scores = rng.random((n, classes)) if levels is None else rng.integers(0, levels, (n, classes)) / levels  # ties
    for idx in (np.arange(n), rng.integers(0, n, (200, n)), rng.integers(0, n, (3, 4, n))):
        with np.errstate(all="ignore"):
            expected = rank_sum_auc(y, scores, idx)
        got = metric_on("multilabel", y, scores, idx)
        assert got.shape == expected.shape
        np.testing.assert_array_equal(got, expected)


def test_bootstrap_interval_unchanged_by_the_counting(monkeypatch) -> None:
    """clip_interval on the new statistic gives the interval scipy's bootstrap gave on the old one."""
    from pipeline.evaluation import stats

    rng = np.random.default_rng(5)
    y = (rng.random((80, 8)) < 0.3).astype(int)
    scores = [rng.random((80, 8)) + 0.3 * y, rng.random((80, 8)) + 0.2 * y]
    new = clip_interval("multilabel", y, scores)
    monkeypatch.setattr(stats, "_macro_auc", rank_sum_auc)
    old = clip_interval("multilabel", y, scores)
    assert (new.value, new.low, new.high) == (old.value, old.low, old.high)
