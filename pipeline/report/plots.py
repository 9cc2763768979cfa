"""The report's figures: per cell (training curve, confusion matrix or per-class ROC-AUC,
harmonic filterbank, self-attention, robustness) and per task (robustness curves of all models).

One broken figure must not sink the report: a figure that fails is logged and noted on its
entry, the report goes on.
"""

from __future__ import annotations

import inspect
import logging
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.core.errors import UserError
from pipeline.core.paths import Layout
from pipeline.core.task_kinds import MULTILABEL, PRIMARY_METRIC, SINGLE
from pipeline.data.shards import SegmentStore
from pipeline.models.checkpoint import load_model
from pipeline.models.frontends import LEARNABLE_FRONTENDS
from pipeline.models.zoo import resolve_variant
from pipeline.report import figures
from pipeline.report.collect import Entry, read_json
from pipeline.report.frontend_figures import learnable_frontend_figure
from pipeline.robustness.plots import plot_robustness, plot_task_curves
from pipeline.robustness.stage import robustness_summary

log = logging.getLogger(__name__)


def slug(*parts: str) -> str:
    return "__".join(re.sub(r"[^A-Za-z0-9_.-]+", "-", p) for p in parts)


def _needs_model(card: dict[str, Any]) -> tuple[bool, bool]:
    """(has learned filters: harmonic or a learnable front-end, has self-attention) judged from the variant, without loading."""

    try:
        frontend, spec = resolve_variant(card["config"]["variant"])
        attention = "return_attention" in inspect.signature(spec.backend.forward).parameters
        return frontend == "harmonic" or frontend in LEARNABLE_FRONTENDS, attention
    except (KeyError, ValueError, TypeError):  # unknown variant, card without a config
        return False, False


def _test_clip(layout: Layout, task: str) -> tuple[np.ndarray, list[str], str] | None:
    try:
        store = SegmentStore(layout.segments(task))
        rows = store.split("test")
        if rows.empty:
            rows = store.manifest
        row = rows.iloc[0]
        return store.wave(row), list(row["labels"]), str(row["clip_id"])
    except (UserError, OSError, ValueError, IndexError, KeyError):  # not segmented, empty
        return None


def make_figures(e: Entry, layout: Layout, fig_dir: Path) -> None:
    """Draw every figure that applies to ``e`` into ``fig_dir``; append them to ``e.figures``."""

    title = f"{e.task} / {e.model}"
    mdir = layout.metrics(e.task, e.model, e.seed)

    def attempt(caption: str, fn, *args, **kw) -> None:
        try:
            path = fn(*args, **kw)
        except Exception as exc:  # noqa: BLE001 - one broken figure must not sink the report
            log.warning("figure %r for %s failed: %s: %s", caption, title, type(exc).__name__, exc)
            e.notes.append(f"figure '{caption}' failed ({type(exc).__name__}: {exc})")
            return
        if path is not None:
            e.figures.append((caption, Path(path)))

    if e.robustness is not None and len(e.robustness):
        attempt(
            "metric under perturbations",
            plot_robustness,
            e.robustness,
            fig_dir / f"{slug(e.task, e.model)}__robustness.png",
            metric=PRIMARY_METRIC[e.kind or MULTILABEL],
        )
    if e.history is not None:
        attempt(
            "training curve",
            figures.training_curve_figure,
            e.model_dir / "history.csv",
            title,
            fig_dir / f"{slug(e.task, e.model)}__training.png",
        )
    labels = list((e.card or {}).get("labels") or [])
    preds = mdir / "predictions.parquet"
    if e.kind == SINGLE and preds.exists() and labels:
        attempt(
            "confusion matrix (test split)",
            lambda: figures.confusion_matrix_figure(
                pd.read_parquet(preds), labels, title, fig_dir / f"{slug(e.task, e.model)}__confusion.png"
            ),
        )
    auc = read_json(mdir / "per_class_auc.json")
    if e.kind == MULTILABEL and auc:
        attempt(
            "per-class ROC-AUC (test split)",
            figures.per_class_auc_figure,
            auc,
            title,
            fig_dir / f"{slug(e.task, e.model)}__per_class_auc.png",
        )
    if not e.card:
        return
    harmonic, attention = _needs_model(e.card)
    if not (harmonic or attention):
        return
    try:
        model, _ = load_model(e.model_dir)
    except (UserError, OSError, RuntimeError, KeyError) as exc:  # a bad checkpoint
        e.notes.append(f"model could not be loaded for figures ({exc})")
        return
    if harmonic:
        attempt(
            "learned harmonic filterbank",
            figures.harmonic_filterbank_figure,
            model,
            title,
            fig_dir / f"{slug(e.task, e.model)}__filterbank.png",
        )

        attempt(
            "learned front-end filters",
            learnable_frontend_figure,
            model,
            title,
            fig_dir / f"{slug(e.task, e.model)}__frontend.png",
        )
    if attention:
        clip = _test_clip(layout, e.task)
        if clip is None:
            e.notes.append("attention figure needs data/segments/<task> (not run)")
        else:
            wave, truth, clip_id = clip
            attempt(
                f"self-attention on test clip {clip_id}",
                figures.attention_figure,
                model,
                wave,
                labels,
                title,
                fig_dir / f"{slug(e.task, e.model)}__attention.png",
                true_labels=truth,
            )


def robustness_tables(entries: list[Entry], task: str, fig_dir: Path) -> tuple[pd.DataFrame | None, Path | None, str]:
    """(relative-degradation pivot, task curve PNG, metric) for one task, or Nones."""
    tables = [e.robustness for e in entries if e.task == task and e.robustness is not None and len(e.robustness)]
    if not tables:
        return None, None, ""

    table = pd.concat(tables, ignore_index=True)
    metrics = list(dict.fromkeys(table["metric"]))
    metric = next((m for m in ("roc_auc", "accuracy") if m in metrics), metrics[0])
    png = None
    try:
        png = plot_task_curves(table, task, fig_dir / f"{slug(task)}__robustness.png", metric=metric)
    except Exception as exc:  # noqa: BLE001 - like any figure (see the module docstring)
        log.warning("robustness curves for %s failed: %s", task, exc)
    summary = robustness_summary(tables)
    summary = summary[summary["metric"] == metric]
    if summary.empty:
        return None, png, metric
    summary = summary.assign(
        point=[
            f"{p} {u} {lv:g}".replace("  ", " ")
            for p, u, lv in zip(summary["perturbation"], summary["unit"].fillna(""), summary["level"])
        ]
    )
    pivot = summary.pivot_table(index="model", columns="point", values="relative_degradation", aggfunc="mean", sort=False)
    clean = summary.groupby("model", sort=False)["clean"].mean()
    under_noise = clean.reindex(pivot.index) * (1 - pivot.mean(axis=1))  # the mean score under the perturbations
    pivot = pivot.loc[under_noise.sort_values(ascending=False).index]
    pivot.insert(0, f"clean {metric}", clean)
    return pivot, png, metric
