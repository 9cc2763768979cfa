"""The command line's one lazy-import mechanism: a command's working modules load when it runs.

The ``musicrep`` modules name what they call at their top, as ``stages = lazy("pipeline.orchestration.stages")``;
the module is imported at the first attribute access (``stages.train(...)``), so ``musicrep --help``,
``--version`` and the parsing of every command load typer and the light configuration modules only,
never torch, MLflow, Prefect or DVC (``tests/test_cli_imports.py`` keeps it so). Every attribute
access goes through ``sys.modules``, so a test's ``monkeypatch.setattr(module, ...)`` is seen.
"""

from __future__ import annotations

import importlib
from typing import Any


class LazyModule:
    """A stand-in for the module ``name``, imported at the first attribute access.

    Args:
        name: the dotted module name, e.g. ``"pipeline.orchestration.stages"``.
    """

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        return getattr(importlib.import_module(self._name), attr)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"


def lazy(name: str) -> Any:
    """The module ``name``, imported when first used (see the module docstring)."""
    return LazyModule(name)
