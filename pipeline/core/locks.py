"""Project-level locks for stages run outside DVC, and cleaning what a killed run left behind.

DVC locks its own runs (``.dvc/tmp/rwlock``), but ``musicrep segment X`` in two shells, the
Prefect flow beside a CLI run, or two ``musicrep train`` on one cell have nothing to stop them
sharing temporary folders and interleaving outputs. Every stage therefore holds an advisory
lock (``fcntl.flock``) on ``.musicrep/locks/<stage>-<key>[-<key>...].lock`` at the project
root while it runs:

.. code-block:: python

    from pipeline.core.locks import stage_lock

    with stage_lock("segment", dataset, root=layout.root):
        ...  # a second holder fails at once with a one-line UserError naming the pid

A stage also holds the lock of the stage whose outputs it reads (``segment`` holds
``download X``, ``features`` holds ``segment X``, with ``holder=`` naming itself), so that
its inputs cannot change under it.

The kernel drops a ``flock`` when its process dies (even by ``kill -9``), so a lock is never
stale: a lock file left behind is simply taken by the next run. The file records the pid,
host, start time and command of its holder, for the error message.

:func:`clean_leftovers` removes the temporaries of a killed run of a stage (hidden extraction
folders, ``.*.tmp`` files of :func:`pipeline.core.io_utils.atomic_path`, ``*.partial`` folders,
``.reports.tmp-*``). Call it while holding that stage's lock: then no live run of the same
stage can own them.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import shutil
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from pipeline.core.errors import UserError
from pipeline.core.paths import Layout

log = logging.getLogger(__name__)

LOCK_DIR = Path(".musicrep") / "locks"

_HELD: dict[str, tuple[int, int, int]] = {}  # lock path -> (thread ident, depth, fd)
_GUARD = threading.Lock()


def lock_path(stage: str, *keys: str | int, root: str | os.PathLike = ".") -> Path:
    """``<root>/.musicrep/locks/<stage>-<key>-....lock`` (keys made filename-safe)."""
    parts = [stage, *(str(k) for k in keys if k is not None and str(k) != "")]
    name = "-".join(re.sub(r"[^A-Za-z0-9_.+=]", "_", p) for p in parts)
    return Path(root) / LOCK_DIR / f"{name}.lock"


def _holder(path: Path) -> dict:
    with contextlib.suppress(OSError, ValueError):
        info = json.loads(path.read_text() or "{}")
        if isinstance(info, dict):
            return info
    return {}


def _describe(stage: str, keys: tuple) -> str:
    return " ".join(["musicrep", stage, *(str(k) for k in keys if k is not None and str(k) != "")])


def _busy_error(stage: str, keys: tuple, path: Path, info: dict) -> UserError:
    what = info.get("holder") or _describe(stage, keys)
    pid = info.get("pid")
    who = (
        f" (pid {pid}{' on ' + info['host'] if info.get('host') and info['host'] != socket.gethostname() else ''})" if pid else ""
    )
    return UserError(
        f"another `{what}` is running{who} on this project; wait for it to finish or stop it, then re-run (its lock is {path})."
    )


@contextlib.contextmanager
def stage_lock(stage: str, *keys: str | int, root: str | os.PathLike = ".", holder: str | None = None) -> Iterator[Path]:
    """Hold the project lock of ``stage`` on ``keys`` (dataset, model, seed...) for the ``with`` block.

    Never waits: when another process (or another thread of this one) holds it, raises at
    once. Re-entrant within one thread (a cell holding ``train`` may call a helper that
    takes ``train`` again).

    Args:
        stage: stage name, e.g. ``"segment"``.
        keys: what the stage works on, e.g. the dataset, or task, model and seed.
        root: the project root (``layout.root``).
        holder: what the holder is doing, for others' error message (default
            ``"musicrep <stage> <keys>"``); e.g. ``segment`` holds ``download X`` as
            ``"musicrep segment X"`` so that a download cannot change the files it reads.

    Yields:
        The lock file's path.

    Raises:
        UserError: the lock is held elsewhere (the message names the holder's pid).
    """
    path = lock_path(stage, *keys, root=root)
    path.parent.mkdir(parents=True, exist_ok=True)
    key = str(path.resolve())
    me = threading.get_ident()
    with _GUARD:
        held = _HELD.get(key)
        if held is not None:
            if held[0] != me:
                raise _busy_error(stage, keys, path, {**_holder(path), "pid": os.getpid()})
            _HELD[key] = (me, held[1] + 1, held[2])
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield path
        finally:
            with _GUARD:
                thread, depth, fd = _HELD[key]
                _HELD[key] = (thread, depth - 1, fd)
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise _busy_error(stage, keys, path, _holder(path)) from None
    except BaseException:
        os.close(fd)
        raise
    with _GUARD:
        _HELD[key] = (me, 1, fd)
    try:
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "stage": stage,
            "keys": [str(k) for k in keys],
            "holder": holder or _describe(stage, keys),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "command": " ".join(sys.argv)[:500],
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        yield path
    finally:
        with _GUARD:
            _HELD.pop(key, None)
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)  # releases the flock; the empty file stays (removing it would race a new holder)


def is_held(stage: str, *keys: str | int, root: str | os.PathLike = ".") -> bool:
    """True when some process (this one included) holds the lock right now."""
    path = lock_path(stage, *keys, root=root)
    if not path.exists():
        return False
    with _GUARD:
        if str(path.resolve()) in _HELD:
            return True
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


# ----------------------------------------------------------------------------- leftovers of killed runs
#: names of temporaries: atomic_path files, extraction/copy folders, partial outputs, report folders
_TEMP_FILE = re.compile(r"^\..+\.tmp$")
_TEMP_DIR = re.compile(r"^(\..+\.extracting|\..+\.partial-.+|.+\.partial|\..+\.tmp-.+)$")


def _remove(path: Path) -> int:
    """Delete a file or folder; return the bytes it held."""
    size = 0
    with contextlib.suppress(OSError):
        if path.is_dir() and not path.is_symlink():
            size = sum(p.lstat().st_size for p in path.rglob("*") if not p.is_dir())
            shutil.rmtree(path, ignore_errors=True)
        else:
            size = path.lstat().st_size
            path.unlink()
    return size


def clean_leftovers(folder: str | os.PathLike, recursive: bool = True, only: str | None = None) -> list[Path]:
    """Remove a killed run's temporaries in ``folder``; return what was removed.

    Removes hidden ``.*.tmp`` files (:func:`pipeline.core.io_utils.atomic_path`), and folders named
    ``.*.extracting``, ``*.partial``, ``.*.partial-*`` and ``.*.tmp-*``. Downloads' ``.part``
    files are kept (they are resumed). Only call it while holding the lock of the stage that
    writes ``folder``.

    Args:
        folder: where to look.
        recursive: also look in sub-folders (not inside the removed ones).
        only: the name the leftovers are derived from (``<only>.partial``, ``.<only>.tmp-*``...), for a
            folder shared with other datasets or stages.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed: list[Path] = []
    total = 0
    for dirpath, dirnames, filenames in os.walk(folder):
        here = Path(dirpath)
        for name in list(dirnames):
            if _TEMP_DIR.match(name) and (only is None or name.lstrip(".").startswith(only + ".")):
                total += _remove(here / name)
                removed.append(here / name)
                dirnames.remove(name)
        for name in filenames:
            if _TEMP_FILE.match(name) and (only is None or name.lstrip(".").startswith(only + ".")):
                total += _remove(here / name)
                removed.append(here / name)
        if not recursive:
            break
    if removed:
        log.info(
            "removed %d leftovers of an interrupted run in %s (%.1f MB), e.g. %s",
            len(removed),
            folder,
            total / 1e6,
            removed[0].name,
        )
    return removed


def clean_stage_leftovers(stage: str, dataset: str | None, layout: Layout = Layout()) -> list[Path]:
    """:func:`clean_leftovers` in the folders ``stage`` writes for ``dataset`` (hold its lock).

    For ``report``, ``dataset`` is the report folder relative to the root (default ``reports``).
    """
    if stage == "download" and dataset:
        return clean_leftovers(layout.raw(dataset))
    if stage == "segment" and dataset:
        out = layout.segments(dataset)
        return clean_leftovers(out.parent, recursive=False, only=out.name) + clean_leftovers(out)
    if stage == "features" and dataset:
        return clean_leftovers(layout.features(dataset))
    if stage == "report":
        out = layout.root / (dataset or "reports")
        return clean_leftovers(out.parent, recursive=False, only=out.name)
    return []
