"""``musicrep pretrained list`` and ``musicrep pretrained fetch NAME [--mirror DIR]``.

The work is in :mod:`pipeline.models.pretrained`; this module wires it to the command line.
:func:`register_commands` adds the ``pretrained`` command group to the ``musicrep`` app.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from pipeline.cli.lazy import lazy
from pipeline.cli.tables import show_table
from pipeline.config.project import project_of

pretrained_models = lazy("pipeline.models.pretrained")

pretrained_app = typer.Typer(
    help="The reference's published taggers (sota:<dataset>/<model>): list and fetch.", no_args_is_help=True
)

MirrorOpt = Annotated[
    str | None,
    typer.Option(
        "--mirror",
        help="folder laid out like sota/<dataset>/<model>/best_model.pth, or its base URL "
        "(default: pretrained.mirror of params, else $MUSICREP_PRETRAINED_MIRROR, else upstream)",
    ),
]


@pretrained_app.command("list")
def list_cmd(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
    mirror: MirrorOpt = None,
) -> None:
    """Name, dataset, tags, input length, parameters, source, license and offline availability."""
    rows = pretrained_models.catalog_rows(mirror=project_of(ctx).pretrained_mirror(mirror))
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    cols = ("name", "tags", "input", "params", "offline", "fetchable")
    cells = [
        [
            r["name"],
            f"{r['n_tags']}: {r['tags'][0]}, ...",
            f"{r['input_seconds']:g} s",
            f"{r['params']:,}" if r["params"] else "-",
            r["offline"],
            "no (see below)" if r["note"] else "yes",
        ]
        for r in rows
    ]
    show_table(
        f"published reference taggers (fetched ones in {pretrained_models.models_root()})", cols, cells, right=("input", "params")
    )
    for r in rows:
        typer.echo(f"{r['name']}: {r['source']}" + (f" (not fetchable: {r['note']})" if r["note"] else ""))
    typer.echo(f"license of every file: {rows[0]['license']} (upstream repository)")


@pretrained_app.command("fetch")
def fetch_cmd(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="sota:<dataset>/<model>, e.g. sota:mtat/musicnn")],
    mirror: MirrorOpt = None,
) -> None:
    """Download (or copy from the mirror), verify by SHA-256 and package a reference model.

    The mirror: --mirror, else the project's pretrained.mirror, else $MUSICREP_PRETRAINED_MIRROR, else upstream.
    """
    typer.echo(f"{name}: packaged model in {pretrained_models.fetch(name, project_of(ctx).pretrained_mirror(mirror))}")


def register_commands(app: typer.Typer) -> None:
    """Add the ``pretrained`` group to the ``musicrep`` typer app."""
    app.add_typer(pretrained_app, name="pretrained", rich_help_panel="Models and results")
