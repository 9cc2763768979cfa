"""``report`` stage: ``reports/index.md``, a self-contained ``reports/index.html`` and
``reports/results.csv`` for the model x task grid of ``params.grid``.

Contents, per task of the grid:

1. **Comparison table**: test metrics from ``metrics/<task>/<model>/eval.json`` (falling back
   to the model's MLflow run when the file is gone), trainable parameters, training time
   (total and per epoch), evaluation throughput, best epoch, the registry URI of the model.
   Stages that have not produced their files are shown as ``not run``.
2. **Robustness**: the task's metric-vs-SNR curves of all models
   (:func:`pipeline.robustness.stage.plot_task_curves`) and a relative-degradation table
   (:func:`pipeline.robustness.stage.robustness_summary`), when robustness files exist.
3. **Figures** (:mod:`pipeline.figures`): training curves; confusion matrices (single-label)
   or per-class ROC-AUC (multi-label); the learned harmonic filterbank of models with one;
   the self-attention map of one test clip for models with self-attention.
4. **Data and environment** behind each number: dataset coverage (``meta.json`` of the
   segments), device / git commit / library versions of every training run (model card and
   MLflow tags), and the environment that built the report.

Results on the embedded synthetic datasets (``synth_*``) are labelled as such: they test the
pipeline, they say nothing about the architectures.

The report is built in a temporary directory that then replaces ``reports/`` (no stale
figures, no half-written report). Figures are also logged to each model's MLflow run
(``figures/``), and every trained model is registered in the MLflow model registry
(:func:`pipeline.registry.register_model`, idempotent) unless ``register=False``.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import math
import os
import platform
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import pandas as pd

from pipeline.paths import Layout

if TYPE_CHECKING:
    from pipeline.config import Params

log = logging.getLogger(__name__)

NOT_RUN = "not run"
METRICS = {
    "multilabel": [("test/roc_auc", "ROC-AUC"), ("test/pr_auc", "PR-AUC"), ("test/f1_sample", "F1 (sample)"),
                   ("test/f1_micro", "F1 (micro)")],
    "single": [("test/accuracy", "accuracy")],
}
PRIMARY = {"multilabel": "roc_auc", "single": "accuracy"}


def is_synthetic(task: str) -> bool:
    """The embedded generated datasets (``synth_*``)."""
    if task.startswith("synth_"):
        return True
    try:
        from pipeline.data.registry import get_source
        from pipeline.data.sources._synthetic import SyntheticSource

        return isinstance(get_source(task), SyntheticSource)
    except Exception:  # noqa: BLE001 - unknown dataset or one needing params
        return False


def _slug(*parts: str) -> str:
    return "__".join(re.sub(r"[^A-Za-z0-9_.-]+", "-", p) for p in parts)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text()) if path.exists() else None
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable %s (%s)", path, exc)
        return None


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None:
        return NOT_RUN
    if isinstance(v, str):
        return v
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}"
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    if math.isnan(f):
        return "n/a"
    if abs(f) >= 1000:
        return f"{f:,.0f}"
    return f"{f:.{digits}f}"


# ----------------------------------------------------------------------------- collecting
@dataclass
class Entry:
    """Everything the report knows about one cell (task, model, seed) of the grid."""

    task: str
    model: str
    model_dir: Path
    seed: int = 0
    card: dict[str, Any] | None = None
    eval: dict[str, Any] | None = None
    history: pd.DataFrame | None = None
    robustness: pd.DataFrame | None = None
    run: dict[str, Any] = field(default_factory=dict)  # MLflow: tags, metrics
    registry_uri: str | None = None
    figures: list[tuple[str, Path]] = field(default_factory=list)  # (caption, png)
    notes: list[str] = field(default_factory=list)

    @property
    def trained(self) -> bool:
        return self.card is not None

    @property
    def kind(self) -> str | None:
        if self.card:
            return self.card.get("metadata", {}).get("kind") or ("multilabel" if self.card["config"].get("multilabel") else "single")
        return None

    @property
    def run_id(self) -> str | None:
        return (self.card or {}).get("metadata", {}).get("mlflow_run_id") or self.run.get("run_id")

    def metric(self, key: str) -> Any:
        if self.eval is not None and key in self.eval:
            return self.eval[key]
        return self.run.get("metrics", {}).get(key)

    @property
    def evaluated(self) -> bool:
        return self.eval is not None or any(k.startswith("test/") for k in self.run.get("metrics", {}))

    @property
    def n_params(self) -> Any:
        if self.eval and "params" in self.eval:
            return int(self.eval["params"])
        tag = self.run.get("tags", {}).get("n_params")
        return int(tag) if tag and str(tag).isdigit() else None

    @property
    def status(self) -> str:
        if not self.trained:
            return NOT_RUN
        return "evaluated" if self.evaluated else "trained"


def _client() -> Any:
    try:
        from pipeline.tracking import client

        return client()
    except Exception as exc:  # noqa: BLE001 - bad URI, no mlflow
        log.warning("MLflow unavailable for the report (%s: %s)", type(exc).__name__, exc)
        return None


def _mlflow_runs(c: Any, tasks: Sequence[str]) -> dict[tuple[str, str, int], dict[str, Any]]:
    """Latest run per (task, model, seed) from MLflow: ``{"run_id", "tags", "metrics"}``; empty on any failure."""
    if c is None:
        return {}
    try:
        out: dict[tuple[str, str, int], dict[str, Any]] = {}
        for task in tasks:
            exp = c.get_experiment_by_name(task)
            if exp is None:
                continue
            for run in c.search_runs([exp.experiment_id], order_by=["attributes.start_time DESC"], max_results=2000):
                key = (task, run.info.run_name, int(run.data.tags.get("seed", 0) or 0))
                if key not in out:
                    out[key] = {"run_id": run.info.run_id, "tags": dict(run.data.tags), "metrics": dict(run.data.metrics),
                                "status": run.info.status}
        return out
    except Exception as exc:  # noqa: BLE001 - no store, locked DB...
        log.warning("MLflow runs unavailable for the report (%s: %s)", type(exc).__name__, exc)
        return {}


def _run_by_id(c: Any, run_id: str) -> dict[str, Any]:
    if c is None:
        return {}
    try:
        run = c.get_run(run_id)
        return {"run_id": run_id, "tags": dict(run.data.tags), "metrics": dict(run.data.metrics), "status": run.info.status}
    except Exception:  # noqa: BLE001
        return {}


def collect(params: "Params", layout: Layout, client: Any = None) -> list[Entry]:
    """One :class:`Entry` per cell (task, model, seed) of ``params.grid``, in grid order (``client``: MLflow, or None)."""
    from pipeline.checkpoint import read_card
    from pipeline.dag import cell_keys

    runs = _mlflow_runs(client, params.grid.tasks)
    entries = []
    for task, model, seed in cell_keys(params):
        e = Entry(task, model, layout.model(task, model, seed), seed)
        if (e.model_dir / "model.json").exists():
            try:
                e.card = read_card(e.model_dir)
            except Exception as exc:  # noqa: BLE001 - corrupt card
                e.notes.append(f"model card unreadable ({exc})")
        e.eval = _read_json(layout.metrics(task, model, seed) / "eval.json")
        hist = e.model_dir / "history.csv"
        if hist.exists():
            try:
                e.history = pd.read_csv(hist)
            except (OSError, ValueError, pd.errors.EmptyDataError):
                e.history = None
        rob = layout.metrics(task, model, seed) / "robustness.parquet"
        if rob.exists():
            try:
                e.robustness = pd.read_parquet(rob)
            except Exception as exc:  # noqa: BLE001
                e.notes.append(f"robustness table unreadable ({exc})")
        run_id = (e.card or {}).get("metadata", {}).get("mlflow_run_id")
        e.run = (_run_by_id(client, run_id) if run_id else {}) or (runs.get((task, model, seed), {}) if e.card else {})
        entries.append(e)
    return entries


# ----------------------------------------------------------------------------- figures
def _needs_model(card: dict[str, Any]) -> tuple[bool, bool]:
    """(has a harmonic filterbank, has self-attention) judged from the variant, without loading."""
    import inspect

    try:
        from pipeline.models.backends import BACKENDS
        from pipeline.models.zoo import resolve_variant

        frontend, spec = resolve_variant(card["config"]["variant"])
        attention = "return_attention" in inspect.signature(BACKENDS[spec.backend].forward).parameters
        return frontend == "harmonic", attention
    except Exception:  # noqa: BLE001
        return False, False


def _test_clip(layout: Layout, task: str) -> tuple[np.ndarray, list[str], str] | None:
    try:
        from pipeline.data.shards import SegmentStore

        store = SegmentStore(layout.segments(task))
        rows = store.split("test")
        if rows.empty:
            rows = store.manifest
        row = rows.iloc[0]
        return store.wave(row), list(row["labels"]), str(row["clip_id"])
    except Exception:  # noqa: BLE001 - not segmented
        return None


def make_figures(e: Entry, layout: Layout, fig_dir: Path) -> None:
    """Draw every figure that applies to ``e`` into ``fig_dir``; append them to ``e.figures``."""
    from pipeline import figures

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
        from pipeline.robustness.stage import plot_robustness

        attempt("metric under perturbations", plot_robustness, e.robustness,
                fig_dir / f"{_slug(e.task, e.model)}__robustness.png", metric=PRIMARY.get(e.kind or "multilabel"))
    if e.history is not None:
        attempt("training curve", figures.training_curve_figure, e.model_dir / "history.csv", title,
                fig_dir / f"{_slug(e.task, e.model)}__training.png")
    labels = list((e.card or {}).get("labels") or [])
    preds = mdir / "predictions.parquet"
    if e.kind == "single" and preds.exists() and labels:
        attempt("confusion matrix (test split)", lambda: figures.confusion_matrix_figure(
            pd.read_parquet(preds), labels, title, fig_dir / f"{_slug(e.task, e.model)}__confusion.png"))
    auc = _read_json(mdir / "per_class_auc.json")
    if e.kind == "multilabel" and auc:
        attempt("per-class ROC-AUC (test split)", figures.per_class_auc_figure, auc, title,
                fig_dir / f"{_slug(e.task, e.model)}__per_class_auc.png")
    if not e.card:
        return
    harmonic, attention = _needs_model(e.card)
    if not (harmonic or attention):
        return
    try:
        from pipeline.checkpoint import load_model

        model, _ = load_model(e.model_dir)
    except Exception as exc:  # noqa: BLE001 - UserError for a bad checkpoint
        e.notes.append(f"model could not be loaded for figures ({exc})")
        return
    if harmonic:
        attempt("learned harmonic filterbank", figures.harmonic_filterbank_figure, model, title,
                fig_dir / f"{_slug(e.task, e.model)}__filterbank.png")
    if attention:
        clip = _test_clip(layout, e.task)
        if clip is None:
            e.notes.append("attention figure needs data/segments/<task> (not run)")
        else:
            wave, truth, clip_id = clip
            attempt(f"self-attention on test clip {clip_id}", figures.attention_figure, model, wave, labels, title,
                    fig_dir / f"{_slug(e.task, e.model)}__attention.png", true_labels=truth)


# ----------------------------------------------------------------------------- tables
def _robustness_tables(entries: list[Entry], task: str, fig_dir: Path) -> tuple[pd.DataFrame | None, Path | None, str]:
    """(relative-degradation pivot, task curve PNG, metric) for one task, or Nones."""
    tables = [e.robustness for e in entries if e.task == task and e.robustness is not None and len(e.robustness)]
    if not tables:
        return None, None, ""
    from pipeline.robustness.stage import plot_task_curves, robustness_summary

    table = pd.concat(tables, ignore_index=True)
    metrics = list(dict.fromkeys(table["metric"]))
    metric = next((m for m in ("roc_auc", "accuracy") if m in metrics), metrics[0])
    png = None
    try:
        png = plot_task_curves(table, task, fig_dir / f"{_slug(task)}__robustness.png", metric=metric)
    except Exception as exc:  # noqa: BLE001
        log.warning("robustness curves for %s failed: %s", task, exc)
    summary = robustness_summary(tables)
    summary = summary[summary["metric"] == metric]
    if summary.empty:
        return None, png, metric
    summary = summary.assign(point=[f"{p} {u} {lv:g}".replace("  ", " ") for p, u, lv in
                                    zip(summary["perturbation"], summary["unit"].fillna(""), summary["level"])])
    pivot = summary.pivot_table(index="model", columns="point", values="relative_degradation", aggfunc="mean", sort=False)
    clean = summary.groupby("model", sort=False)["clean"].mean()
    pivot.insert(0, f"clean {metric}", clean)
    return pivot, png, metric


def comparison_rows(entries: list[Entry], task: str) -> tuple[list[str], list[list[str]]]:
    """Header and formatted rows of one task's comparison table."""
    sub = [e for e in entries if e.task == task]
    kind = next((e.kind for e in sub if e.kind), None) or ("single" if "keyword" in task else "multilabel")
    metric_cols = METRICS.get(kind, METRICS["multilabel"])
    header = ["model", "status", *[label for _, label in metric_cols], "params", "train time", "s / epoch",
              "eval clips/s", "best epoch", "robustness", "registry"]
    rows = []
    several = len({e.seed for e in sub}) > 1
    for e in sub:
        label = f"{e.model} (seed {e.seed})" if several else e.model
        if not e.trained:
            rows.append([label, NOT_RUN, *[NOT_RUN] * len(metric_cols), NOT_RUN, NOT_RUN, NOT_RUN, NOT_RUN, NOT_RUN,
                         NOT_RUN, "-"])
            continue
        meta = e.card.get("metadata", {})
        secs = meta.get("train_seconds")
        epochs = len(e.history) if e.history is not None else None
        n_clips, eval_s = e.metric("test/n_clips"), e.metric("test/seconds")
        throughput = (float(n_clips) / float(eval_s)) if n_clips and eval_s else None
        rows.append([
            label, e.status, *[_fmt(e.metric(k)) for k, _ in metric_cols], _fmt(e.n_params),
            f"{float(secs):.1f} s" if secs is not None else "n/a",
            f"{float(secs) / epochs:.2f}" if secs is not None and epochs else "n/a",
            _fmt(throughput, 1) if e.evaluated else NOT_RUN, _fmt(meta.get("best_epoch")),
            "yes" if e.robustness is not None else NOT_RUN, e.registry_uri or "-",
        ])
    return header, rows


