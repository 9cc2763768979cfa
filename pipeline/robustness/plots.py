"""Robustness figures, drawn by the report (a grid cell never imports matplotlib).

- :func:`plot_robustness`: one model's metric vs level, one panel per perturbation;
- :func:`plot_task_curves`: every model of a task, metric vs SNR, the clean point included.

Both read the tidy tables written by :mod:`pipeline.robustness.stage` (several seeds are
averaged first, :func:`mean_over_seeds`) and write their PNG atomically.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg", force=False)  # headless, before pyplot
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from pipeline.core.io_utils import atomic_path  # noqa: E402
from pipeline.robustness.perturb import INFO  # noqa: E402
from pipeline.robustness.stage import CLEAN  # noqa: E402


def _default_metric(table: pd.DataFrame) -> str:
    metrics = list(dict.fromkeys(table["metric"]))
    for m in ("roc_auc", "accuracy"):
        if m in metrics:
            return m
    return metrics[0]


def _curve(sub: pd.DataFrame, clean: float, perturbation: str) -> tuple[list[float], list[float], float | None]:
    """Sorted (levels, values) of one perturbation, the clean point inserted at the identity level.

    Returns ``(x, y, x_clean)`` where ``x_clean`` is where the clean point sits when it has
    no natural level on the axis (SNR: one step right of the highest level), else ``None``.
    """
    sub = sub.sort_values("level")
    xs, ys = sub["level"].astype(float).tolist(), sub["value"].astype(float).tolist()
    identity = INFO[perturbation].identity if perturbation in INFO else None
    x_clean = None
    if identity is not None and math.isfinite(clean):
        if math.isinf(identity):
            step = max(np.diff(xs).max() if len(xs) > 1 else 10.0, 1.0)
            x_clean = (max(xs) if xs else 0.0) + step
        elif identity not in xs:
            xs.append(float(identity))
            ys.append(clean)
            order = np.argsort(xs)
            xs, ys = [xs[i] for i in order], [ys[i] for i in order]
    return xs, ys, x_clean


def _panels(n: int):
    ncols = max(1, min(n, 3))
    nrows = max(1, math.ceil(n / ncols))
    # sharey: one y scale per figure, so a small drop never looks as steep as a large one
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, 3.7 * nrows), squeeze=False, sharey=True)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return plt, fig, list(axes.flat[:n])


def _save(plt, fig, out_png: Path) -> Path:
    out_png = Path(out_png)
    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return out_png


def _clean_tick(ax, x_clean: float) -> None:
    ticks = [t for t in ax.get_xticks() if t < x_clean - 1e-9 and t >= ax.get_xlim()[0]]
    ax.set_xticks(ticks + [x_clean])
    ax.set_xticklabels([f"{t:g}" for t in ticks] + ["clean"])


def mean_over_seeds(table: pd.DataFrame) -> pd.DataFrame:
    """The tidy table with ``value`` averaged over seeds (one row per task, model, point, metric)."""
    if "seed" not in table or table["seed"].nunique() <= 1:
        return table
    keys = [c for c in ("task", "model", "perturbation", "level", "metric", "unit", "n_clips", "noise_source") if c in table]
    return table.groupby(keys, dropna=False, sort=False)["value"].mean().reset_index()


def plot_robustness(table: pd.DataFrame, out_png: str | Path, metric: str | None = None) -> Path:
    """One model's metric vs level (mean over its seeds), one panel per perturbation, clean as a dashed line."""
    table = mean_over_seeds(table)
    metric = metric or _default_metric(table)
    data = table[table["metric"] == metric]
    clean_rows = data[data["perturbation"] == CLEAN]["value"]
    clean = float(clean_rows.iloc[0]) if len(clean_rows) else math.nan
    perts = [p for p in dict.fromkeys(data["perturbation"]) if p != CLEAN]
    plt, fig, axes = _panels(max(1, len(perts)))
    task = str(table["task"].iloc[0]) if len(table) else "?"
    model = str(table["model"].iloc[0]) if len(table) else "?"
    n_clips = int(table["n_clips"].iloc[0]) if len(table) else 0
    if not perts:
        axes[0].axhline(clean, color="grey", linestyle="--", label=f"clean ({clean:.3f})")
        axes[0].set_title("no perturbations configured")
        axes[0].set_ylabel(metric)
        axes[0].legend()
    for ax, pert in zip(axes, perts):
        xs, ys, x_clean = _curve(data[data["perturbation"] == pert], clean, pert)
        ax.plot(xs, ys, marker="o", label=pert)
        if math.isfinite(clean):
            ax.axhline(clean, color="grey", linestyle="--", linewidth=1, label=f"clean ({clean:.3f})")
        if x_clean is not None and xs:
            ax.plot([xs[-1], x_clean], [ys[-1], clean], color="C0", linestyle=":")
            ax.plot([x_clean], [clean], marker="s", color="grey")
            _clean_tick(ax, x_clean)
        ax.set_title(pert)
        ax.set_xlabel(INFO[pert].axis_label if pert in INFO else "level")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"Robustness of {model} on {task} ({metric}, {n_clips} test clips)")
    return _save(plt, fig, Path(out_png))


