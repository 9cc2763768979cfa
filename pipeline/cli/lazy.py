"""The command line's one lazy-import mechanism: a command's working modules load when it runs.

The ``musicrep`` modules name what they call at their top, as ``stages = lazy("pipeline.orchestration.stages")``;
the module is imported at the first attribute access (``stages.train(...)``), so ``musicrep --help``,
``--version`` and the parsing of every command load typer and the light configuration modules only,
never torch, MLflow, Prefect or DVC (``tests/test_cli_imports.py`` keeps it so). Every attribute
access goes through ``sys.modules``, so a test's ``monkeypatch.setattr(module, ...)`` is seen. The mechanism
is the project's one lazy import (:mod:`pipeline.core.lazy`), re-exported here.
"""

from __future__ import annotations

from pipeline.core.lazy import LazyModule, lazy

__all__ = ["LazyModule", "lazy"]
