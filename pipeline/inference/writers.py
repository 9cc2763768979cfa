"""What ``predict`` and ``embed`` write: CSV rows, a streamed JSON list, embedding files.

The records come from :func:`pipeline.inference.predict.predict` (one per file, in input order) and the
matrices from :func:`pipeline.inference.predict.embed`; the CLI (:mod:`pipeline.cli.predict`) wires them
together.
"""

from __future__ import annotations

import csv
import json
import math
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import typer

from pipeline.core.errors import UserError
from pipeline.core.io_utils import atomic_path

if TYPE_CHECKING:
    from pipeline.inference.predict import Embeddings, Predictions


def prediction_row(record: dict[str, Any], top_k: int) -> dict[str, Any]:
    """One CSV row: ``path, duration_s, n_chunks, top1_label, top1_score, ..., score:<label>``."""
    row: dict[str, Any] = {"path": record["path"], "duration_s": record["duration_s"], "n_chunks": record["n_chunks"]}
    for i in range(top_k):
        item = record["top"][i] if i < len(record["top"]) else {"label": "", "score": math.nan}
        row[f"top{i + 1}_label"], row[f"top{i + 1}_score"] = item["label"], item["score"]
    row.update({f"score:{k}": v for k, v in record["scores"].items()})
    return row


def predictions_frame(pred: Predictions, top_k: int) -> Any:
    """One row per file: ``path, duration_s, n_chunks, top1_label, top1_score, ...,
    score:<label>`` for every label (a pandas DataFrame)."""

    return pd.DataFrame([prediction_row(r, top_k) for r in pred.records])


class CsvStream:
    """Write :func:`prediction_row` rows to an open text file as they come (pandas' CSV
    layout: header first, NaN as an empty field)."""

    def __init__(self, fh: Any, top_k: int) -> None:
        self.writer = csv.writer(fh, lineterminator="\n")
        self.top_k, self.header, self.n = top_k, None, 0

    def __call__(self, record: dict[str, Any]) -> None:
        row = prediction_row(record, self.top_k)
        if self.header is None:
            self.header = list(row)
            self.writer.writerow(self.header)
        self.writer.writerow(["" if isinstance(v, float) and math.isnan(v) else v for v in row.values()])
        self.n += 1


class JsonListStream:
    """Print records as one JSON list (the layout of ``json.dumps(records, indent=2)``), each
    record as it comes; :meth:`close` ends the list."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self, record: dict[str, Any]) -> None:
        body = textwrap.indent(json.dumps(record, indent=2), "  ")
        typer.echo(("[\n" if not self.n else ",\n") + body, nl=False)
        self.n += 1

    def close(self) -> None:
        typer.echo("\n]" if self.n else "[]")


EMBEDDING_SUFFIXES = (".parquet", ".npy")


def check_embeddings_path(out: str | Path) -> Path:
    """``out`` as a Path, or a :class:`UserError` unless it ends in ``.parquet`` or ``.npy``."""
    out = Path(out)
    if out.suffix.lower() not in EMBEDDING_SUFFIXES:
        raise UserError(f"--out {out} must end in .parquet or .npy.")
    return out


def write_embeddings(emb: Embeddings, out: str | Path) -> list[Path]:
    """Write embeddings to ``.parquet`` or ``.npy`` (+ a sidecar ``.csv`` index); atomic.

    Parquet columns: ``file`` (string), ``chunk`` (int32, -1 for the file's own row),
    ``start_s``, ``end_s`` (float64 seconds), ``embedding`` (``fixed_size_list<float32>[dim]``);
    the schema metadata records the model directory, layer and dimension.
    ``.npy``: a ``(rows, dim)`` float32 matrix; ``<out>.csv`` holds ``row, file, chunk,
    start_s, end_s`` with ``row`` the matrix row.

    Returns:
        The files written.
    """

    out = check_embeddings_path(out)
    suffix = out.suffix.lower()
    out.parent.mkdir(parents=True, exist_ok=True)
    dim = int(emb.matrix.shape[1])
    if suffix == ".parquet":
        values = pa.array(emb.matrix.reshape(-1), type=pa.float32())
        table = pa.table(
            {
                "file": pa.array(emb.index["file"].tolist(), type=pa.string()),
                "chunk": pa.array(emb.index["chunk"].to_numpy(np.int32), type=pa.int32()),
                "start_s": pa.array(emb.index["start_s"].to_numpy(np.float64), type=pa.float64()),
                "end_s": pa.array(emb.index["end_s"].to_numpy(np.float64), type=pa.float64()),
                "embedding": pa.FixedSizeListArray.from_arrays(values, dim),
            }
        )
        table = table.replace_schema_metadata(
            {"musicrep.model": str(emb.model_dir), "musicrep.layer": emb.layer, "musicrep.dim": str(dim)}
        )
        with atomic_path(out) as tmp:
            pq.write_table(table, tmp)
        return [out]
    side = out.with_suffix(".csv")
    with atomic_path(out) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, emb.matrix)
    with atomic_path(side) as tmp:
        emb.index.rename_axis("row").reset_index().to_csv(tmp, index=False)
    return [out, side]
