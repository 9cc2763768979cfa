"""`musicrep serve` registers a scheduled deployment on a real local Prefect server."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(url: str, timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"{url} did not come up in {timeout} s")


def test_serve_registers_scheduled_deployment(tmp_path: Path) -> None:
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_API_URL": api}
    env.pop("PREFECT_SERVER_EPHEMERAL_ENABLED", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env={**env, "PREFECT_API_URL": ""},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    serve = None
    try:
        _wait(f"{api}/health", 120)
        serve = subprocess.Popen(
            [sys.executable, "-m", "pipeline", "serve", "--cron", "0 3 * * *", "--name", "nightly-test"],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        found = None
        deadline = time.time() + 120
        while time.time() < deadline and found is None:
            req = urllib.request.Request(f"{api}/deployments/filter", data=b"{}", headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=5) as r:
                deployments = json.loads(r.read())
            found = next((d for d in deployments if d["name"] == "nightly-test"), None)
            if found is None:
                assert serve.poll() is None, "musicrep serve exited early"
                time.sleep(1)
        assert found is not None, "deployment was not registered"
        crons = [s["schedule"].get("cron") for s in found.get("schedules", [])]
        assert "0 3 * * *" in crons
        assert found["parameters"]["params_path"].endswith("params.yaml")
    finally:
        for proc in (serve, server):  # serve before the server (docs/spec.md §10.4)
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
