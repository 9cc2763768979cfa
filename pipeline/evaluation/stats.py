"""Uncertainty of the comparison: seeds, bootstrap intervals over test clips, paired differences.

- Over seeds: mean and sample standard deviation of a cell's test metric across
  ``grid.seeds`` (:func:`seed_summary`), and a 95 % t-interval of the mean over seeds
  (:func:`seed_interval`): how much a new training seed could move it.
- Over test clips: a 95 % bootstrap confidence interval of the metric of the seed-averaged
  model (the metric of every seed on the same resample of clips, then the mean over seeds),
  computed with :func:`scipy.stats.bootstrap` (:func:`clip_interval`).
- Paired comparison of two models: the same resamples of the same clips and the same seeds
  for both, so the interval of the *difference* is much narrower than the two intervals
  suggest (:func:`paired_difference`).

The metrics are vectorised over resamples: accuracy is a mean of hits; macro ROC-AUC is the
Mann-Whitney statistic per class, counted from each clip's draw count on the class's one sort
(:func:`_macro_auc`; classes without both a positive and a negative in a resample are left out,
as in :mod:`pipeline.evaluation.metrics`). On the full sample both equal scikit-learn's values (tested).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sst

from pipeline.core.task_kinds import SINGLE

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
    """``idx (..., n)`` resamples -> macro ROC-AUC of each resample ``(...)``: the mean of :func:`class_auc`
    over the classes it can score."""
    with warnings.catch_warnings():  # a resample where no class has both labels: NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(class_auc(y, scores, idx), axis=-1)


def class_auc(y: np.ndarray, scores: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``idx (..., n)`` resamples -> ROC-AUC of each class in each resample ``(..., classes)`` (Mann-Whitney
    statistic; NaN where a resample lacks a positive or a negative of the class).

    A resample only repeats the ``n`` clips, so each class is sorted once: with ``w (resamples,
    n)`` the times each clip is drawn, a positive clip counts the drawn negatives scored below it
    plus half of those tied with it, ``w`` times. The counts are whole or half numbers summed
    exactly in float64, so this equals the rank-sum statistic over each resampled array
    (``scipy.stats.rankdata``, ties averaged) to the last bit, at O(resamples x n) per class
    instead of a sort of every resample.
    """
    idx = np.asarray(idx, dtype=np.int64)
    n = len(y)
    flat = idx.reshape(-1, idx.shape[-1])
    rows = flat.shape[0]
    w = np.bincount((flat + n * np.arange(rows)[:, None]).ravel(), minlength=rows * n).reshape(rows, n).astype(np.float64)
    ys, ss = np.asarray(y, dtype=np.float64), np.asarray(scores, dtype=np.float64)
    n_pos = w @ ys  # (rows, C)
    n_neg = w.sum(-1, keepdims=True) - n_pos
    u = np.empty_like(n_pos)
    positions = np.arange(n)
    for c in range(ys.shape[1]):
        order = np.argsort(ss[:, c], kind="stable")
        sorted_scores = ss[order, c]
        starts = np.r_[True, sorted_scores[1:] != sorted_scores[:-1]]  # first clip of each tie group
        first = np.maximum.accumulate(np.where(starts, positions, 0))
        last = np.minimum.accumulate(np.where(np.r_[starts[1:], True], positions, n - 1)[::-1])[::-1]
        pos, drawn = ys[order, c], w[:, order]
        neg_cum = np.cumsum(drawn * (1.0 - pos), axis=-1)  # drawn negatives up to each sorted clip
        below = np.where(first > 0, neg_cum[:, np.maximum(first - 1, 0)], 0.0)
        tied = neg_cum[:, last] - below
        u[:, c] = ((drawn * pos) * (below + 0.5 * tied)).sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = np.where((n_pos > 0) & (n_neg > 0), u / (n_pos * n_neg), np.nan)
    return auc.reshape(*idx.shape[:-1], ys.shape[1])


def _f1_sample(y: np.ndarray, scores: np.ndarray, idx: np.ndarray, threshold: float) -> np.ndarray:
    """``idx (..., n)`` resamples -> per-sample F1 at ``threshold`` of each resample ``(...)``.

    Each clip's F1 (``2 |truth & predicted| / (|truth| + |predicted|)``, 0 when both are empty, as
    scikit-learn's ``average="samples", zero_division=0``) is defined for every clip, so every
    resample has a value: the interval never vanishes as the macro ROC-AUC's does on rare classes.
    """
    truth, pred = np.asarray(y) > 0, np.asarray(scores) >= threshold
    denom = truth.sum(-1) + pred.sum(-1)
    per_clip = np.divide(2.0 * (truth & pred).sum(-1), denom, out=np.zeros(len(truth)), where=denom > 0)
    return per_clip[idx].mean(-1)


def metric_on(
    kind: str, y: np.ndarray, scores: np.ndarray, idx: np.ndarray, metric: str | None = None, threshold: float = 0.1
) -> np.ndarray:
    """A metric per resample: ``metric`` (``f1_sample`` at ``threshold``), or by default the primary
    metric of ``kind`` (``"single"``: accuracy, ``"multilabel"``: macro ROC-AUC)."""
    if metric == "f1_sample":
        return _f1_sample(y, scores, idx, threshold)
    return _accuracy(y, scores, idx) if kind == SINGLE else _macro_auc(y, scores, idx)


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
    kind: str,
    y: np.ndarray,
    seed_scores: Sequence[np.ndarray],
    *,
    seed: int = 0,
    n_resamples: int = N_RESAMPLES,
    metric: str | None = None,
    threshold: float = 0.1,
) -> Interval:
    """Metric of the seed-averaged model with a bootstrap CI over test clips.

    Args:
        kind: ``"single"`` or ``"multilabel"``.
        y: ``(clips,)`` class indices or ``(clips, classes)`` multi-hot, aligned with the scores.
        seed_scores: one ``(clips, classes)`` score matrix per training seed.
        seed: seed of the resampling (same seed = same resamples = paired across models).
        n_resamples: bootstrap resamples.
        metric, threshold: another metric than the kind's primary (:func:`metric_on`: ``f1_sample``).
    """
    y = np.asarray(y)
    mats = [np.asarray(s) for s in seed_scores]
    n = len(y)

    def statistic(idx: np.ndarray, axis: int = -1) -> np.ndarray:
        idx = np.asarray(idx, dtype=np.int64)
        return np.mean([metric_on(kind, y, m, idx, metric, threshold) for m in mats], axis=0)

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


def seed_interval(values: Sequence[float]) -> Interval:
    """Mean over seeds with its 95 % t-interval (``scipy.stats.t``, ``n - 1`` degrees of freedom): the spread a
    new training seed would show, where the bootstrap over clips shows the test set's. NaN bounds below 2 seeds."""
    v = np.asarray([x for x in values if x == x], dtype=np.float64)
    if len(v) == 0:
        return Interval(float("nan"), float("nan"), float("nan"))
    mean = float(v.mean())
    if len(v) < 2:
        return Interval(mean, float("nan"), float("nan"))
    if np.all(v == v[0]):  # identical seeds (a deterministic step): a point, not a float-rounding spread
        return Interval(float(v[0]), float(v[0]), float(v[0]))
    sem = float(v.std(ddof=1)) / np.sqrt(len(v))
    low, high = sst.t.interval(CONFIDENCE, len(v) - 1, loc=mean, scale=sem)
    return Interval(mean, float(low), float(high))


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
