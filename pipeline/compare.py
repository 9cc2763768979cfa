"""``musicrep compare``: MLflow runs as a task x model x metrics table."""

from __future__ import annotations

import pandas as pd

from pipeline.tracking import runs_table

MAIN_METRICS = ["test/roc_auc", "test/pr_auc", "test/f1_sample", "test/accuracy", "test/loss", "best/epoch"]


def compare_table(tasks: list[str] | None = None, robustness: bool = False) -> pd.DataFrame:
    """Columns ``task``, ``model``, then one per metric named as logged (``test/roc_auc``...)."""
    df = runs_table(tasks)
    if df.empty:
        return df
    metric_cols = [c for c in MAIN_METRICS if c in df.columns]
    if robustness:
        metric_cols += sorted(c for c in df.columns if c.startswith("robust/"))
    extra = [c for c in ("params",) if c in df.columns]
    return df[["task", "model", *metric_cols, *extra]]


def render(df: pd.DataFrame) -> None:
    """Print the table with rich (one table per task when there are many columns)."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if df.empty:
        console.print("no runs yet: run `dvc repro` or `musicrep flow` first")
        return
    for task, sub in df.groupby("task", sort=True):
        cols = [c for c in sub.columns if c not in ("task",) and sub[c].notna().any()]
        table = Table(title=f"{task}")
        for c in cols:
            table.add_column(c, justify="left" if c == "model" else "right")
        for _, row in sub.iterrows():
            table.add_row(*(f"{row[c]:.4f}" if isinstance(row[c], float) else str(row[c]) for c in cols))
        console.print(table)
