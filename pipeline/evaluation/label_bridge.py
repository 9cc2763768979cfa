"""Scoring a model on a dataset whose labels are not its own: the zero-shot path of ``evaluate --on``
and of labelled ``robustness`` with a published (``sota:``) model.

The dataset's labels are matched to the model's vocabulary by name, or through a label map
(``{dataset label: model label}``; dataset labels that map to nothing are left out).
Single-label models: clips without a known label are left out (and counted); multi-label models:
the metrics are computed over the shared labels only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.core.errors import UserError
from pipeline.core.task_kinds import kind_of
from pipeline.evaluation.metrics import task_metrics
from pipeline.models.checkpoint import load_model
from pipeline.models.inference import label_matrix
from pipeline.models.pretrained import is_pretrained_name, load_packaged_or_pretrained
from pipeline.models.pretrained_catalog import results_name

if TYPE_CHECKING:
    import pandas as pd

    from pipeline.core.paths import Layout

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LabelBridge:
    """The dataset's labels as the model's: ``mapping`` (dataset label -> model label, shared ones only).

    Attributes:
        vocab: the model's labels, in output order.
        mapping: dataset label -> model label, for the labels the model knows.
        multilabel: the model's kind (its card), which decides the metrics.
    """

    vocab: list[str]
    mapping: dict[str, str]
    multilabel: bool

    @classmethod
    def build(
        cls, dataset_labels: list[str], card: dict, label_map: dict[str, str] | None, *, dataset: str, model: str
    ) -> LabelBridge:
        """Match ``dataset_labels`` to ``card["labels"]``; raise a :class:`UserError` naming the fix when none is shared."""
        vocab = list(card["labels"])
        mapping = {lab: (label_map or {}).get(lab, lab) for lab in dataset_labels}
        mapping = {k: v for k, v in mapping.items() if v in vocab}
        if not mapping:
            raise UserError(
                f"{dataset} shares no label with {model} ({', '.join(vocab[:6])}...); "
                'pass a label map (--label-map FILE.json with {"their label": "model label"}).'
            )
        return cls(vocab, mapping, bool(card["config"].get("multilabel")))

    @classmethod
    def for_model(
        cls, dataset_labels: list[str], card: dict, label_map: dict[str, str] | None, *, dataset: str, model: str
    ) -> LabelBridge:
        """:meth:`build` for a model that may be the dataset's own (its card's labels, or the dataset's when it has none)."""
        if list(card.get("labels") or dataset_labels) != list(dataset_labels) and label_map is None:
            log.info("labels of %s differ from %s's; matching them by name (as evaluate's zero-shot path)", model, dataset)
        card = card if card.get("labels") else {**card, "labels": list(dataset_labels)}
        return cls.build(dataset_labels, card, label_map, dataset=dataset, model=model)

    @property
    def kind(self) -> str:
        return kind_of(self.multilabel)

    @property
    def shared(self) -> list[int]:
        """Indices of the model's outputs that some dataset label maps to."""
        return sorted({self.vocab.index(v) for v in self.mapping.values()})

    def select(self, rows: pd.DataFrame, *, what: str) -> tuple[pd.DataFrame, list[list[str]], int]:
        """``(rows kept, their labels in the model's names, clips left out)``; ``what`` names the pair in the error."""
        mapped = [[self.mapping[lab] for lab in labs if lab in self.mapping] for labs in rows["labels"]]
        keep = np.array([self.multilabel or len(m) > 0 for m in mapped], dtype=bool)
        if not keep.any():
            raise UserError(f"no test clip of {what} has a label the model knows; check the label map.")
        return rows[keep].reset_index(drop=True), [m for m, k in zip(mapped, keep) if k], int((~keep).sum())

    def y(self, mapped: list[list[str]]) -> np.ndarray:
        """Labels of the kept clips over the model's vocabulary."""
        return label_matrix(mapped, self.vocab, self.multilabel)

    def metrics(self, y: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
        """The task metrics; multi-label over the shared labels only."""
        if self.multilabel:
            return task_metrics(self.kind, y[:, self.shared], scores[:, self.shared], threshold)
        return task_metrics(self.kind, y, scores, threshold)


def load_for_scoring(
    task: str, model_name: str, layout: Layout, seed: int, map_location: Any = "cpu", mirror: str | None = None
) -> tuple[Any, dict[str, Any], str]:
    """``(model, card, name its results go under)``: the grid cell ``models/<task>/<model_name>/seed<seed>``,
    or a published ``sota:`` model (fetched on first use from ``mirror``; results under ``metrics/<task>/sota-<dataset>/<model>/``).

    Raises:
        UserError: a name with ``:`` that is no published model (it names the forms that work).
    """

    if is_pretrained_name(model_name):
        model, card = load_packaged_or_pretrained(model_name, map_location=map_location, mirror=mirror)
        return model, card, results_name(model_name)
    model_dir = layout.model(task, model_name, seed)
    if ":" in model_name and not (model_dir / "model.json").exists():
        raise UserError(
            f"{model_name!r} is neither a trained model of {task} nor a published one; use a grid model of {task}, "
            "sota:DATASET/MODEL (`musicrep pretrained list`), or a folder of audio for label-free agreement."
        )
    model, card = load_model(model_dir, map_location=map_location)
    return model, card, model_name