def results_frame(entries: list[Entry]) -> pd.DataFrame:
    """``reports/results.csv``: one row per (task, model), raw numbers (NaN/empty when not run)."""
    rows = []
    for e in entries:
        meta = (e.card or {}).get("metadata", {})
        tags = e.run.get("tags", {})
        row: dict[str, Any] = {"task": e.task, "model": e.model, "seed": e.seed, "synthetic": is_synthetic(e.task), "status": e.status,
                               "kind": e.kind or "", "variant": (e.card or {}).get("config", {}).get("variant", "")}
        for key in sorted({k for ks in METRICS.values() for k, _ in ks} | {"test/loss", "test/n_clips", "test/seconds"}):
            v = e.metric(key) if e.trained else None
            row[key] = float(v) if v is not None else math.nan
        row.update({
            "params": e.n_params if e.n_params is not None else math.nan,
            "train_seconds": meta.get("train_seconds", math.nan), "epochs": len(e.history) if e.history is not None else math.nan,
            "best_epoch": meta.get("best_epoch", math.nan), "best_val_loss": meta.get("best_val_loss", math.nan),
            "device": meta.get("device", tags.get("device", "")), "git_commit": tags.get("git_commit", ""),
            "torch": tags.get("torch", ""), "mlflow_run_id": e.run_id or "", "registry_uri": e.registry_uri or "",
            "robustness": e.robustness is not None,
        })
        if e.robustness is not None and len(e.robustness):
            from pipeline.robustness.stage import robustness_summary

            s = robustness_summary([e.robustness])
            kind = e.kind or "multilabel"
            s = s[s["metric"] == PRIMARY.get(kind, "roc_auc")]
            for r in s.itertuples(index=False):
                row[f"robust/{r.perturbation}/{r.unit}_{r.level:g}/relative_degradation"] = r.relative_degradation
        rows.append(row)
    return pd.DataFrame(rows)


