"""Uncertainty of the comparison: seeds, bootstrap intervals over test clips, paired differences.

- Over seeds: mean and sample standard deviation of a cell's test metric across
  ``grid.seeds`` (:func:`seed_summary`).
- Over test clips: a 95 % bootstrap confidence interval of the metric of the seed-averaged
  model (the metric of every seed on the same resample of clips, then the mean over seeds),
  computed with :func:`scipy.stats.bootstrap` (:func:`clip_interval`).
- Paired comparison of two models: the same resamples of the same clips and the same seeds
  for both, so the interval of the *difference* is much narrower than the two intervals
  suggest (:func:`paired_difference`).

The metrics are vectorised over resamples: accuracy is a mean of hits; macro ROC-AUC is the
Mann-Whitney statistic from :func:`scipy.stats.rankdata` per class (classes without both a
positive and a negative in a resample are left out, as in :mod:`pipeline.metrics`). On the
full sample both equal scikit-learn's values (tested).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sst

N_RESAMPLES = 1000
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Interval:
    """A point estimate with its confidence interval."""

    value: float
    low: float
    high: float

    def fmt(self, digits: int = 3) -> str:
        return f"{self.value:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


def _accuracy(y: np.ndarray, scores: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``idx (..., n)`` resamples -> accuracy of each resample ``(...)``."""
    hits = (scores.argmax(-1) == y).astype(np.float64)
    return hits[idx].mean(-1)


def _macro_auc(y: np.ndarray, scores: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``idx (..., n)`` resamples -> macro ROC-AUC of each resample ``(...)`` (rank statistic)."""
    ys, ss = y[idx].astype(np.float64), scores[idx].astype(np.float64)  # (..., n, C)
    ranks = sst.rankdata(ss, axis=-2)
    n_pos = ys.sum(-2)
    n_neg = ys.shape[-2] - n_pos
    u = (ranks * ys).sum(-2) - n_pos * (n_pos + 1) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = np.where((n_pos > 0) & (n_neg > 0), u / (n_pos * n_neg), np.nan)
        return np.nanmean(auc, axis=-1)


def metric_on(kind: str, y: np.ndarray, scores: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """The primary metric of ``kind`` (``"single"``: accuracy, ``"multilabel"``: macro ROC-AUC) per resample."""
    return _accuracy(y, scores, idx) if kind == "single" else _macro_auc(y, scores, idx)


def _bootstrap(statistic, n: int, seed: int, n_resamples: int) -> tuple[float, float]:
    with warnings.catch_warnings():  # every resample equal (e.g. accuracy 1.0): a zero-width interval is right
        warnings.simplefilter("ignore", sst.DegenerateDataWarning)
        res = sst.bootstrap(
            (np.arange(n),),
            statistic,
            vectorized=True,
            n_resamples=n_resamples,
            confidence_level=CONFIDENCE,
            method="percentile",
            rng=np.random.default_rng(seed),
        )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def clip_interval(
    kind: str, y: np.ndarray, seed_scores: Sequence[np.ndarray], *, seed: int = 0, n_resamples: int = N_RESAMPLES
) -> Interval:
    """Metric of the seed-averaged model with a bootstrap CI over test clips.

    Args:
        kind: ``"single"`` or ``"multilabel"``.
        y: ``(clips,)`` class indices or ``(clips, classes)`` multi-hot, aligned with the scores.
        seed_scores: one ``(clips, classes)`` score matrix per training seed.
        seed: seed of the resampling (same seed = same resamples = paired across models).
        n_resamples: bootstrap resamples.
    """
    y = np.asarray(y)
    mats = [np.asarray(s) for s in seed_scores]
    n = len(y)

    def statistic(idx: np.ndarray, axis: int = -1) -> np.ndarray:
        idx = np.asarray(idx, dtype=np.int64)
        return np.mean([metric_on(kind, y, m, idx) for m in mats], axis=0)

    value = float(statistic(np.arange(n)))
    if n < 2:
        return Interval(value, float("nan"), float("nan"))
    low, high = _bootstrap(statistic, n, seed, n_resamples)
    return Interval(value, low, high)


def paired_difference(
    kind: str,
    y: np.ndarray,
    scores_a: Sequence[np.ndarray],
    scores_b: Sequence[np.ndarray],
    *,
    seed: int = 0,
    n_resamples: int = N_RESAMPLES,
) -> Interval:
    """Metric of model A minus model B (seed-averaged) on the same clip resamples, with its CI."""
    y = np.asarray(y)
    a, b = [np.asarray(s) for s in scores_a], [np.asarray(s) for s in scores_b]
    n = len(y)

    def statistic(idx: np.ndarray, axis: int = -1) -> np.ndarray:
        idx = np.asarray(idx, dtype=np.int64)
        return np.mean([metric_on(kind, y, m, idx) for m in a], axis=0) - np.mean([metric_on(kind, y, m, idx) for m in b], axis=0)

    value = float(statistic(np.arange(n)))
    if n < 2:
        return Interval(value, float("nan"), float("nan"))
    low, high = _bootstrap(statistic, n, seed, n_resamples)
    return Interval(value, low, high)


def seed_summary(values: Sequence[float]) -> tuple[float, float, int]:
    """``(mean, sample std, n)`` over seeds (std is NaN for a single seed)."""
    v = np.asarray([x for x in values if x == x], dtype=np.float64)
    if len(v) == 0:
        return float("nan"), float("nan"), 0
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else float("nan"), int(len(v))


def mean_interval(values: Sequence[float], *, seed: int = 0, n_resamples: int = N_RESAMPLES) -> Interval:
    """Mean of per-clip ``values`` with a 95 % percentile bootstrap interval over clips (NaN bounds below 2 clips)."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) == 0:
        return Interval(float("nan"), float("nan"), float("nan"))
    value = float(v.mean())
    if len(v) < 2:
        return Interval(value, float("nan"), float("nan"))

    def statistic(idx: np.ndarray, axis: int = -1) -> np.ndarray:
        return v[np.asarray(idx, dtype=np.int64)].mean(-1)

    low, high = _bootstrap(statistic, len(v), seed, n_resamples)
    return Interval(value, low, high)
