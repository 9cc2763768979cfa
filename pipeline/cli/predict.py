"""The ``musicrep predict``, ``embed`` and ``register`` commands: options, messages, tables.

The work is in :mod:`pipeline.inference.predict` (models, batching, results) and
:mod:`pipeline.inference.writers` (CSV, JSON, embedding files); this module only wires them to
the command line. :func:`register_commands` adds the commands to the ``musicrep`` app.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from pipeline.cli.lazy import lazy
from pipeline.cli.tables import show_table
from pipeline.config.project import project_of
from pipeline.core.choices import AGGREGATES, BATCH_SIZE, BF16_MODES, DEVICES, LAYERS
from pipeline.core.errors import UserError
from pipeline.models.pretrained_catalog import sota_help

if TYPE_CHECKING:
    from pipeline.inference.predict import Predictions

inference = lazy("pipeline.inference.predict")
io_utils = lazy("pipeline.core.io_utils")
model_registry = lazy("pipeline.tracking.registry")
writers = lazy("pipeline.inference.writers")


def _root(ctx: typer.Context) -> Path:
    """The project root the ``musicrep`` callback resolved (the nearest project when run without it)."""
    return project_of(ctx).root


def _print_error(path: str, reason: str) -> None:
    typer.secho(f"error: {path}: {reason}; skipped", fg="red", err=True)


def _nothing_usable(failures: list) -> UserError:
    """The error of a command none of whose inputs could be used."""
    return UserError(
        f"none of the {len(failures)} inputs could be used (see the errors above); "
        "pass readable audio files (wav, flac, ogg, mp3, aiff) or folders of them."
    )


def _display_path(path: str) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return path


def _render_table(pred: Predictions, top_k: int) -> None:
    kind = "multi-label, sigmoid scores" if pred.multilabel else "single-label, softmax probabilities"
    cols = ("file", "seconds", "chunks", f"top {top_k} labels")
    cells = [
        [
            _display_path(r["path"]),
            f"{r['duration_s']:.2f}",
            str(r["n_chunks"]),
            "\n".join(f"{t['label']} {t['score']:.3f}" for t in r["top"]),
        ]
        for r in pred.records
    ]
    show_table(f"{pred.model or _display_path(str(pred.model_dir))} ({kind})", cols, cells, right=cols[1:3], expand=True)


ModelOpt = Annotated[
    str,
    typer.Option("--model", "-m", help=f"packaged model dir, TASK/MODEL under models/, models:/NAME/VERSION or {sota_help()}"),
]
ChunkOpt = Annotated[float | None, typer.Option("--chunk-seconds", help="chunk length in s (default: the model's input length)")]
HopOpt = Annotated[float | None, typer.Option("--hop-seconds", help="hop between chunks in s (default: the chunk length)")]
DeviceOpt = Annotated[Literal[DEVICES], typer.Option("--device", help="auto = CUDA when usable, else the CPU")]
Bf16Opt = Annotated[
    Literal[BF16_MODES],
    typer.Option(
        "--bf16",
        help="off (default: fp32 scores, the reference's within 1e-4) | auto (CUDA, and CPUs with native bf16 for the "
        "variants measured faster; scores move by up to ~4e-3) | on",
    ),
]
BatchOpt = Annotated[
    int, typer.Option("--batch-size", min=1, help="chunks per forward pass (chunks of several files share a batch)")
]
PathsArg = Annotated[list[Path], typer.Argument(help="audio files and/or folders (searched recursively)")]


def predict_cmd(
    ctx: typer.Context,
    paths: PathsArg,
    model: ModelOpt,
    chunk_seconds: ChunkOpt = None,
    hop_seconds: HopOpt = None,
    aggregate: Annotated[Literal[AGGREGATES], typer.Option("--aggregate", help="how a file's chunk scores combine")] = "mean",
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, help="labels shown per file")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON record per file (a list) to stdout")] = False,
    csv: Annotated[Path | None, typer.Option("--csv", help="also write one CSV row per file to this file")] = None,
    device: DeviceOpt = "auto",
    bf16: Bf16Opt = "off",
    batch_size: BatchOpt = BATCH_SIZE,
) -> None:
    """Tag/classify audio files with a trained model (top-k labels and all scores per file)."""
    sinks: list[Callable[[dict[str, Any]], None]] = []
    with ExitStack() as stack:  # --csv and --json are written as the files are scored, in input order
        if csv is not None:
            fh = stack.enter_context(open(stack.enter_context(io_utils.atomic_path(csv)), "w", newline="", encoding="utf-8"))
            sinks.append(writers.CsvStream(fh, top_k))
        json_out = writers.JsonListStream() if as_json else None
        if json_out is not None:
            sinks.append(json_out)
        pred = inference.predict(
            paths,
            model,
            chunk_seconds=chunk_seconds,
            hop_seconds=hop_seconds,
            aggregate=aggregate,
            top_k=top_k,
            batch_size=batch_size,
            device=device,
            bf16=bf16,
            on_error=_print_error,
            on_record=lambda r: [sink(r) for sink in sinks],
            root=_root(ctx),
        )
        if not pred.records:  # raised inside: the CSV's temporary file is removed, nothing was printed
            raise _nothing_usable(pred.failures)
        if json_out is not None:
            json_out.close()
    if csv is not None:
        typer.echo(f"wrote {csv} ({len(pred.records)} files)", err=True)
    if not as_json:
        _render_table(pred, top_k)
    if pred.failures:
        typer.echo(f"{len(pred.records)} files scored, {len(pred.failures)} skipped", err=True)


def embed_cmd(
    ctx: typer.Context,
    paths: PathsArg,
    model: ModelOpt,
    out: Annotated[Path, typer.Option("--out", "-o", help="FILE.parquet or FILE.npy (+ FILE.csv index)")],
    per_chunk: Annotated[bool, typer.Option("--per-chunk", help="also write one embedding per chunk")] = False,
    layer: Annotated[
        Literal[LAYERS], typer.Option("--layer", help="pooled = the back-end feature before the classifier")
    ] = "pooled",
    chunk_seconds: ChunkOpt = None,
    hop_seconds: HopOpt = None,
    device: DeviceOpt = "auto",
    bf16: Bf16Opt = "off",
    batch_size: BatchOpt = BATCH_SIZE,
) -> None:
    """Write one embedding per file (mean over chunks), optionally one per chunk."""
    writers.check_embeddings_path(out)  # before any audio is read
    emb = inference.embed(
        paths,
        model,
        per_chunk=per_chunk,
        layer=layer,
        chunk_seconds=chunk_seconds,
        hop_seconds=hop_seconds,
        batch_size=batch_size,
        device=device,
        bf16=bf16,
        on_error=_print_error,
        root=_root(ctx),
    )
    if emb.matrix.shape[0] == 0:
        raise _nothing_usable(emb.failures)
    written = writers.write_embeddings(emb, out)
    n_files = int((emb.index["chunk"] == -1).sum())
    typer.echo(
        f"wrote {', '.join(map(str, written))}: {n_files} files, {len(emb.index)} rows, "
        f"dim {emb.matrix.shape[1]} ({layer})" + (f"; {len(emb.failures)} skipped" if emb.failures else "")
    )


def register_cmd(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="packaged model dir or TASK/MODEL under models/")],
    name: Annotated[str | None, typer.Option("--name", help="registered model name (default musicrep-TASK-MODEL)")] = None,
) -> None:
    """Register a trained model in the MLflow model registry (prints its models:/ URI)."""
    if str(model).startswith("models:/"):
        raise UserError(f"{model} is already a registry URI; pass a packaged model directory or TASK/MODEL.")
    reg_name, version = model_registry.register_model(inference.resolve_model_dir(model, _root(ctx)), _root(ctx), name=name)
    typer.echo(f"models:/{reg_name}/{version}")


def register_commands(app: typer.Typer) -> None:
    """Add ``predict``, ``embed`` and ``register`` to the ``musicrep`` typer app."""
    app.command("predict", rich_help_panel="Using trained models")(predict_cmd)
    app.command("embed", rich_help_panel="Using trained models")(embed_cmd)
    app.command("register", rich_help_panel="Using trained models")(register_cmd)
