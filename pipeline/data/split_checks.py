"""Degenerate splits, refused before anything is fitted or scored.

A classifier cannot be fitted on one class, a metric cannot be computed on no clips, and macro
ROC-AUC is undefined on a split where no tag has both positive and negative clips. sklearn and
torch fail on those late and cryptically; :func:`require_split` turns each into one sentence
naming the dataset, the split and the fix (``probe``, ``evaluate``, ``train``), and
:func:`one_class_warning` lets ``segment`` warn as soon as such a dataset is made.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pandas as pd

from pipeline.core.errors import UserError


def _classes(labels: Iterable[Sequence[str]]) -> set[str]:
    return {name for names in labels for name in names}


def _tags_with_both(labels: Sequence[Sequence[str]]) -> int:
    """Tags that some clips carry and some do not (those macro ROC-AUC can score)."""
    counts: dict[str, int] = {}
    for names in labels:
        for name in set(names):
            counts[name] = counts.get(name, 0) + 1
    return sum(1 for n in counts.values() if 0 < n < len(labels))


def split_problem(rows: pd.DataFrame, split: str, multilabel: bool, fit: bool) -> str | None:
    """What makes ``rows`` (one split) unusable, or None.

    Args:
        rows: the split's manifest rows (a ``labels`` column of label lists).
        split: its name, for the message.
        multilabel: multi-label tagging (ROC-AUC) rather than single-label (accuracy).
        fit: a classifier is fitted on it (needs two classes) rather than only scored.
    """
    if len(rows) == 0:
        return f"its {split} split is empty"
    labels = [list(v) for v in rows["labels"]]
    classes = _classes(labels)
    if fit and not multilabel and len(classes) < 2:
        only = f" ('{next(iter(classes))}')" if classes else ""
        return f"its {split} split holds one class{only} in its {len(rows):,} clips, and a classifier needs at least 2"
    if multilabel and _tags_with_both(labels) == 0:
        return (
            f"no tag of its {split} split ({len(rows):,} clips) has both positive and negative clips, "
            "so ROC-AUC (and a tagger) has nothing to separate"
        )
    return None


def require_split(rows: pd.DataFrame, dataset: str, split: str, multilabel: bool, *, fit: bool = False) -> None:
    """Raise the one-line :class:`UserError` of :func:`split_problem`, if any.

    Raises:
        UserError: the split is empty, holds one class where a classifier is fitted, or (multi-label)
            has no tag with both positive and negative clips.
    """
    problem = split_problem(rows, split, multilabel, fit)
    if problem:
        raise UserError(
            f"{dataset} cannot be used: {problem}; add clips (of other classes) or change its split, "
            f"then re-run `musicrep segment {dataset}`."
        )


def one_class_warning(manifest: pd.DataFrame, dataset: str) -> str | None:
    """A warning for ``segment`` when the whole dataset has fewer than 2 classes (None otherwise)."""
    classes = _classes(list(v) for v in manifest["labels"])
    if len(classes) >= 2:
        return None
    names = ", ".join(f"'{c}'" for c in sorted(classes)) or "none"
    return (
        f"{dataset} holds {len(classes)} class ({names}) in {len(manifest):,} clips: train, evaluate and probe "
        "will refuse it (a classifier needs at least 2 classes); add clips of other classes"
    )
