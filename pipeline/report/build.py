"""The ``report`` stage: collect every cell, register the trained models, draw the figures,
compose the document and write ``index.md``, ``index.html``, ``results.csv`` and the evidence
tables into a temporary directory that then replaces ``reports/`` (see :mod:`pipeline.report`).
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from pipeline.models.grid import grid_models
from pipeline.paths import Layout
from pipeline.registry import register_models
from pipeline.report.collect import NOT_RUN, Entry, collect, environment, is_synthetic, mlflow_client, results_frame
from pipeline.report.plots import make_figures, robustness_tables
from pipeline.report.render import Document
from pipeline.report.tables import (
    accuracy_rows,
    comparison_rows,
    coverage_rows,
    cross_rows,
    pivot_rows,
    provenance_rows,
    robustness_rows,
)
from pipeline.tracking import mlflow_errors

if TYPE_CHECKING:
    from pipeline.config import Params

log = logging.getLogger(__name__)


def _log_figures(entries: list[Entry]) -> None:
    from pipeline.tracking import log_to_run

    for e in entries:
        if e.run_id and e.figures:
            try:
                log_to_run(e.run_id, {}, [p for _, p in e.figures], "figures")
            except (*mlflow_errors(), OSError) as exc:
                log.warning("could not log figures of %s/%s to MLflow: %s", e.task, e.model, exc)


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


def _swap_in(tmp_dir: Path, out_dir: Path) -> None:
    """Replace ``out_dir`` by ``tmp_dir`` (renames on one filesystem)."""
    old = None
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}-{int(time.time())}")
        out_dir.rename(old)
    tmp_dir.rename(out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def build_report(params: Params, layout: Layout = Layout(), *, register: bool = True, log_figures: bool = True) -> Path:
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
        client = mlflow_client()
        entries = collect(params, layout, client)
        if register and client is not None:
            registered = register_models([e.model_dir for e in entries if e.trained], client)
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
        doc = _write(params, layout, entries, tmp_dir, fig_dir, evidence)
        _write_evidence_files(evidence, tmp_dir)
        results_frame(entries).to_csv(tmp_dir / "results.csv", index=False)
        (tmp_dir / "index.md").write_text(doc.markdown())
        (tmp_dir / "index.html").write_text(doc.html("musicrep report"))
        _swap_in(tmp_dir, out_dir)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    if log_figures:
        for e in entries:  # the figures now live under out_dir
            e.figures = [(c, out_dir / p.relative_to(tmp_dir)) for c, p in e.figures]
        _log_figures(entries)
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
    from pipeline.evidence import accuracy_table, harmonic_statement, robustness_table

    out: dict[str, dict[str, Any]] = {"accuracy": {}, "robustness": {}, "statements": {}, "differences": {}}
    for task in params.grid.tasks:
        out["accuracy"][task] = accuracy_table(params, layout, task)
        table, rs, models = robustness_table(params, layout, task)
        out["robustness"][task] = table
        out["differences"][task], out["statements"][task] = harmonic_statement(params, table, rs, models, task)
    return out


def _write(
    params: Params, layout: Layout, entries: list[Entry], out_dir: Path, fig_dir: Path, evidence: dict[str, dict[str, Any]]
) -> Document:
    doc = Document(out_dir)
    doc.heading("musicrep report", 1)
    synthetic = [t for t in params.grid.tasks if is_synthetic(t)]
    n_trained = sum(e.trained for e in entries)
    doc.para(
        f"Profile **{params.profile}**, seed {params.seed}; grid: {len(params.grid.tasks)} tasks x "
        f"{len(grid_models(params))} models ({n_trained} of {len(entries)} trained). Generated "
        f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}. Files: `index.md`, `index.html`, `results.csv`, `figures/`."
    )
    if synthetic:
        doc.para(
            f"**Synthetic data.** {', '.join(synthetic)} {'is' if len(synthetic) == 1 else 'are'} generated "
            "(embedded synthetic datasets). Their numbers check that the pipeline works end to end; they are not "
            "results about the architectures and are not comparable with the paper.",
            css="banner",
        )
    doc.para(
        "Cells read `not run` where the stage that produces the number has not run yet "
        "(`dvc repro` or `musicrep flow` fills them)."
    )

    doc.heading("Comparison (clean test split)")
    for task in params.grid.tasks:
        doc.heading(f"{task}{' (synthetic)' if is_synthetic(task) else ''}", 3)
        header, rows = comparison_rows(entries, task)
        doc.table(header, rows)
    doc.para(
        "Metrics: macro ROC-AUC / PR-AUC over classes, F1 at the evaluation threshold (multi-label); accuracy "
        "(single-label); each clip is scored as the mean of its chunk scores. `params`: trainable parameters. "
        "`eval clips/s`: test clips per second of the evaluate stage. `registry`: load with "
        "`musicrep predict FILE --model <uri>`."
    )

    doc.heading("Uncertainty: seeds, test clips, paired differences")
    for task in params.grid.tasks:
        table = evidence["accuracy"].get(task)
        if table is None or table.empty:
            continue
        doc.heading(f"{task}{' (synthetic)' if is_synthetic(task) else ''}", 3)
        doc.table(*accuracy_rows(table))
    doc.para(
        f"Mean +- std over the training seeds {params.grid.seeds}; the 95 % interval is a bootstrap over test "
        "clips of the seed-averaged model (each seed scored on the same resample, then averaged). The difference "
        "to the best model is paired: same clips, same resamples, same seeds; an interval that excludes 0 means "
        "the data separate the two models."
    )

    cross = cross_rows(params, layout)
    if cross[1]:
        doc.heading("Cross-dataset evaluation")
        doc.table(*cross)
        doc.para(
            "`musicrep evaluate TASK MODEL --on OTHER`: the model trained on TASK scored on the test split of "
            "OTHER (labels matched by name or a label map; multi-label metrics over the shared labels)."
        )

    _transfer_section(doc, layout)

    doc.heading("Robustness")
    for task in params.grid.tasks:
        table = evidence["robustness"].get(task)
        if table is None or table.empty:
            continue
        doc.heading(f"{task}: degradation under noise{' (synthetic)' if is_synthetic(task) else ''}", 3)
        doc.table(*robustness_rows(table))
        doc.para(f"**Harmonic front-end.** {evidence['statements'][task]}")
    doc.para(
        "Absolute drop = clean metric - mean metric over every noise point (white and background noise at each "
        "SNR of `robustness.grid`), relative drop = drop / clean, for the seed-averaged model, with 95 % paired "
        "bootstrap intervals over the test clips (clean and noisy scores of the same clips). Models near chance "
        "have little to lose, so read the absolute drop together with the clean score."
    )
    any_rob = False
    for task in params.grid.tasks:
        pivot, png, metric = robustness_tables(entries, task, fig_dir)
        if pivot is None and png is None:
            continue
        any_rob = True
        doc.heading(f"{task}{' (synthetic)' if is_synthetic(task) else ''}", 3)
        if png is not None:
            doc.figure(Path(png), f"{task}: {metric} under perturbations, all models")
        if pivot is not None:
            header, rows = pivot_rows(pivot)
            doc.table(header, rows)
            doc.para(
                f"Relative degradation 1 - perturbed/clean of the test {metric} (positive = worse), "
                "per perturbation and level (SNR in dB)."
            )
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
    doc.para(
        "Coverage: clips segmented over clips the publisher lists (`data/segments/<task>/meta.json`); "
        "skipped = unreadable/silent/too short inputs, missing = listed but absent."
    )

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


def _transfer_section(doc: Document, layout: Layout) -> None:
    """The transfer table of the frozen-embedding probes (``metrics/probes/``), when any ran."""
    from pipeline.probe import TRANSFER_NOTE, transfer_matrix, transfer_table

    grid = transfer_matrix(transfer_table(layout))
    if grid.empty:
        return
    doc.heading("Transfer: frozen-embedding probes")
    doc.table(list(grid.columns), grid.values.tolist())
    doc.para(TRANSFER_NOTE)
