"""The ``musicrep export`` and ``musicrep probe`` commands: taking representations elsewhere.

The work is in :mod:`pipeline.inference.export` (ONNX) and :mod:`pipeline.evaluation.probe` (frozen-embedding
probes); this module only wires them to the command line. :func:`register_commands` adds the
commands to the ``musicrep`` app.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Literal

import typer

from pipeline.cli.lazy import lazy
from pipeline.config.project import Project, project_of
from pipeline.core.choices import EXPORT_FORMATS, LAYERS
from pipeline.models.pretrained_catalog import sota_help

checkpoint = lazy("pipeline.models.checkpoint")
data_registry = lazy("pipeline.data.registry")
inference = lazy("pipeline.inference.predict")
locks = lazy("pipeline.core.locks")
metric_intervals = lazy("pipeline.evaluation.metric_intervals")
onnx_export = lazy("pipeline.inference.export")
probe = lazy("pipeline.evaluation.probe")
stats = lazy("pipeline.evaluation.stats")

ModelArg = Annotated[
    str, typer.Argument(help="packaged model dir, TASK/MODEL or TASK/MODEL/seedK under models/, or models:/NAME/VERSION")
]


def _project(ctx: typer.Context) -> Project:
    """The project the ``musicrep`` callback resolved (root + ``--set``); the nearest one when run without it."""
    return project_of(ctx)


def _default_onnx_name(model_dir: Path) -> Path:
    """``TASK-MODEL-seedK.onnx`` in the current folder for ``models/TASK/MODEL/seedK``."""
    parts = model_dir.resolve().parts[-3:]
    return Path("-".join(parts) + ".onnx")


def export_cmd(
    ctx: typer.Context,
    model: ModelArg,
    fmt: Annotated[Literal[EXPORT_FORMATS], typer.Option("--format", help="the only format so far")] = "onnx",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="F.onnx (default: TASK-MODEL-seedK.onnx here)")] = None,
    dynamic_length: Annotated[
        bool | None,
        typer.Option(
            "--dynamic-length/--fixed-length",
            help="length axis: dynamic (fail if impossible) or the model's input length (default: dynamic where the architecture allows)",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print what was written as JSON")] = False,
    force: Annotated[bool, typer.Option("--force", help="overwrite --out even if `musicrep export` did not write it")] = False,
) -> None:
    """Export a trained model (waveform in; logits, embedding out) to ONNX, checked in onnxruntime."""
    root = _project(ctx).root
    model_dir = inference.resolve_model_dir(model, root)
    net, card = checkpoint.load_model(model_dir)
    target = out or _default_onnx_name(model_dir)
    key = hashlib.sha256(str(target.resolve()).encode()).hexdigest()[:16]  # one export per output file
    with locks.stage_lock("export", key, root=root, holder=f"musicrep export -o {target}"):
        result = onnx_export.export_onnx(net, card, target, dynamic_length=dynamic_length, force=force)
    if as_json:
        typer.echo(json.dumps(result.as_json(), indent=2))
        return
    length = "any" if result.dynamic_length else f"{result.input_length} (fixed: {result.length_note})"
    typer.echo(
        f"wrote {result.path} ({result.size_bytes / 1e6:.2f} MB): waveform (batch, samples) at {result.sample_rate} Hz, "
        f"samples = {length} -> logits, embedding; onnxruntime matches PyTorch within {result.max_abs_diff:.1e}"
    )


def probe_cmd(
    ctx: typer.Context,
    dataset: Annotated[str, typer.Argument(help="downstream dataset (segmented; its own train/val/test split)")],
    model: Annotated[
        str,
        typer.Option(
            "--model",
            "-m",
            help=f"embedding model: packaged dir, TASK/MODEL under models/, models:/NAME/VERSION or {sota_help()}",
        ),
    ],
    seeds: Annotated[
        list[int] | None,
        typer.Option("--seed", help="probe seed (repeatable; default 0); picks models/TASK/MODEL/seedK when it exists"),
    ] = None,
    random_init: Annotated[
        bool, typer.Option("--random-init", help="probe a randomly initialised network of the same architecture (baseline)")
    ] = False,
    layer: Annotated[
        Literal[LAYERS], typer.Option("--layer", help="pooled = the back-end feature before the classifier")
    ] = "pooled",
    as_json: Annotated[bool, typer.Option("--json", help="print the results (value, ci_low, ci_high per seed) as JSON")] = False,
    params: Annotated[
        Path | None, typer.Option("--params", "-p", help="params file (default: the project's params.yaml)")
    ] = None,
) -> None:
    """Frozen-embedding probe: linear and MLP probes on DATASET's own split, every test metric with a 95 % interval.

    Multi-label: ROC-AUC, PR-AUC and each tag's ROC-AUC; single-label: accuracy and macro-F1. The model
    may be a published tagger (sota:mtat/musicnn...). Seeds that give identical runs (a linear probe on the
    same embeddings is deterministic) are reported once.
    """
    project = _project(ctx)
    p = project.params(params)
    data_registry.check_dataset(dataset, p)
    results = [
        probe.run_probe(dataset, model, p, project.layout, seed=s, random_init=random_init, layer=layer) for s in seeds or [0]
    ]
    if as_json:
        typer.echo(json.dumps(results if len(results) > 1 else results[0], indent=2, default=str))
        return
    for r in results:
        typer.echo(
            f"{r['representation']} -> {dataset} seed {r['seed']}: {r['best']} probe, test {r['metric']} "
            f"{r['value']:.4f} [{r['ci_low']:.4f}, {r['ci_high']:.4f}] ({r['n_test']} clips)"
        )
        for line in metric_intervals.metric_lines(r.get("metrics", {})):
            typer.echo(f"  {line}")
    kept, note = probe.distinct_seeds(results)
    if note:
        typer.echo(f"{note}; reported once")
    if len(kept) > 1:
        mean, std, n = stats.seed_summary([r["value"] for r in kept])
        typer.echo(f"{kept[0]['metric']} mean ± std over {n} seeds: {mean:.4f} ± {std:.4f}")


def register_commands(app: typer.Typer) -> None:
    """Add ``export`` and ``probe`` to the ``musicrep`` typer app."""
    app.command("export", rich_help_panel="Using trained models")(export_cmd)
    app.command("probe", rich_help_panel="Using trained models")(probe_cmd)
