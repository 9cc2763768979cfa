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
from pipeline.core.settings import settings

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


def _who(stage: str, keys: tuple, info: dict) -> tuple[str, str]:
    """``("musicrep train T M", " (pid N)")``: what holds a lock and its pid, from its file."""
    what = info.get("holder") or _describe(stage, keys)
    pid = info.get("pid")
    host = info.get("host")
    where = f" on {host}" if host and host != socket.gethostname() else ""
    return what, (f" (pid {pid}{where})" if pid else "")


def _busy_error(stage: str, keys: tuple, path: Path, info: dict) -> UserError:
    what, pid = _who(stage, keys, info)
    return UserError(
        f"another `{what}` is running{pid} on this project; wait for it to finish or stop it, then re-run, "
        f"or re-run with --wait to queue behind it (its lock is {path})."
    )


#: seconds between two tries of a lock held by another thread of this process (``wait=True``)
POLL_S = 0.2


def _reenter(key: str, me: int) -> bool | None:
    """Count one more entry when this thread holds ``key``; None when another thread holds it, False when nobody does."""
    with _GUARD:
        held = _HELD.get(key)
        if held is None:
            return False
        if held[0] != me:
            return None
        _HELD[key] = (me, held[1] + 1, held[2])
        return True


def _acquire(path: Path, key: str, stage: str, keys: tuple, wait: bool) -> int:
    """Open and ``flock`` the lock file for this thread; raise (or, with ``wait``, block) while another holds it."""
    me = threading.get_ident()
    logged = False
    while True:
        if _reenter(key, me) is None:  # another thread of this process
            if not wait:
                raise _busy_error(stage, keys, path, {**_holder(path), "pid": os.getpid()})
        else:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait and logged else fcntl.LOCK_NB))
            except BlockingIOError:
                os.close(fd)
                if not wait:
                    raise _busy_error(stage, keys, path, _holder(path)) from None
            except BaseException:
                os.close(fd)
                raise
            else:
                with _GUARD:
                    _HELD[key] = (me, 1, fd)
                return fd
        if not logged:
            log.info("waiting for `%s`%s to finish (its lock is %s)", *_who(stage, keys, _holder(path)), path)
            logged = True
        time.sleep(POLL_S)


def _release(key: str) -> bool:
    """Count one exit; True when it was the outermost (the caller closes the file)."""
    with _GUARD:
        thread, depth, fd = _HELD[key]
        if depth > 1:
            _HELD[key] = (thread, depth - 1, fd)
            return False
        _HELD.pop(key, None)
        return True


@contextlib.contextmanager
def stage_lock(
    stage: str, *keys: str | int, root: str | os.PathLike = ".", holder: str | None = None, wait: bool | None = None
) -> Iterator[Path]:
    """Hold the project lock of ``stage`` on ``keys`` (dataset, model, seed...) for the ``with`` block.

    When another process (or another thread of this one) holds it, raises at once, or with
    ``wait`` blocks until it is free. Re-entrant within one thread (``cell`` holds the cell lock
    and calls ``train``, ``evaluate`` and ``robustness``, which take it again).

    Args:
        stage: stage name, e.g. ``"segment"``.
        keys: what the stage works on, e.g. the dataset, or task, model and seed.
        root: the project root (``layout.root``).
        holder: what the holder is doing, for others' error message (default
            ``"musicrep <stage> <keys>"``); e.g. ``segment`` holds ``download X`` as
            ``"musicrep segment X"`` so that a download cannot change the files it reads.
        wait: queue behind the holder instead of failing; default ``MUSICREP_LOCK_WAIT`` (the
            ``--wait`` option of ``musicrep`` sets it, so DVC and flow runs it starts wait too).

    Yields:
        The lock file's path.

    Raises:
        UserError: the lock is held elsewhere and ``wait`` is false (the message names the holder's pid).
    """
    path = lock_path(stage, *keys, root=root)
    path.parent.mkdir(parents=True, exist_ok=True)
    key = str(path.resolve())
    if _reenter(key, threading.get_ident()):
        try:
            yield path
        finally:
            _release(key)
        return
    fd = _acquire(path, key, stage, keys, settings().lock_wait if wait is None else wait)
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
        _release(key)
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


def clean_stage_leftovers(stage: str, dataset: str | None, layout: Layout) -> list[Path]:
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
