"""The ``report`` stage: collect every cell, register the trained models, draw the figures,
compose the document and write ``index.md``, ``index.html``, ``results.csv`` and the evidence
tables into a temporary directory that then replaces ``reports/`` (see :mod:`pipeline.report`).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from pipeline.core.io_utils import make_temp_dir
from pipeline.core.paths import REPORT_STAMP, Layout
from pipeline.evaluation.evidence import accuracy_table, harmonic_statement, robustness_table
from pipeline.evaluation.family_summary import family_summary
from pipeline.evaluation.metrics import primary_metric
from pipeline.evaluation.probe import TRANSFER_NOTE, transfer_matrix, transfer_table
from pipeline.models.grid import grid_models
from pipeline.report.champions import crown_champions
from pipeline.report.collect import Entry, collect, data_origin, mlflow_client, results_frame
from pipeline.report.environment import environment_rows
from pipeline.report.plots import make_figures, robustness_tables
from pipeline.report.render import render_report
from pipeline.report.tables import (
    accuracy_rows,
    comparison_rows,
    coverage_rows,
    cross_rows,
    pivot_rows,
    robustness_rows,
    summary_rows,
)
from pipeline.tracking.registry import register_models
from pipeline.tracking.runs import log_to_run, mlflow_errors
from pipeline.tracking.views import set_runs_view
from pipeline.training.convergence import LEGEND

if TYPE_CHECKING:
    from pipeline.config.params import Params

log = logging.getLogger(__name__)


def _log_figures(entries: list[Entry], root: Path) -> None:
    for e in entries:
        if e.run_id and e.figures:
            try:
                log_to_run(e.run_id, {}, [p for _, p in e.figures], "figures", root=root)
            except (*mlflow_errors(), OSError) as exc:
                log.warning("could not log figures of %s/%s to MLflow: %s", e.task, e.model, exc)


def _set_runs_views(entries: list[Entry], client: Any) -> None:
    """Each task's MLflow runs table sorted by its primary metric, with its interval as columns (a shared view)."""
    kinds = {e.task: e.kind for e in entries if e.kind}
    for task, kind in kinds.items():
        try:
            set_runs_view(client, task, primary_metric(kind, task))
        except mlflow_errors() as exc:
            log.warning("could not store the runs view of %s in MLflow: %s", task, exc)


def _write_evidence_files(ev: dict[str, dict[str, Any]], out_dir: Path) -> None:
    """``evidence.csv`` (accuracy with intervals), ``robustness_evidence.csv``, ``harmonic_differences.csv``."""
    for name, key in (
        ("evidence.csv", "accuracy"),
        ("robustness_evidence.csv", "robustness"),
        ("harmonic_differences.csv", "differences"),
    ):
        frames = [t.assign(task=task) for task, t in ev[key].items() if t is not None and not t.empty]
        if frames:
            df = pd.concat(frames, ignore_index=True)
            df[["task", *[c for c in df.columns if c != "task"]]].to_csv(out_dir / name, index=False)
    (out_dir / "harmonic_robustness.txt").write_text("\n".join(ev["statements"].values()) + "\n")


def _write_stamp(entries: list[Entry], path: Path) -> None:
    """:data:`~pipeline.core.paths.REPORT_STAMP`: each cell and its test metrics, nothing run-specific."""

    cells = [{"task": e.task, "model": e.model, "seed": e.seed, "trained": e.trained, "test": e.eval or {}} for e in entries]
    path.write_text(json.dumps({"cells": cells}, indent=1, sort_keys=True) + "\n")