def _model_style(i: int, n: int) -> tuple[Any, str]:
    """Distinct (colour, marker) for model ``i`` of ``n``: tab10 up to 10 models, tab20 beyond."""

    cmap = matplotlib.colormaps["tab10" if n <= 10 else "tab20"]
    return cmap(i % cmap.N), "osD^v<>px*"[i % 10]


def plot_task_curves(
    table: pd.DataFrame, task: str, out_png: str | Path, metric: str | None = None, perturbations: Sequence[str] | None = None
) -> Path:
    """All models of ``task``: metric vs SNR (one panel per SNR perturbation), clean point included.

    Args:
        table: tidy robustness tables of several models (concatenated).
        task: which task to draw.
        out_png: output path (written atomically).
        metric: metric to draw (default: ``roc_auc`` if present, else ``accuracy``).
        perturbations: panels to draw (default: every SNR perturbation in the table, or every
            perturbation if there is none).
    """
    data = mean_over_seeds(table[table["task"] == task])
    metric = metric or (_default_metric(data) if len(data) else "value")
    data = data[data["metric"] == metric]
    present = [p for p in dict.fromkeys(data["perturbation"]) if p != CLEAN]
    if perturbations is None:
        perturbations = [p for p in present if p in INFO and INFO[p].unit == "snr"] or present
    perturbations = [p for p in perturbations if p in present]
    plt, fig, axes = _panels(max(1, len(perturbations)))
    models = list(dict.fromkeys(data["model"]))
    for ax, pert in zip(axes, perturbations):
        x_clean_all = None
        for i, model in enumerate(models):
            mdata = data[data["model"] == model]
            clean_rows = mdata[mdata["perturbation"] == CLEAN]["value"]
            clean = float(clean_rows.iloc[0]) if len(clean_rows) else math.nan
            xs, ys, x_clean = _curve(mdata[mdata["perturbation"] == pert], clean, pert)
            color, marker = _model_style(i, len(models))
            ax.plot(xs, ys, marker=marker, color=color, label=model)
            if x_clean is not None and xs:
                ax.plot([xs[-1], x_clean], [ys[-1], clean], color=color, linestyle=":")
                ax.plot([x_clean], [clean], marker="s", color=color)
                x_clean_all = x_clean
            elif INFO.get(pert) is not None and INFO[pert].identity is None and math.isfinite(clean):
                ax.axhline(clean, color=color, linestyle="--", linewidth=0.8)
        if x_clean_all is not None:
            _clean_tick(ax, x_clean_all)
        ax.set_title(pert)
        ax.set_xlabel(INFO[pert].axis_label if pert in INFO else "level")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
    if perturbations and models:  # one legend for all panels, outside the axes (no curve hidden)
        axes[-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5), title="model", title_fontsize=8)
    if not perturbations:
        axes[0].set_title("no perturbed results")
    fig.suptitle(f"{task}: {metric} under perturbation, all models (clean point included)")
    return _save(plt, fig, Path(out_png))
