"""``musicrep compare``: MLflow runs as a task x model x metrics table, over seeds with intervals."""

from __future__ import annotations

import json
import logging
import numbers
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from rich.console import Console
from rich.table import Table

from pipeline.core.choices import TABLE_FORMATS as FORMATS
from pipeline.core.errors import UserError
from pipeline.evaluation.evidence import accuracy_table
from pipeline.evaluation.metrics import TASK_PRIMARY_METRIC
from pipeline.evaluation.references import references_for
from pipeline.models.grid import grid_models
from pipeline.tracking.runs import runs_table

if TYPE_CHECKING:
    from pipeline.config.params import Params
    from pipeline.core.paths import Layout

log = logging.getLogger(__name__)

MAIN_METRICS = ["test/roc_auc", "test/pr_auc", "test/f1_sample", "test/accuracy", "test/loss", "best/epoch"]


def compare_table(
    root: Path,
    tasks: list[str] | None = None,
    robustness: bool = False,
    per_seed: bool = False,
    evidence: tuple[Params, Layout] | None = None,
) -> pd.DataFrame:
    """The runs of the project at ``root`` as a table, one row per (task, model) over its seeds (or per seed).

    Columns ``task``, ``model``, ``n_seeds``, then per metric (named as logged:
    ``test/roc_auc``, ``cross/<dataset>/accuracy``...) the mean over seeds and ``<metric> std``.
    With ``evidence=(params, layout)`` and the cells' predictions on disk, the primary metric
    of the seed-averaged model gets its 95 % bootstrap interval over test clips, named after the
    metric (``roc_auc_ci_low``, ``accuracy_ci_high``) from :func:`pipeline.evaluation.evidence.accuracy_table`.
    With ``per_seed`` the rows are the runs themselves (column ``seed``). Runs that did not
    finish (``RUNNING``, ``FAILED``, ``KILLED``) are left out, named in one warning.
    """
    df = _finished(runs_table(root, tasks))
    if df.empty:
        return df
    metric_cols = [c for c in MAIN_METRICS if c in df.columns]
    metric_cols += sorted(c for c in df.columns if c.startswith("cross/"))
    if robustness:
        metric_cols += sorted(c for c in df.columns if c.startswith("robust/"))
    extra = [c for c in ("params",) if c in df.columns]
    if per_seed:
        return df[["task", "model", "seed", *metric_cols, *extra]]
    groups = df.groupby(["task", "model"], sort=False)
    out = groups.size().rename("n_seeds").reset_index()
    for col in metric_cols:
        values = pd.to_numeric(df[col], errors="coerce")
        out[col] = values.groupby([df["task"], df["model"]], sort=False).mean().to_numpy()
        out[f"{col} std"] = values.groupby([df["task"], df["model"]], sort=False).std(ddof=1).to_numpy()
    for col in extra:
        out[col] = groups[col].first().to_numpy()
    out = out.dropna(axis=1, how="all")
    if evidence is not None:
        out = _with_intervals(out, *evidence)
    return with_references(out)


