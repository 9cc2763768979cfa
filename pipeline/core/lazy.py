"""The one way to import a module on first use instead of at the top of a file.

Every import sits at the top of its module (ruff PLC0415 checks it). A third-party module may be
named there lazily, ``mlflow = lazy("mlflow")``, and is imported at the first attribute access, when

- importing it has an effect that must come later: MLflow reads its telemetry switches at import,
  after :func:`pipeline.tracking.runs.quiet_mlflow_env` has set them, and Prefect its settings, after
  ``python -m flows.server`` has set them;
- it is slow and only one dataset needs it: music21 (seconds to import) and tinysoundfont render the
  ``rendered`` dataset, and every data source is imported when the registry scans them; or
- it belongs to an optional extra (``musicrep[scale]``: Dask, Ray, PostgreSQL): :func:`optional_module`
  names the extra to install when it is missing.

``pipeline/cli/`` names the commands' working modules the same way (:mod:`pipeline.cli.lazy`), so that
``musicrep --help`` stays fast. A module of this project is never imported lazily below ``cli/``: a
dependency that would point up the layers is a layering bug (``tests/test_architecture.py``), fixed by
moving code or passing a callable in.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from pipeline.core.errors import UserError

EXTRAS = {"prefect_dask": "scale", "dask": "scale", "prefect_ray": "scale", "ray": "scale", "psycopg": "scale"}
"""Top-level name of an optional module -> the ``musicrep`` extra that installs it (``pyproject.toml``)."""


class LazyModule:
    """A stand-in for the module ``name``, imported at the first attribute access.

    Every access goes through :func:`importlib.import_module` (so through ``sys.modules``): a test's
    ``monkeypatch.setattr(module, ...)`` is seen.

    Args:
        name: the dotted module name, e.g. ``"mlflow"``.
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


def optional_module(name: str) -> ModuleType:
    """Import ``name`` (a module of an optional extra, :data:`EXTRAS`) now.

    Raises:
        UserError: it is not installed; the sentence names the extra to install.
    """
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        extra = EXTRAS[name.split(".")[0]]
        raise UserError(
            f"{name} is not installed; install the optional extra with `pip install 'musicrep[{extra}]'` "
            "(or `make env`, which installs requirements.lock)."
        ) from exc
