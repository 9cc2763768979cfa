"""Task metrics (scikit-learn): ROC-AUC / PR-AUC / F1 for multi-label, accuracy for single-label.

Metric names are slash-free here; stages prefix them (``test/roc_auc``).
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.metrics import accuracy_score, average_precision_score, f1_score, roc_auc_score

from pipeline.core.task_kinds import MULTILABEL, PRIMARY_METRIC


def multilabel_metrics(y_true: np.ndarray, scores: np.ndarray, threshold: float = 0.1) -> dict[str, float]:
    """Macro ROC-AUC and PR-AUC over classes with both positives and negatives, plus F1.

    Args:
        y_true: ``(clips, classes)`` 0/1.
        scores: ``(clips, classes)`` probabilities (sigmoid of mean logits or mean sigmoid).
        threshold: decision threshold for F1 (docs/spec.md §5: 0.1 for DCASE).

    Returns:
        ``roc_auc``, ``pr_auc`` (macro, per class then mean), ``f1_sample`` (per-clip F1 then
        mean), ``f1_micro``, and ``n_classes_scored`` (classes that had both labels in y_true).
    """
    y_true = np.asarray(y_true).astype(int)
    scores = np.asarray(scores, dtype=np.float64)
    valid = (y_true.sum(0) > 0) & (y_true.sum(0) < len(y_true))
    out: dict[str, float] = {"n_classes_scored": float(valid.sum())}
    if valid.any():
        out["roc_auc"] = float(roc_auc_score(y_true[:, valid], scores[:, valid], average="macro"))
        out["pr_auc"] = float(average_precision_score(y_true[:, valid], scores[:, valid], average="macro"))
    else:
        out["roc_auc"] = out["pr_auc"] = float("nan")
    pred = (scores >= threshold).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out["f1_sample"] = float(f1_score(y_true, pred, average="samples", zero_division=0))
        out["f1_micro"] = float(f1_score(y_true, pred, average="micro", zero_division=0))
    return out


def per_class_auc(y_true: np.ndarray, scores: np.ndarray, labels: list[str]) -> dict[str, float]:
    """ROC-AUC of each class (NaN where a class lacks positives or negatives)."""
    out = {}
    for i, name in enumerate(labels):
        col = y_true[:, i]
        out[name] = float(roc_auc_score(col, scores[:, i])) if 0 < col.sum() < len(col) else float("nan")
    return out


def single_label_metrics(y_true: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """Accuracy of the argmax (``y_true`` holds class indices, ``scores`` (clips, classes))."""
    pred = np.asarray(scores).argmax(1)
    return {"accuracy": float(accuracy_score(np.asarray(y_true), pred))}


def task_metrics(kind: str, y_true: np.ndarray, scores: np.ndarray, threshold: float = 0.1) -> dict[str, float]:
    """Dispatch on the task kind (``multilabel`` or ``single``)."""
    if kind == MULTILABEL:
        return multilabel_metrics(y_true, scores, threshold)
    return single_label_metrics(y_true, scores)


TASK_PRIMARY_METRIC = {"dcase2017_task4": "f1_sample"}
"""Tasks whose benchmark ranks by another metric than their kind's (docs/spec.md §5: DCASE 2017 task 4,
the per-sample F1 at ``evaluate.threshold`` 0.1)."""


def primary_metric(kind: str, task: str | None = None) -> str:
    """The metric a task is ranked by: :data:`TASK_PRIMARY_METRIC`, else its kind's :data:`PRIMARY_METRIC`."""
    return TASK_PRIMARY_METRIC.get(task or "", PRIMARY_METRIC.get(kind, "roc_auc"))


def clip_loss(scores: np.ndarray, y: np.ndarray, multilabel: bool) -> float:
    """Loss of chunk-averaged *scores* (validation, docs/spec.md §4)."""
    eps = 1e-7
    s = np.clip(scores.astype(np.float64), eps, 1 - eps)
    if multilabel:
        return float(-np.mean(y * np.log(s) + (1 - y) * np.log(1 - s)))
    return float(-np.mean(np.log(s[np.arange(len(y)), y])))