def coverage_rows(params: "Params", layout: Layout) -> tuple[list[str], list[list[str]]]:
    header = ["task", "data", "kind", "classes", "clips present / expected", "coverage", "skipped", "missing",
              "train / val / test", "hours of audio"]
    rows = []
    for task in params.grid.tasks:
        meta = _read_json(layout.segments(task) / "meta.json")
        origin = "synthetic (generated)" if is_synthetic(task) else "real"
        if meta is None:
            rows.append([task, origin, NOT_RUN, NOT_RUN, NOT_RUN, NOT_RUN, NOT_RUN, NOT_RUN, NOT_RUN, NOT_RUN])
            continue
        cov = meta.get("coverage", {})
        split = cov.get("per_split", {})
        frac = cov.get("fraction")
        rows.append([task, origin, str(meta.get("kind", "")), str(len(meta.get("labels", []))),
                     f"{cov.get('present', '?')} / {cov.get('expected', '?')}",
                     f"{100 * float(frac):.1f} %" if frac is not None and frac == frac else "n/a",
                     _fmt(cov.get("skipped")), _fmt(cov.get("missing")),
                     " / ".join(str(split.get(s, 0)) for s in ("train", "val", "test")),
                     f"{float(meta.get('total_seconds', 0)) / 3600:.3f}"])
    return header, rows