def _swap_in(tmp_dir: Path, out_dir: Path) -> None:
    """Replace ``out_dir`` by ``tmp_dir`` (renames on one filesystem)."""
    old = None
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}-{int(time.time())}")
        out_dir.rename(old)
    tmp_dir.rename(out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def build_report(params: Params, layout: Layout, *, register: bool = True, log_figures: bool = True) -> Path:
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

    tmp_dir = make_temp_dir(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent)
    try:
        fig_dir = tmp_dir / "figures"
        fig_dir.mkdir()
        client = mlflow_client(layout.root)
        entries = collect(params, layout, client)
        if register and client is not None:
            registered = register_models([e.model_dir for e in entries if e.trained], client, layout.root)
            for e in entries:
                result = registered.get(e.model_dir)
                if isinstance(result, str):
                    e.registry_uri = result
                elif result is not None:
                    e.notes.append(f"not registered ({result})")
        first_seed = params.grid.seeds[0]
        for e in entries:
            if e.trained and e.seed == first_seed:  # figures of the first seed; tables cover all seeds
                make_figures(e, layout, fig_dir)
        evidence = _evidence(params, layout)
        evidence["champions"] = crown_champions(evidence["summaries"], entries, client if register else None, layout.root)
        if register and client is not None:
            _set_runs_views(entries, client)
        markdown, html = render_report(report_context(params, layout, entries, tmp_dir, fig_dir, evidence))
        _write_evidence_files(evidence, tmp_dir)
        results_frame(entries).to_csv(tmp_dir / "results.csv", index=False)
        _write_stamp(entries, tmp_dir / REPORT_STAMP)
        (tmp_dir / "index.md").write_text(markdown)
        (tmp_dir / "index.html").write_text(html)
        _swap_in(tmp_dir, out_dir)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    if log_figures:
        for e in entries:  # the figures now live under out_dir
            e.figures = [(c, out_dir / p.relative_to(tmp_dir)) for c, p in e.figures]
        _log_figures(entries, layout.root)
    n_trained = sum(e.trained for e in entries)
    log.info(
        "report: %d of %d grid cells trained, %d figures -> %s (%.1f s)",
        n_trained,
        len(entries),
        sum(len(e.figures) for e in entries),
        out_dir,
        time.time() - t0,
    )
    return out_dir / "index.html"


def _evidence(params: Params, layout: Layout) -> dict[str, dict[str, Any]]:
    """Per task: the accuracy table with intervals, the robustness table and the harmonic statement."""

    out: dict[str, dict[str, Any]] = {"accuracy": {}, "robustness": {}, "statements": {}, "differences": {}, "summaries": {}}
    for task in params.grid.tasks:
        out["summaries"][task] = family_summary(params, layout, task)
        out["accuracy"][task] = accuracy_table(params, layout, task)
        table, rs, models = robustness_table(params, layout, task)
        out["robustness"][task] = table
        out["differences"][task], out["statements"][task] = harmonic_statement(params, table, rs, models, task)
    return out


def _title(task: str, suffix: str = "") -> str:
    """``task`` and ``suffix``, with ``(synthetic)`` or ``(rendered)`` where the audio is not recordings."""
    origin = data_origin(task)
    return f"{task}{suffix}{'' if origin == 'real' else f' ({origin})'}"


def _summary(evidence: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Per task: the front-end families side by side, the harmonic difference under noise, the verdict
    and the registry's champion per family."""
    out = []
    for task, s in evidence["summaries"].items():
        if s is None:
            continue
        d = s.difference
        out.append(
            {
                "title": _title(task),
                "table": _table(*summary_rows(s)),
                "difference": f"{s.compared}: {d.value:+.3f} [{d.low:+.3f}, {d.high:+.3f}]" if d else None,
                "sentence": s.sentence,
                "champions": evidence.get("champions", {}).get(task, []),
            }
        )
    return out


def _table(header: list[str], rows: list[list[str]]) -> dict[str, Any]:
    return {"header": [str(h) for h in header], "rows": [[str(c) for c in r] for r in rows]}


def _figure(path: Path, out_dir: Path, caption: str) -> dict[str, str]:
    return {"rel": path.relative_to(out_dir).as_posix(), "caption": caption}


def report_context(
    params: Params, layout: Layout, entries: list[Entry], out_dir: Path, fig_dir: Path, evidence: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """The data ``templates/report.j2`` lays out: numbers and formatted tables per section, figure
    paths relative to ``out_dir``. The sections' order, headings and prose are the template's."""
    tasks = params.grid.tasks
    robustness = []
    for task in tasks:
        pivot, png, metric = robustness_tables(entries, task, fig_dir)
        if pivot is None and png is None:
            continue
        robustness.append(
            {
                "title": _title(task),
                "figure": _figure(Path(png), out_dir, f"{task}: {metric} under perturbations, all models") if png else None,
                "table": _table(*pivot_rows(pivot)) if pivot is not None else None,
                "metric": metric,
            }
        )
    cross = cross_rows(params, layout)
    environment, deviations = environment_rows(entries)
    return {
        "summary": _summary(evidence),
        "profile": params.profile,
        "seed": params.seed,
        "n_tasks": len(tasks),
        "n_models": len(grid_models(params)),
        "n_trained": sum(e.trained for e in entries),
        "n_cells": len(entries),
        "generated": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "synthetic": [t for t in tasks if data_origin(t) == "synthetic"],
        "rendered": [t for t in tasks if data_origin(t) == "rendered"],
        "seeds": params.grid.seeds,
        "comparison": [{"title": _title(t), "table": _table(*comparison_rows(entries, t))} for t in tasks],
        **_convergence(entries),
        "uncertainty": [
            {"title": _title(t), "table": _table(*accuracy_rows(evidence["accuracy"][t]))}
            for t in tasks
            if evidence["accuracy"].get(t) is not None and not evidence["accuracy"][t].empty
        ],
        "cross": _table(*cross) if cross[1] else None,
        "degradation": [
            {
                "title": _title(t, ": degradation under noise"),
                "table": _table(*robustness_rows(evidence["robustness"][t])),
                "statement": evidence["statements"][t],
            }
            for t in tasks
            if evidence["robustness"].get(t) is not None and not evidence["robustness"][t].empty
        ],
        "robustness": robustness,
        "cells": [
            {
                "title": _title(e.task, f" / {e.model}"),
                "figures": [_figure(png, out_dir, f"{e.task} / {e.model}: {caption}") for caption, png in e.figures],
                "notes": e.notes,
            }
            for e in entries
            if e.figures or e.notes
        ],
        "transfer": _transfer(layout),
        "coverage": _table(*coverage_rows(params, layout)),
        "environment": _table(["environment", "value"], environment),
        "deviations": _table(["cell", "field", "value"], deviations) if deviations else None,
    }


def _convergence(entries: list[Entry]) -> dict[str, Any]:
    """The legend of the comparison tables' still-improving mark and the cells it marks (empty when none)."""

    marked = [f"{e.task}/{e.model} seed {e.seed}" for e in entries if e.trained and e.still_improving]
    return {"convergence_legend": LEGEND if marked else None, "still_improving": marked}


def _transfer(layout: Layout) -> dict[str, Any] | None:
    """The transfer table of the frozen-embedding probes (``metrics/probes/``), or ``None`` when none ran."""

    grid = transfer_matrix(transfer_table(layout))
    if grid.empty:
        return None
    return {"table": _table(list(grid.columns), grid.values.tolist()), "note": TRANSFER_NOTE}
