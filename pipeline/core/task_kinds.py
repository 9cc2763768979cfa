"""The task kinds, spelled one way, and the metrics each is measured and ranked by.

A task is multi-label (:data:`MULTILABEL`: any number of tags per clip, sigmoid outputs) or
single-label (:data:`SINGLE`: one class per clip, softmax outputs). Params files may still say
``multi_label``/``single_label`` (a folder dataset's ``task``): :func:`normalize_kind` maps them,
so old params files keep working. The paper's input-length families ``tagging``, ``events`` and
``keywords`` (:func:`pipeline.models.zoo.infer_task`) are another axis: which benchmark a task
resembles, not how it is labelled.

The metric a task is ranked by is its kind's :data:`PRIMARY_METRIC` unless the task's own benchmark
names another (:func:`pipeline.evaluation.metrics.primary_metric`: DCASE 2017 task 4's per-sample F1).
"""

from __future__ import annotations

from typing import Literal

MULTILABEL = "multilabel"
SINGLE = "single"
TASK_KINDS = (MULTILABEL, SINGLE)
TaskKind = Literal["multilabel", "single"]

OLD_SPELLINGS = {"multi_label": MULTILABEL, "single_label": SINGLE}
"""Earlier spellings still accepted in params files, and what they mean."""

PRIMARY_METRIC = {MULTILABEL: "roc_auc", SINGLE: "accuracy"}
"""The metric a task of each kind is ranked by (validation's best epoch, the report, the champions)."""

REPORTED_METRICS = {MULTILABEL: ("roc_auc", "pr_auc"), SINGLE: ("accuracy", "macro_f1")}
"""The test metrics reported with a 95 % interval for each kind, the primary one first."""

TABLE_METRICS = {MULTILABEL: ("roc_auc", "pr_auc", "f1_sample", "f1_micro"), SINGLE: ("accuracy",)}
"""The test metrics the report's tables show for each kind, in order."""

METRIC_TITLES = {
    "roc_auc": "ROC-AUC",
    "pr_auc": "PR-AUC",
    "f1_sample": "F1 (sample)",
    "f1_micro": "F1 (micro)",
    "accuracy": "accuracy",
    "macro_f1": "macro-F1",
}
"""How the report names a metric."""


def kind_of(multilabel: bool) -> TaskKind:
    """:data:`MULTILABEL` or :data:`SINGLE` for a model's or dataset's ``multilabel`` flag."""
    return MULTILABEL if multilabel else SINGLE


def normalize_kind(value: object) -> object:
    """A params value in the one spelling: ``multi_label`` -> ``multilabel``, ``single_label`` -> ``single``
    (anything else unchanged, for the validator to judge)."""
    return OLD_SPELLINGS.get(value, value) if isinstance(value, str) else value
