"""Plain metavars in the ``musicrep`` help: ``--seed INTEGER``, ``--device auto|cpu|cuda``, bare flags, ``TASK``.

Typer prints each parameter's Python type (``<bool>``, ``<str>``, ``<list[Path]>``); :class:`PlainMetavarGroup`,
the group class of the ``musicrep`` app, gives every parameter of the command tree a plain metavar
once, when typer builds the tree: a flag none, a fixed set its choices, an argument its name in
capitals, any other value its kind (``TEXT``, ``INTEGER``, ``FLOAT``, ``PATH``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

import click
import typer
from typer.core import TyperArgument, TyperGroup

KIND_NAMES = {int: "INTEGER", float: "FLOAT", Path: "PATH"}


def _kind(annotation: Any) -> str:
    return KIND_NAMES.get(annotation, "TEXT")


def plain_metavar(param: click.Parameter) -> str | None:
    """The metavar ``param`` shows in the help ("" for a flag; ``None``: not a typer parameter, left alone)."""
    desc = getattr(param, "type_descriptor", None)
    if desc is None:
        return param.metavar
    if isinstance(param, TyperArgument):
        return param.name.upper() + ("..." if param.nargs != 1 else "")
    if getattr(param, "is_flag", False) or desc.annotation is bool:
        return ""
    if desc.is_choice:
        return "|".join(str(c) for c in desc.choices)
    if desc.is_tuple:
        return " ".join(_kind(arg) for arg in get_args(desc.annotation))
    if desc.is_list:
        return _kind(get_args(desc.annotation)[0])
    return _kind(desc.annotation)


def plain_metavars(command: click.Command, help_names: list[str]) -> None:
    """Give every parameter of ``command`` and its subcommands a plain metavar (:func:`plain_metavar`),
    the help option ``help_names`` (which click makes on first use and then keeps) included."""
    help_option = command.get_help_option(typer.Context(command, help_option_names=help_names))
    for param in [*command.params, *([help_option] if help_option is not None else [])]:
        metavar = plain_metavar(param)
        param.metavar = metavar
        if isinstance(param, TyperArgument):  # typer shows an argument's type beside its name: hide it
            param.display_type_rich = lambda ctx: None  # type: ignore[method-assign]
    for sub in getattr(command, "commands", {}).values():
        plain_metavars(sub, help_names)


class PlainMetavarGroup(TyperGroup):
    """The ``musicrep`` app's group: typer's, with :func:`plain_metavars` applied to the whole tree."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        plain_metavars(self, list(self.context_settings.get("help_option_names", ["--help"])))
