"""User-facing errors: one clear sentence naming the problem and the fix.

The CLI catches :class:`UserError` and prints only its message (no traceback), and maps the
environment's faults (disk full, permissions, read-only file systems, a locked MLflow store) to
one too through :func:`environment_error`.
"""

from __future__ import annotations

import difflib
import errno
import os
from collections.abc import Iterable, Mapping


class UserError(Exception):
    """An error the user can fix (bad params, missing data, unreadable file, bad checkpoint)."""


# ----------------------------------------------------------------------------- environment faults
_OS_FAULTS = {
    errno.ENOSPC: ("there is no space left on the device holding {path}", "free space there (or move the project), then re-run"),
    errno.EDQUOT: ("the disk quota is exhausted for {path}", "free space there (or move the project), then re-run"),
    errno.EACCES: (
        "permission denied on {path}",
        "fix its permissions (e.g. `chmod u+rw` on it and its folder) or run as its owner, then re-run",
    ),
    errno.EPERM: ("the operation on {path} is not permitted", "fix its permissions or ownership, then re-run"),
    errno.EISDIR: ("{path} is a folder where a file is expected", "move the folder away (or delete it), then re-run"),
    errno.ENOTDIR: ("a part of {path} is a file where a folder is expected", "move that file away, then re-run"),
    errno.EROFS: (
        "{path} is on a read-only file system",
        "run the project from a writable folder (or remount it read-write), then re-run",
    ),
}
"""errno -> (problem, fix) of the faults of the machine, not of the code, that a user can fix."""

SQLITE_LOCKED = "database is locked"


def closest(name: str, candidates: Mapping[str, str] | Iterable[str], cutoff: float = 0.6) -> str | None:
    """The candidate nearest ``name`` for a "did you mean" (``None`` when none is near).

    ``candidates`` may map a spelling to what to suggest for it (``{"mtat/fcn": "sota:mtat/fcn"}``).
    """
    table = dict(candidates) if isinstance(candidates, Mapping) else {c: c for c in candidates}
    close = difflib.get_close_matches(name, list(table), n=1, cutoff=cutoff)
    return table[close[0]] if close else None


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and its causes and contexts (each once)."""
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        item = todo.pop()
        if item is None or any(item is s for s in seen):
            continue
        seen.append(item)
        todo += [item.__cause__, item.__context__]
    return seen


def environment_error(exc: BaseException) -> UserError | None:
    """The one-line :class:`UserError` for a fault of the environment behind ``exc``, or None.

    Disk full (ENOSPC, EDQUOT), permission denied (EACCES, EPERM), a folder where a file is
    expected (EISDIR, ENOTDIR), a read-only file system (EROFS) anywhere in the exception's
    chain, and a locked SQLite MLflow store, each named with its path and fix; the CLI turns it
    into exit status 2 instead of "please report it".
    """
    chain = _chain(exc)
    for item in chain:
        if isinstance(item, OSError) and item.errno in _OS_FAULTS:
            problem, fix = _OS_FAULTS[item.errno]
            path = item.filename if item.filename is not None else "a file the command writes"
            return UserError(f"{problem.format(path=path)} ({os.strerror(item.errno)}); {fix}.")
    for item in chain:
        if SQLITE_LOCKED in str(item).lower():
            store = os.environ.get("MLFLOW_TRACKING_URI") or "sqlite:///mlflow.db"
            return UserError(
                f"the MLflow store {store} is locked by another process ({SQLITE_LOCKED}); wait for the other run "
                "to finish (or stop it), or use a tracking server (`make ui-mlflow`, MLFLOW_TRACKING_URI=http://...), then re-run."
            )
    return None
