"""The rows of the report's tables, formatted (numbers as text, ``not run`` where missing)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from pipeline.core.paths import Layout
from pipeline.core.task_kinds import MULTILABEL, SINGLE
from pipeline.evaluation.family_summary import TaskSummary
from pipeline.evaluation.metrics import primary_metric
from pipeline.evaluation.references import references_for
from pipeline.models.grid import cell_keys
from pipeline.report.collect import METRICS, NOT_RUN, ORIGINS, Entry, data_origin, read_json
from pipeline.report.render import fmt
from pipeline.training.convergence import MARK

if TYPE_CHECKING:
    from pipeline.config.params import Params


def comparison_rows(entries: list[Entry], task: str) -> tuple[list[str], list[list[str]]]:
    """Header and formatted rows of one task's comparison table."""
    sub = [e for e in entries if e.task == task]
    kind = next((e.kind for e in sub if e.kind), None) or (SINGLE if "keyword" in task else MULTILABEL)
    metric_cols = METRICS.get(kind, METRICS[MULTILABEL])
    lead = primary_metric(kind, task)  # DCASE: the per-sample F1 first
    metric_cols = sorted(metric_cols, key=lambda col: col[0] != f"test/{lead}")
    header = [
        "model",
        "status",
        *[label for _, label in metric_cols],
        "params",
        "train time",
        "s / epoch",
        "eval clips/s",
        "best epoch",
        "robustness",
        "registry",
    ]
    rows = []
    several = len({e.seed for e in sub}) > 1
    for e in sub:
        label = f"{e.model} (seed {e.seed})" if several else e.model
        if not e.trained:
            rows.append(
                [label, NOT_RUN, *[NOT_RUN] * len(metric_cols), NOT_RUN, NOT_RUN, NOT_RUN, NOT_RUN, NOT_RUN, NOT_RUN, "-"]
            )
            continue
        meta = e.card.get("metadata", {})
        secs = e.metric("train/seconds") or meta.get("train_seconds")
        epochs = len(e.history) if e.history is not None else None
        n_clips, eval_s = e.metric("test/n_clips"), e.metric("test/seconds")
        throughput = (float(n_clips) / float(eval_s)) if n_clips and eval_s else None
        mark = f" {MARK}" if e.still_improving else ""
        rows.append(
            [
                label,
                e.status,
                *[fmt(e.metric(k)) + (mark if e.metric(k) is not None else "") for k, _ in metric_cols],
                fmt(e.n_params),
                f"{float(secs):.1f} s" if secs is not None else "n/a",
                f"{float(secs) / epochs:.2f}" if secs is not None and epochs else "n/a",
                fmt(throughput, 1) if throughput is not None else ("n/a" if e.evaluated else NOT_RUN),
                fmt(meta.get("best_epoch")) + mark,
                "yes" if e.robustness is not None else NOT_RUN,
                e.registry_uri or "-",
            ]
        )
    return header, rows + reference_rows(task, [k for k, _ in metric_cols], len(header))


def reference_rows(task: str, metric_keys: list[str], width: int) -> list[list[str]]:
    """The published rows of ``task`` (only ``mtat``: [SMC20]) laid out like :func:`comparison_rows`'s, status
    ``paper (SMC20, recalled, unverified)`` or ``paper (SMC20, confirmed)``, ``-`` where the paper gives no number."""

    rows = []
    for ref in references_for(task):
        published = {"test/roc_auc": ref.roc_auc, "test/pr_auc": ref.pr_auc}
        values = [fmt(published[k]) if k in published else "-" for k in metric_keys]
        rows.append([ref.model, ref.source, *values, *["-"] * (width - 2 - len(values))])
    return rows


def coverage_rows(params: Params, layout: Layout) -> tuple[list[str], list[list[str]]]:
    header = [
        "task",
        "data",
        "kind",
        "classes",
        "clips present / expected",
        "coverage",
        "skipped",
        "missing",
        "train / val / test",
        "hours of audio",
    ]
    rows = []
    for task in params.grid.tasks:
        meta = read_json(layout.segments(task) / "meta.json")
        origin = ORIGINS[data_origin(task)]
        if meta is None:
            rows.append([task, origin, NOT_RUN, NOT_RUN, NOT_RUN, NOT_RUN, NOT_RUN, NOT_RUN, NOT_RUN, NOT_RUN])
            continue
        cov = meta.get("coverage", {})
        split = cov.get("per_split", {})
        frac = cov.get("fraction")
        rows.append(
            [
                task,
                origin,
                str(meta.get("kind", "")),
                str(len(meta.get("labels", []))),
                f"{cov.get('present', '?')} / {cov.get('expected', '?')}",
                f"{100 * float(frac):.1f} %" if frac is not None and frac == frac else "n/a",
                fmt(cov.get("skipped")),
                fmt(cov.get("missing")),
                " / ".join(str(split.get(s, 0)) for s in ("train", "val", "test")),
                f"{float(meta.get('total_seconds', 0)) / 3600:.3f}",
            ]
        )
    return header, rows


