"""`musicrep serve` registers a scheduled deployment on a real local Prefect server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.helpers import free_port, serving, stop

REPO = Path(__file__).resolve().parents[1]


def test_serve_registers_scheduled_deployment(tmp_path: Path) -> None:
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_API_URL": api}
    env.pop("PREFECT_SERVER_EPHEMERAL_ENABLED", None)
    server_cmd = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    with serving(server_cmd, f"{api}/health", {**env, "PREFECT_API_URL": ""}):
        serve = subprocess.Popen(
            [sys.executable, "-m", "pipeline", "serve", "--cron", "0 3 * * *", "--name", "nightly-test"],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            found = None
            deadline = time.time() + 120
            while time.time() < deadline and found is None:
                req = urllib.request.Request(
                    f"{api}/deployments/filter", data=b"{}", headers={"Content-Type": "application/json"}
                )
                with urllib.request.urlopen(req, timeout=5) as r:
                    deployments = json.loads(r.read())
                found = next((d for d in deployments if d["name"] == "nightly-test"), None)
                if found is None:
                    assert serve.poll() is None, "musicrep serve exited early"
                    time.sleep(1)
        finally:
            stop(serve)  # serve before the server (docs/spec.md §10.4)
    assert found is not None, "deployment was not registered"
    crons = [s["schedule"].get("cron") for s in found.get("schedules", [])]
    assert "0 3 * * *" in crons
    assert found["parameters"]["params_path"].endswith("params.yaml")
