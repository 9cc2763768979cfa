"""The one way to import a module on first use instead of at the top of a file.

Every import sits at the top of its module (ruff PLC0415 checks it), with two exceptions:

- ``pipeline/cli/`` imports a command's work inside the command, so ``musicrep --help`` stays fast;
- a module of an optional extra (``musicrep[scale]``: Dask, Ray, PostgreSQL) is imported through
  :func:`optional_module`, which says which extra to install when it is missing.

A module of this project is never imported lazily: a dependency that would point up the layers
is a layering bug (``tests/test_architecture.py``), fixed by moving code or passing a callable in.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from pipeline.core.errors import UserError

EXTRAS = {"prefect_dask": "scale", "dask": "scale", "prefect_ray": "scale", "ray": "scale", "psycopg": "scale"}
"""Top-level name of an optional module -> the ``musicrep`` extra that installs it (``pyproject.toml``)."""


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
            f"{name} is not installed; install the optional extra with `pip install 'musicrep[{extra}]'` (or `make env`, which installs requirements.lock)."
        ) from exc
