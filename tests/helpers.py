"""What several test files do the same way: run the CLI in this process, start a local server and stop it.

- :func:`kept_root_logging`, :func:`run_cli`: ``musicrep ARGV`` in-process (the CLI callback
  reconfigures root logging; it is put back after each call).
- :func:`free_port`, :func:`serving`, :func:`stop`: a server process (``flows.server``,
  ``prefect server start``, ``mlflow ui``) on a free loopback port, waited for until its health URL
  answers 200, and killed with its process group (``start_new_session``) afterwards.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

from pipeline.cli.main import main
from tests.conftest import kept_root_logging

LOOPBACK = "127.0.0.1"


def run_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """Run ``musicrep ARGV`` in-process; return ``(exit code, stderr)``."""
    monkeypatch.setattr(sys, "argv", ["musicrep", *argv])
    code = 0
    with kept_root_logging():
        try:
            main()
        except SystemExit as exc:
            code = int(exc.code or 0)
    return code, capsys.readouterr().err


def free_port() -> int:
    """A TCP port free on the loopback interface now."""
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def stop(*procs: subprocess.Popen | None) -> None:
    """SIGTERM each process group in order (then SIGKILL after 20 s); ``None`` and finished ones are skipped."""
    for proc in procs:
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def _tail(log: Path | None) -> str:
    return f"\n{log.read_text()[-2000:]}" if log is not None and log.exists() else ""


def wait_until_up(url: str, proc: subprocess.Popen, timeout: float, log: Path | None = None) -> None:
    """Poll ``url`` until it answers 200; fail if ``proc`` exits or ``timeout`` seconds pass."""
    deadline = time.time() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        assert proc.poll() is None, f"{' '.join(map(str, proc.args[:4]))} exited{_tail(log)}"
        if time.time() > deadline:
            pytest.fail(f"{url} did not come up in {timeout:g} s{_tail(log)}")
        time.sleep(0.5)


@contextmanager
def serving(
    cmd: Sequence[str],
    health_url: str,
    env: dict[str, str],
    cwd: Path | None = None,
    log: Path | None = None,
    timeout: float = 120,
) -> Iterator[subprocess.Popen]:
    """Start ``cmd`` in its own process group, wait for ``health_url``, yield the process, stop it on leaving.

    Its output goes to ``log`` (and the log's tail into a failure message) or nowhere.
    """
    out = log.open("w") if log is not None else subprocess.DEVNULL
    proc = subprocess.Popen(
        list(cmd), cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT if log else subprocess.DEVNULL, start_new_session=True
    )
    try:
        wait_until_up(health_url, proc, timeout, log)
        yield proc
    finally:
        stop(proc)
        if log is not None:
            out.close()


def flows_server_command(port: int) -> list[str]:
    """``python -m flows.server`` (what ``make ui-prefect`` starts) on ``port`` of the loopback."""
    return [sys.executable, "-m", "flows.server", "--host", LOOPBACK, "--port", str(port)]


def mlflow_ui_command(port: int, store: Path) -> list[str]:
    """``mlflow ui`` on ``port`` of the loopback, one worker, on the SQLite store ``store``."""
    return [
        sys.executable,
        "-m",
        "mlflow",
        "ui",
        "--host",
        LOOPBACK,
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        f"sqlite:///{store}",
    ]
