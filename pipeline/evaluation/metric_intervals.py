"""Every metric of a task kind with a 95 % bootstrap interval over test clips (what ``probe`` reports).

- multi-label: macro ROC-AUC, macro PR-AUC (average precision) and the ROC-AUC of every tag;
- single-label: accuracy and macro-F1.

All metrics of one call share the same resamples of the clips (``numpy`` generator seeded with
``seed``), percentile intervals as :func:`pipeline.evaluation.stats.clip_interval`. All are vectorised over the resamples from the
times each clip is drawn (:func:`pipeline.evaluation.stats.class_auc`; weighted true/false positives
for PR-AUC and macro-F1). On the full sample every value
equals scikit-learn's (tested).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import numpy as np

from pipeline.core.task_kinds import MULTILABEL
from pipeline.core.task_kinds import REPORTED_METRICS as METRICS
from pipeline.evaluation.stats import CONFIDENCE, N_RESAMPLES, Interval, class_auc


def _onehot(labels: np.ndarray, n_classes: int) -> np.ndarray:
    return np.eye(n_classes, dtype=np.float64)[np.asarray(labels, dtype=np.int64)]


def _weights(idx: np.ndarray, n: int) -> np.ndarray:
    """``idx (rows, n)`` -> how often each clip is drawn in each resample ``(rows, n)``."""
    rows = idx.shape[0]
    return np.bincount((idx + n * np.arange(rows)[:, None]).ravel(), minlength=rows * n).reshape(rows, n).astype(np.float64)


def _accuracy(y: np.ndarray, scores: np.ndarray, idx: np.ndarray) -> np.ndarray:
    return (scores.argmax(-1) == y).astype(np.float64)[idx].mean(-1)


def _macro_f1(y: np.ndarray, scores: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Macro-F1 of the argmax per resample, over the classes present in its labels or predictions (as scikit-learn)."""
    n_classes = scores.shape[1]
    truth, pred = _onehot(y, n_classes), _onehot(scores.argmax(-1), n_classes)
    w = _weights(idx, len(y))
    tp, fp, fn = w @ (truth * pred), w @ ((1 - truth) * pred), w @ (truth * (1 - pred))
    denom = 2 * tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(denom > 0, 2 * tp / denom, np.nan)
    return np.nanmean(f1, axis=-1)


def _pr_auc(y: np.ndarray, scores: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Macro average precision per resample over the classes with a positive and a negative in it.

    Each class is sorted once (scores descending); with ``w`` the times each clip is drawn, the
    weighted true and false positives at every distinct threshold give scikit-learn's
    ``sum_n (R_n - R_{n-1}) P_n`` for every resample at once.
    """
    n = len(y)
    w = _weights(idx, n)
    ys, ss = np.asarray(y, dtype=np.float64), np.asarray(scores, dtype=np.float64)
    ap = np.full((len(idx), ys.shape[1]), np.nan)
    for c in range(ys.shape[1]):
        order = np.argsort(-ss[:, c], kind="stable")
        sorted_scores = ss[order, c]
        ends = np.r_[sorted_scores[1:] != sorted_scores[:-1], True]  # last clip of each tie group
        pos, drawn = ys[order, c], w[:, order]
        tp = np.cumsum(drawn * pos, axis=-1)[:, ends]
        fp = np.cumsum(drawn * (1 - pos), axis=-1)[:, ends]
        n_pos, n_neg = tp[:, -1], fp[:, -1]
        gain = np.diff(tp, axis=-1, prepend=0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
            value = (gain * precision).sum(-1) / n_pos
        ap[:, c] = np.where((n_pos > 0) & (n_neg > 0), value, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(ap, axis=-1)


def _macro_auc(y: np.ndarray, scores: np.ndarray, idx: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a resample without any scorable class
        return np.nanmean(class_auc(y, scores, idx), axis=-1)


STATISTICS: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]] = {
    "roc_auc": _macro_auc,
    "pr_auc": _pr_auc,
    "accuracy": _accuracy,
    "macro_f1": _macro_f1,
}


def _interval(full: float, resampled: np.ndarray) -> Interval:
    alpha = (1 - CONFIDENCE) / 2
    finite = resampled[np.isfinite(resampled)]
    if len(finite) == 0:
        return Interval(full, float("nan"), float("nan"))
    low, high = np.quantile(finite, [alpha, 1 - alpha])
    return Interval(full, float(low), float(high))


def metric_intervals(
    kind: str,
    y: np.ndarray,
    scores: np.ndarray,
    labels: Sequence[str] = (),
    *,
    seed: int = 0,
    n_resamples: int = N_RESAMPLES,
) -> dict[str, Interval | dict[str, Interval]]:
    """Every metric of ``kind`` on ``(y, scores)`` with its 95 % interval over clips.

    Args:
        kind: ``"multilabel"`` (``y`` multi-hot ``(clips, classes)``) or ``"single"`` (class indices ``(clips,)``).
        scores: ``(clips, classes)`` probabilities.
        labels: the class names (multi-label: keys of ``per_tag``; default ``"0"``, ``"1"``...).
        seed, n_resamples: the resampling (the same for every metric).

    Returns:
        ``{metric: Interval}`` for :data:`METRICS` ``[kind]``; multi-label adds ``per_tag: {label: Interval}``
        (NaN for a tag without a positive and a negative among the clips). Fewer than 2 clips: NaN bounds.
    """
    y, scores = np.asarray(y), np.asarray(scores, dtype=np.float64)
    n = len(y)
    full = np.arange(n)[None]
    idx = np.random.default_rng(seed).integers(0, n, (n_resamples, n)) if n >= 2 else np.empty((0, n), dtype=np.int64)
    out: dict[str, Interval | dict[str, Interval]] = {}
    for name in METRICS[kind]:
        statistic = STATISTICS[name]
        out[name] = _interval(float(statistic(y, scores, full)[0]), statistic(y, scores, idx) if len(idx) else np.array([]))
    if kind == MULTILABEL:
        names = list(labels) or [str(i) for i in range(scores.shape[1])]
        whole = class_auc(y, scores, full)[0]
        per = class_auc(y, scores, idx) if len(idx) else np.empty((0, scores.shape[1]))
        out["per_tag"] = {name: _interval(float(whole[c]), per[:, c]) for c, name in enumerate(names)}
    return out


def as_json(intervals: dict[str, Interval | dict[str, Interval]]) -> dict[str, object]:
    """:func:`metric_intervals` as plain numbers: ``{metric: {value, ci_low, ci_high}, per_tag: {label: {...}}}``."""

    def one(i: Interval) -> dict[str, float]:
        return {"value": i.value, "ci_low": i.low, "ci_high": i.high}

    return {k: ({t: one(i) for t, i in v.items()} if isinstance(v, dict) else one(v)) for k, v in intervals.items()}


def metric_lines(metrics: dict[str, object], digits: int = 4) -> list[str]:
    """:func:`as_json` output as text lines: ``pr_auc 0.6104 [0.5799, 0.6395]``, then ``per tag`` lines."""

    def one(v: dict[str, float]) -> str:
        return f"{v['value']:.{digits}f} [{v['ci_low']:.{digits}f}, {v['ci_high']:.{digits}f}]"

    lines = [f"{name} {one(v)}" for name, v in metrics.items() if name != "per_tag"]
    tags = metrics.get("per_tag") or {}
    if tags:
        lines.append("roc_auc per tag: " + "; ".join(f"{tag} {one(v)}" for tag, v in tags.items()))
    return lines