def pivot_rows(pivot: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    header = ["model", *[str(c) for c in pivot.columns]]
    rows = []
    for model, r in pivot.iterrows():
        cells = [str(model)]
        for i, v in enumerate(r):
            if i == 0:
                cells.append(fmt(v))
            else:
                cells.append("n/a" if v != v else f"{-100 * float(v):+.1f} %")  # a change: a loss is negative
        rows.append(cells)
    return header, rows


def cross_rows(params: Params, layout: Layout) -> tuple[list[str], list[list[str]]]:
    """One row per (trained on, model, seed, evaluated on) found under ``metrics/*/*/seed*/cross/``."""
    header = ["trained on", "model", "seed", "evaluated on", "metric", "value", "clips", "labels shared"]
    rows = []

    for task, model, seed in cell_keys(params):
        for path in sorted((layout.metrics(task, model, seed) / "cross").glob("*/eval.json")):
            data = read_json(path) or {}
            other = path.parent.name
            metric = next((m for m in ("accuracy", "roc_auc") if f"cross/{other}/{m}" in data), None)
            if metric is None:
                continue
            rows.append(
                [
                    task,
                    model,
                    str(seed),
                    other,
                    metric,
                    fmt(data[f"cross/{other}/{metric}"]),
                    fmt(data.get(f"cross/{other}/n_clips")),
                    fmt(data.get(f"cross/{other}/n_labels_shared")),
                ]
            )
    return header, rows


def ci(v: float, lo: float, hi: float, digits: int = 3, pct: bool = False) -> str:
    if v != v:
        return "n/a"
    if pct:
        return f"{100 * v:+.1f} % [{100 * lo:+.1f}, {100 * hi:+.1f}]"
    return f"{v:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def accuracy_rows(table: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    metric = str(table["metric"].iloc[0])
    header = [
        "model",
        "seeds",
        f"{metric} mean +- std over seeds",
        f"{metric} [95 % CI over seeds, t]",
        f"{metric} [95 % CI over clips, bootstrap]",
        f"difference to {table['best'].iloc[0]} [95 % CI over clips, paired]",
    ]
    rows = []
    for r in table.sort_values("value", ascending=False).itertuples(index=False):
        spread = f"{r.seed_mean:.3f} +- {r.seed_std:.3f}" if r.seed_std == r.seed_std else f"{r.seed_mean:.3f} (1 seed)"
        diff = ci(r.diff_to_best, r.diff_low, r.diff_high)
        if r.model == r.best:  # no "best" on a tie: another model equal to 3 decimals
            diff = "best" if (table["value"].round(3) == round(r.value, 3)).sum() == 1 else "tied best"
        over_seeds = _over_seeds(r.seed_mean, getattr(r, "seed_ci_low", float("nan")), getattr(r, "seed_ci_high", float("nan")))
        rows.append([r.model, str(r.n_seeds), spread, over_seeds, ci(r.value, r.ci_low, r.ci_high), diff])
    return header, rows


def _over_seeds(v: float, lo: float, hi: float) -> str:
    """A t-interval over seeds, or ``n/a (1 seed)`` where one seed gives none."""
    return ci(v, lo, hi) if lo == lo else "n/a (1 seed)"


def robustness_rows(table: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    clips = "95 % CI over clips, bootstrap"
    header = [
        "model",
        f"clean [{clips}]",
        f"under noise [{clips}]",
        f"absolute drop [{clips}]",
        "absolute drop [95 % CI over seeds, t]",
        f"relative change [{clips}]",
    ]
    rows = [
        [
            r.model,
            ci(r.clean, r.clean_low, r.clean_high),
            ci(r.perturbed, r.perturbed_low, r.perturbed_high),
            ci(r.drop, r.drop_low, r.drop_high),
            _over_seeds(r.drop, getattr(r, "drop_seed_low", float("nan")), getattr(r, "drop_seed_high", float("nan"))),
            ci(-r.relative_drop, -r.relative_drop_high, -r.relative_drop_low, pct=True),  # a loss prints negative
        ]
        for r in table.sort_values("perturbed", ascending=False).itertuples(index=False)  # the score under noise first
    ]
    return header, rows


def summary_rows(s: TaskSummary) -> tuple[list[str], list[list[str]]]:
    """The first-screen table of one task: a row per front-end family, its best variant, clean and under each noise."""
    header = ["front-end family", "best variant", f"clean {s.metric} [95 % CI]"]
    header += [f"{pert.replace('_', ' ')} at {level:g} dB [95 % CI]" for pert, level in s.points]
    rows = []
    for r in s.rows:
        variant = r.model + (f" (tied with {', '.join(r.tied)})" if r.tied else "")
        noise = [ci(i.value, i.low, i.high) if (i := r.noise.get(p)) else NOT_RUN for p in s.points]
        rows.append([r.family, variant, ci(r.clean.value, r.clean.low, r.clean.high), *noise])
    return header, rows