def provenance_rows(entries: list[Entry]) -> tuple[list[str], list[list[str]]]:
    header = ["task", "model", "seed", "device", "git commit", "python", "torch", "torchaudio", "cuda / gpu", "profile", "MLflow run"]
    rows = []
    for e in entries:
        if not e.trained:
            continue
        meta, tags = e.card.get("metadata", {}), e.run.get("tags", {})
        rows.append([e.task, e.model, str(e.seed), str(meta.get("device", tags.get("device", "?"))), str(tags.get("git_commit", "?"))[:12],
                     tags.get("python", "?"), tags.get("torch", "?"), tags.get("torchaudio", "?"),
                     tags.get("gpu", tags.get("cuda", "?")), tags.get("profile", "?"), (e.run_id or "?")[:12]])
    return header, rows


def environment() -> dict[str, str]:
    """Versions and device of the process building the report."""
    from importlib import metadata

    import torch

    from pipeline import __version__
    from pipeline.tracking import git_commit

    env = {"musicrep": __version__, "python": platform.python_version(), "platform": platform.platform(),
           "cpu cores": str(os.cpu_count()), "git commit": git_commit(),
           "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"}
    for pkg in ("torch", "torchaudio", "numpy", "pandas", "scikit-learn", "mlflow", "matplotlib", "soundfile"):
        try:
            env[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            env[pkg] = "not installed"
    return env


# ----------------------------------------------------------------------------- rendering
def _md_table(header: list[str], rows: list[list[str]]) -> str:
    def cell(x: Any) -> str:
        return str(x).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(
        f"<td class=\"{'nr' if str(c) == NOT_RUN else ''}\">{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _pivot_rows(pivot: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    header = ["model", *[str(c) for c in pivot.columns]]
    rows = []
    for model, r in pivot.iterrows():
        cells = [str(model)]
        for i, v in enumerate(r):
            if i == 0:
                cells.append(_fmt(v))
            else:
                cells.append("n/a" if v != v else f"{100 * float(v):+.1f} %")
        rows.append(cells)
    return header, rows


CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1200px;padding:0 1em;color:#222;line-height:1.45}
h1{border-bottom:2px solid #ddd;padding-bottom:.3em}h2{margin-top:2em;border-bottom:1px solid #eee}
table{border-collapse:collapse;margin:1em 0;font-size:.9em}th,td{border:1px solid #ccc;padding:.3em .6em;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}td.nr{color:#999;font-style:italic}
.banner{background:#fff4d6;border:1px solid #e8c768;padding:.7em 1em;border-radius:4px}
figure{margin:1.2em 0}figure img{max-width:100%;border:1px solid #eee}figcaption{font-size:.9em;color:#555}
code{background:#f5f5f5;padding:0 .2em}.note{color:#a33;font-size:.9em}
"""


class _Doc:
    """Builds the Markdown and HTML versions side by side."""

    def __init__(self, out_dir: Path) -> None:
        self.md: list[str] = []
        self.html: list[str] = []
        self.out_dir = out_dir
        self.images: list[Path] = []

    def heading(self, text: str, level: int = 2) -> None:
        self.md.append(f"{'#' * level} {text}\n")
        anchor = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
        self.html.append(f"<h{level} id=\"{anchor}\">{html.escape(text)}</h{level}>")

    def para(self, text: str, css: str | None = None) -> None:
        self.md.append(f"{text}\n")
        cls = f" class=\"{css}\"" if css else ""
        body = html.escape(text)
        body = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", body)
        body = re.sub(r"`(.+?)`", r"<code>\1</code>", body)
        self.html.append(f"<p{cls}>{body}</p>")

    def table(self, header: list[str], rows: list[list[str]]) -> None:
        self.md.append(_md_table(header, rows) + "\n")
        self.html.append(_html_table(header, rows))

    def figure(self, png: Path, caption: str) -> None:
        rel = png.relative_to(self.out_dir).as_posix()
        self.images.append(png)
        self.md.append(f"![{caption}]({rel})\n\n*{caption}*\n")
        data = base64.b64encode(png.read_bytes()).decode("ascii")
        self.html.append(f"<figure><img alt=\"{html.escape(caption)}\" src=\"data:image/png;base64,{data}\">"
                         f"<figcaption>{html.escape(caption)} (<code>{html.escape(rel)}</code>)</figcaption></figure>")

    def render_html(self, title: str) -> str:
        return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{html.escape(title)}</title>"
                f"<style>{CSS}</style></head><body>\n" + "\n".join(self.html) + "\n</body></html>\n")


# ----------------------------------------------------------------------------- the stage
def _register(entries: list[Entry], client: Any) -> None:
    from pipeline.registry import register_model

    if client is None:
        return
    for e in entries:
        if not e.trained:
            continue
        try:
            name, version = register_model(e.model_dir, client=client)
            e.registry_uri = f"models:/{name}/{version}"
        except Exception as exc:  # noqa: BLE001 - registry down or bad checkpoint: report it, go on
            log.warning("could not register %s: %s", e.model_dir, exc)
            e.notes.append(f"not registered ({exc})")


def _log_figures(entries: list[Entry]) -> None:
    from pipeline.tracking import log_to_run

    for e in entries:
        if e.run_id and e.figures:
            try:
                log_to_run(e.run_id, {}, [p for _, p in e.figures], "figures")
            except Exception as exc:  # noqa: BLE001
                log.warning("could not log figures of %s/%s to MLflow: %s", e.task, e.model, exc)


def _write_evidence_files(ev: dict[str, dict[str, Any]], out_dir: Path) -> None:
    """``evidence.csv`` (accuracy with intervals), ``robustness_evidence.csv``, ``harmonic_differences.csv``."""
    for name, key in (("evidence.csv", "accuracy"), ("robustness_evidence.csv", "robustness"),
                      ("harmonic_differences.csv", "differences")):
        frames = [t.assign(task=task) for task, t in ev[key].items() if t is not None and not t.empty]
        if frames:
            df = pd.concat(frames, ignore_index=True)
            df[["task", *[c for c in df.columns if c != "task"]]].to_csv(out_dir / name, index=False)
    (out_dir / "harmonic_robustness.txt").write_text("\n".join(ev["statements"].values()) + "\n")


def _swap_in(tmp_dir: Path, out_dir: Path) -> None:
    """Replace ``out_dir`` by ``tmp_dir`` (renames on one filesystem)."""
    old = None
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}-{int(time.time())}")
        out_dir.rename(old)
    tmp_dir.rename(out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def build_report(params: "Params", layout: Layout = Layout(), *, register: bool = True, log_figures: bool = True) -> Path:
    """Build ``reports/`` (``params.report.out_dir``) for the grid of ``params``.

    Args:
        params: validated params (``grid``, ``report``, ``profile``).
        layout: project layout.
        register: register every trained model in the MLflow model registry (idempotent).
        log_figures: log each model's figures into its MLflow run (``figures/``).

    Returns:
        Path of ``index.html`` (``index.md``, ``results.csv`` and ``figures/`` beside it).
    """
    t0 = time.time()
    out_dir = layout.root / params.report.out_dir
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    from pipeline.io_utils import make_temp_dir

    tmp_dir = make_temp_dir(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent)
    try:
        fig_dir = tmp_dir / "figures"
        fig_dir.mkdir()
        client = _client()
        entries = collect(params, layout, client)
        if register:
            _register(entries, client)
        first_seed = params.grid.seeds[0]
        for e in entries:
            if e.trained and e.seed == first_seed:  # figures of the first seed; tables cover all seeds
                make_figures(e, layout, fig_dir)
        evidence = _evidence(params, layout)
        doc = _write(params, layout, entries, tmp_dir, fig_dir, evidence)
        _write_evidence_files(evidence, tmp_dir)
        results_frame(entries).to_csv(tmp_dir / "results.csv", index=False)
        (tmp_dir / "index.md").write_text("\n".join(doc.md))
        (tmp_dir / "index.html").write_text(doc.render_html("musicrep report"))
        _swap_in(tmp_dir, out_dir)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    if log_figures:
        for e in entries:  # the figures now live under out_dir
            e.figures = [(c, out_dir / p.relative_to(tmp_dir)) for c, p in e.figures]
        _log_figures(entries)
    n_trained = sum(e.trained for e in entries)
    log.info("report: %d of %d grid cells trained, %d figures -> %s (%.1f s)", n_trained, len(entries),
             sum(len(e.figures) for e in entries), out_dir, time.time() - t0)
    return out_dir / "index.html"


def _evidence(params: "Params", layout: Layout) -> dict[str, dict[str, Any]]:
    """Per task: the accuracy table with intervals, the robustness table and the harmonic statement."""
    from pipeline.evidence import accuracy_table, harmonic_statement, robustness_table

    out: dict[str, dict[str, Any]] = {"accuracy": {}, "robustness": {}, "statements": {}, "differences": {}}
    for task in params.grid.tasks:
        out["accuracy"][task] = accuracy_table(params, layout, task)
        table, rs, models = robustness_table(params, layout, task)
        out["robustness"][task] = table
        out["differences"][task], out["statements"][task] = harmonic_statement(params, table, rs, models, task)
    return out


def _cross_rows(params: "Params", layout: Layout) -> tuple[list[str], list[list[str]]]:
    """One row per (trained on, model, seed, evaluated on) found under ``metrics/*/*/seed*/cross/``."""
    header = ["trained on", "model", "seed", "evaluated on", "metric", "value", "clips", "labels shared"]
    rows = []
    from pipeline.dag import cell_keys

    for task, model, seed in cell_keys(params):
        for path in sorted((layout.metrics(task, model, seed) / "cross").glob("*/eval.json")):
            data = _read_json(path) or {}
            other = path.parent.name
            metric = next((m for m in ("accuracy", "roc_auc") if f"cross/{other}/{m}" in data), None)
            if metric is None:
                continue
            rows.append([task, model, str(seed), other, metric, _fmt(data[f"cross/{other}/{metric}"]),
                         _fmt(data.get(f"cross/{other}/n_clips")), _fmt(data.get(f"cross/{other}/n_labels_shared"))])
    return header, rows


def _ci(v: float, lo: float, hi: float, digits: int = 3, pct: bool = False) -> str:
    if v != v:
        return "n/a"
    if pct:
        return f"{100 * v:+.1f} % [{100 * lo:+.1f}, {100 * hi:+.1f}]"
    return f"{v:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def _accuracy_rows(table: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    metric = str(table["metric"].iloc[0])
    header = ["model", "seeds", f"{metric} mean +- std over seeds", f"{metric} [95 % CI over clips]",
              f"difference to {table['best'].iloc[0]} [95 % CI, paired]"]
    rows = []
    for r in table.sort_values("value", ascending=False).itertuples(index=False):
        spread = f"{r.seed_mean:.3f} +- {r.seed_std:.3f}" if r.seed_std == r.seed_std else f"{r.seed_mean:.3f} (1 seed)"
        diff = "best" if r.model == r.best else _ci(r.diff_to_best, r.diff_low, r.diff_high)
        rows.append([r.model, str(r.n_seeds), spread, _ci(r.value, r.ci_low, r.ci_high), diff])
    return header, rows


def _robustness_rows(table: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    header = ["model", "clean [95 % CI]", "under noise [95 % CI]", "absolute drop [95 % CI]", "relative drop [95 % CI]"]
    rows = [[r.model, _ci(r.clean, r.clean_low, r.clean_high), _ci(r.perturbed, r.perturbed_low, r.perturbed_high),
             _ci(r.drop, r.drop_low, r.drop_high), _ci(r.relative_drop, r.relative_drop_low, r.relative_drop_high, pct=True)]
            for r in table.sort_values("drop").itertuples(index=False)]
    return header, rows


def _write(params: "Params", layout: Layout, entries: list[Entry], out_dir: Path, fig_dir: Path,
           evidence: dict[str, dict[str, Any]]) -> _Doc:
    doc = _Doc(out_dir)
    doc.heading("musicrep report", 1)
    synthetic = [t for t in params.grid.tasks if is_synthetic(t)]
    n_trained = sum(e.trained for e in entries)
    doc.para(f"Profile **{params.profile}**, seed {params.seed}; grid: {len(params.grid.tasks)} tasks x "
             f"{len(params.grid.models)} models ({n_trained} of {len(entries)} trained). Generated "
             f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}. Files: `index.md`, `index.html`, `results.csv`, `figures/`.")
    if synthetic:
        doc.para(f"**Synthetic data.** {', '.join(synthetic)} {'is' if len(synthetic) == 1 else 'are'} generated "
                 "(embedded synthetic datasets). Their numbers check that the pipeline works end to end; they are not "
                 "results about the architectures and are not comparable with the paper.", css="banner")
    doc.para("Cells read `not run` where the stage that produces the number has not run yet "
             "(`dvc repro` or `musicrep flow` fills them).")

    doc.heading("Comparison (clean test split)")
    for task in params.grid.tasks:
        doc.heading(f"{task}{' (synthetic)' if is_synthetic(task) else ''}", 3)
        header, rows = comparison_rows(entries, task)
        doc.table(header, rows)
    doc.para("Metrics: macro ROC-AUC / PR-AUC over classes, F1 at the evaluation threshold (multi-label); accuracy "
             "(single-label); each clip is scored as the mean of its chunk scores. `params`: trainable parameters. "
             "`eval clips/s`: test clips per second of the evaluate stage. `registry`: load with "
             "`musicrep predict FILE --model <uri>`.")

    doc.heading("Uncertainty: seeds, test clips, paired differences")
    for task in params.grid.tasks:
        table = evidence["accuracy"].get(task)
        if table is None or table.empty:
            continue
        doc.heading(f"{task}{' (synthetic)' if is_synthetic(task) else ''}", 3)
        doc.table(*_accuracy_rows(table))
    doc.para(f"Mean +- std over the training seeds {params.grid.seeds}; the 95 % interval is a bootstrap over test "
             "clips of the seed-averaged model (each seed scored on the same resample, then averaged). The difference "
             "to the best model is paired: same clips, same resamples, same seeds; an interval that excludes 0 means "
             "the data separate the two models.")

    cross = _cross_rows(params, layout)
    if cross[1]:
        doc.heading("Cross-dataset evaluation")
        doc.table(*cross)
        doc.para("`musicrep evaluate TASK MODEL --on OTHER`: the model trained on TASK scored on the test split of "
                 "OTHER (labels matched by name or a label map; multi-label metrics over the shared labels).")

    doc.heading("Robustness")
    for task in params.grid.tasks:
        table = evidence["robustness"].get(task)
        if table is None or table.empty:
            continue
        doc.heading(f"{task}: degradation under noise{' (synthetic)' if is_synthetic(task) else ''}", 3)
        doc.table(*_robustness_rows(table))
        doc.para(f"**Harmonic front-end.** {evidence['statements'][task]}")
    doc.para("Absolute drop = clean metric - mean metric over every noise point (white and background noise at each "
             "SNR of `robustness.grid`), relative drop = drop / clean, for the seed-averaged model, with 95 % paired "
             "bootstrap intervals over the test clips (clean and noisy scores of the same clips). Models near chance "
             "have little to lose, so read the absolute drop together with the clean score.")
    any_rob = False
    for task in params.grid.tasks:
        pivot, png, metric = _robustness_tables(entries, task, fig_dir)
        if pivot is None and png is None:
            continue
        any_rob = True
        doc.heading(f"{task}{' (synthetic)' if is_synthetic(task) else ''}", 3)
        if png is not None:
            doc.figure(Path(png), f"{task}: {metric} under perturbations, all models")
        if pivot is not None:
            header, rows = _pivot_rows(pivot)
            doc.table(header, rows)
            doc.para(f"Relative degradation 1 - perturbed/clean of the test {metric} (positive = worse), "
                     "per perturbation and level (SNR in dB).")
    if not any_rob:
        doc.para(f"Robustness: {NOT_RUN} (no `metrics/<task>/<model>/robustness.parquet` yet).")

    doc.heading("Figures")
    for e in entries:
        if not e.figures and not e.notes:
            continue
        doc.heading(f"{e.task} / {e.model}{' (synthetic)' if is_synthetic(e.task) else ''}", 3)
        for caption, png in e.figures:
            doc.figure(png, f"{e.task} / {e.model}: {caption}")
        for note in e.notes:
            doc.para(f"Note: {note}", css="note")

    doc.heading("Data behind the numbers")
    header, rows = coverage_rows(params, layout)
    doc.table(header, rows)
    doc.para("Coverage: clips segmented over clips the publisher lists (`data/segments/<task>/meta.json`); "
             "skipped = unreadable/silent/too short inputs, missing = listed but absent.")

    doc.heading("Environment behind the numbers")
    header, rows = provenance_rows(entries)
    if rows:
        doc.table(header, rows)
        doc.para("Per training run: from the model card (`models/<task>/<model>/model.json`) and the MLflow run's tags.")
    else:
        doc.para(f"Training: {NOT_RUN}.")
    env = environment()
    doc.table(["report built with", "version"], [[k, v] for k, v in env.items()])
    return doc


__all__ = ["build_report", "collect", "results_frame", "is_synthetic", "Entry"]