def with_references(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` plus the published rows of its tasks (:mod:`pipeline.evaluation.references`; only ``mtat`` has them).

    When any are added, a ``source`` column tells them apart: ``ours`` for the runs,
    ``paper (SMC20, recalled, unverified)`` or ``paper (SMC20, confirmed)`` for the paper's rows.
    """

    refs = [
        {"task": task, "model": r.model, "source": r.source, "test/roc_auc": r.roc_auc, "test/pr_auc": r.pr_auc}
        for task in (df["task"].unique() if "task" in df.columns else [])
        for r in references_for(str(task))
    ]
    if not refs:
        return df
    ours = df.assign(source="ours")
    cols = [c for c in ours.columns if c not in ("task", "model", "source")]
    out = pd.concat([ours, pd.DataFrame(refs)], ignore_index=True)[["task", "model", "source", *cols]]
    if "n_seeds" in out.columns:  # whole numbers for ours, empty for the paper's (not 2.0000 and NaN)
        out["n_seeds"] = pd.Series([None if v != v else int(v) for v in out["n_seeds"]], dtype=object)
    return out


def _finished(df: pd.DataFrame) -> pd.DataFrame:
    """The runs that finished; the others (still training, interrupted, failed) are left out with one warning."""
    if df.empty or "status" not in df.columns:
        return df
    unfinished = df[df["status"] != "FINISHED"]
    if len(unfinished):
        named = ", ".join(f"{r.task}/{r.model} seed{r.seed} ({r.status})" for r in unfinished.head(5).itertuples())
        more = f" and {len(unfinished) - 5} more" if len(unfinished) > 5 else ""
        log.warning(
            "compare leaves out %d unfinished run%s: %s%s (still training, interrupted or failed: run the cell again to finish it)",
            len(unfinished),
            "s" if len(unfinished) > 1 else "",
            named,
            more,
        )
    return df[df["status"] == "FINISHED"].reset_index(drop=True)


def _with_intervals(df: pd.DataFrame, params: Params, layout: Layout) -> pd.DataFrame:
    grid = [(m, s) for m in grid_models(params) for s in params.grid.seeds]
    tasks = [t for t in df["task"].unique() if any((layout.metrics(t, m, s) / "predictions.parquet").exists() for m, s in grid)]
    if not tasks:  # no cell's predictions here (runs of another project): nothing to bootstrap
        return df

    rows = []
    for task in tasks:
        try:
            table = accuracy_table(params, layout, task)
        except Exception:  # noqa: BLE001 - a task of another project, or no predictions here
            continue
        if not table.empty:  # the interval columns say whose interval they are: roc_auc_ci_low, accuracy_ci_high
            metric = str(table["metric"].iloc[0])
            named = {"ci_low": f"{metric}_ci_low", "ci_high": f"{metric}_ci_high"}
            rows.append(table.assign(task=task)[["task", "model", "ci_low", "ci_high"]].rename(columns=named))
    if not rows:
        return df
    return df.merge(pd.concat(rows), on=["task", "model"], how="left")


ID_COLUMNS = ("task", "model", "source", "on", "dataset", "seed", "seeds", "n_seeds", "noise_source", "perturbation")
NO_RUNS = "no runs yet: run `dvc repro` or `musicrep flow` first"


def id_columns(df: pd.DataFrame) -> list[str]:
    """The columns that name a row (task, model, ...); every other column is a value."""
    return [c for c in ID_COLUMNS if c in df.columns]


def to_long(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (task, model, ..., metric): columns ``<id columns>, metric, value``; empty cells dropped."""
    ids = id_columns(df)
    if df.empty:
        return pd.DataFrame(columns=[*ids, "metric", "value"])
    long = df.melt(id_vars=ids, var_name="metric", value_name="value")
    long = long[long["value"].notna() & (long["value"].astype(str) != "")]
    order = {c: i for i, c in enumerate(df.columns)}
    long = long.assign(_order=long["metric"].map(order)).sort_values([*ids, "_order"], kind="stable").drop(columns="_order")
    return long.reset_index(drop=True)


def _cell(value: object, digits: int) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _numeric(col: pd.Series) -> bool:
    """Right-align a column whose values are all numbers (also in the long format's mixed ``value``)."""

    if pd.api.types.is_numeric_dtype(col):
        return True
    values = col.dropna()
    return len(values) > 0 and all(isinstance(v, numbers.Number) and not isinstance(v, bool) for v in values)


def _sections(df: pd.DataFrame, long: bool) -> list[tuple[str | None, pd.DataFrame]]:
    """Wide tables split per task (their metric columns differ); long tables stay whole."""
    if long or "task" not in df.columns:
        return [(None, df)]
    out = []
    for task, sub in df.groupby("task", sort=True):
        cols = _primary_first(str(task), [c for c in sub.columns if c != "task" and sub[c].notna().any()])
        out.append((str(task), sub[cols]))
    return out


def _primary_first(task: str, cols: list[str]) -> list[str]:
    """A task ranked by another metric than ROC-AUC/accuracy (DCASE: ``f1_sample``) shows it first, with its std and interval."""

    metric = TASK_PRIMARY_METRIC.get(task)
    if metric is None:
        return cols
    lead = [c for c in cols if c.removeprefix("test/").startswith(metric)]
    ids = [c for c in cols if c in ID_COLUMNS]
    return ids + lead + [c for c in cols if c not in lead and c not in ids]


def _plain(df: pd.DataFrame, digits: int) -> str:
    """Fixed-width text: every column as wide as its widest value (nothing cut)."""
    cols = list(df.columns)
    cells = [[_cell(v, digits) for v in row] for row in df.itertuples(index=False)]
    widths = [max([len(str(c))] + [len(r[i]) for r in cells]) for i, c in enumerate(cols)]
    numeric = [_numeric(df[c]) for c in cols]

    def line(values: list[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)).rstrip()

    return "\n".join([line([str(c) for c in cols]), line(["-" * w for w in widths]), *(line(r) for r in cells)])


def _markdown(df: pd.DataFrame, digits: int) -> str:
    cols = list(df.columns)

    def esc(v: str) -> str:
        return v.replace("|", "\\|")

    numeric = [_numeric(df[c]) for c in cols]
    rows = ["| " + " | ".join(esc(str(c)) for c in cols) + " |", "|" + "|".join("---:" if n else "---" for n in numeric) + "|"]
    rows += ["| " + " | ".join(esc(_cell(v, digits)) for v in r) + " |" for r in df.itertuples(index=False)]
    return "\n".join(rows)


def format_table(df: pd.DataFrame, fmt: str = "table", long: bool = False, digits: int = 4) -> str:
    """The comparison as text in ``fmt`` (table | csv | json | markdown); values are never cut.

    ``csv`` and ``json`` keep full precision; ``table`` and ``markdown`` round floats to
    ``digits`` decimals. Wide tables (one column per metric) are split per task for table and
    markdown; ``long`` gives one row per metric.
    """
    if fmt not in FORMATS:
        raise UserError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}.")
    data = to_long(df) if long else df
    if fmt == "csv":
        return data.to_csv(index=False)
    if fmt == "json":
        records = [
            {k: (None if isinstance(v, float) and v != v else v) for k, v in r.items()} for r in data.to_dict(orient="records")
        ]
        return json.dumps(records, indent=2, default=str)
    if df.empty:
        return NO_RUNS
    parts = []
    for title, sub in _sections(data, long):
        if fmt == "markdown":
            parts.append((f"### {title}\n\n" if title else "") + _markdown(sub, digits))
        else:
            parts.append((f"{title}\n" if title else "") + _plain(sub, digits))
    return "\n\n".join(parts) + "\n"


def render(df: pd.DataFrame, fmt: str | None = None, long: bool = False, digits: int = 4) -> None:
    """Print the comparison on stdout. ``fmt=None``: a rich table on a terminal, plain text otherwise.

    The rich table is given the width its widest row needs (the terminal wraps long lines),
    so no value is ever shortened to an ellipsis.
    """

    if fmt is None:
        fmt = "rich" if sys.stdout.isatty() else "table"
    if fmt != "rich":
        text = format_table(df, fmt, long, digits)
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return

    console = Console()
    if df.empty:
        console.print(NO_RUNS)
        return
    data = to_long(df) if long else df
    for title, sub in _sections(data, long):
        table = Table(title=title)
        cells = [[_cell(v, digits) for v in row] for row in sub.itertuples(index=False)]
        for i, c in enumerate(sub.columns):
            width = max([len(str(c))] + [len(r[i]) for r in cells])
            table.add_column(
                str(c), justify="right" if _numeric(sub[c]) else "left", min_width=width, no_wrap=True, overflow="fold"
            )
        for r in cells:
            table.add_row(*r)
        need = sum(max([len(str(c))] + [len(r[i]) for r in cells]) + 3 for i, c in enumerate(sub.columns)) + 1
        Console(width=max(console.width, need)).print(table)
