"""The team MLflow server (issue 13): a real PostgreSQL backend store and proxied artifacts, on 127.0.0.1.

The test starts PostgreSQL (initdb/pg_ctl into a scratch folder; as the ``postgres`` user via
``runuser`` when run as root) and ``mlflow server`` itself with :mod:`pipeline.tracking.server`,
trains one tiny cell logging to it, reads the run back with ``musicrep compare``, checks the
model artifacts went through the server to its artifact store, and stops both.
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import tempfile
from pathlib import Path

import pandas as pd
import pytest
import yaml

from pipeline.tracking.server import Services, pg_bin, start, stop
from tests.conftest import REPO, tiny_overrides

pytestmark = pytest.mark.skipif(
    not (pg_bin("initdb") and pg_bin("pg_ctl")), reason="PostgreSQL server binaries (initdb, pg_ctl) are not installed"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def server():
    scratch = Path(tempfile.mkdtemp(prefix="musicrep-services-"))  # under /tmp: the postgres user can reach it
    scratch.chmod(0o755)
    s = Services(scratch / ".services", pg_port=_free_port(), port=_free_port())
    try:
        start(s)
        yield s
    finally:
        stop(s)
        assert not _listening(s.port) and not _listening(s.pg_port), "a service outlived its stop"
        subprocess.run(["rm", "-rf", str(scratch)], check=False)


def test_cell_logs_to_the_postgres_backed_server_and_compare_reads_it(
    server: Services, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient

    from pipeline.config.params import load_params
    from pipeline.core.paths import Layout
    from pipeline.orchestration import stages
    from pipeline.tracking.runs import run_id_of

    assert server.backend_uri().startswith("postgresql+psycopg://")
    proj = tmp_path / "proj"
    proj.mkdir()
    over = tiny_overrides(models=["fcn"], tasks=["synth_keywords"], n_clips=36)
    over["robustness"]["enabled"] = False
    params_yaml = yaml.safe_load((REPO / "params.yaml").read_text())
    for key, value in over.items():
        params_yaml[key] = {**params_yaml.get(key, {}), **value} if isinstance(params_yaml.get(key), dict) else value
    (proj / "params.yaml").write_text(yaml.safe_dump(params_yaml, sort_keys=False))
    params, layout = load_params(proj / "params.yaml"), Layout(proj)

    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.tracking_uri)
    monkeypatch.delenv("MUSICREP_ARTIFACT_ROOT", raising=False)  # the server's proxied root, not a local folder
    for name in ("download", "segment", "features"):
        getattr(stages, name)("synth_keywords", params, layout)
    metrics = stages.cell("synth_keywords", "fcn", params, layout, seed=0)
    assert "test/accuracy" in metrics

    run_id = run_id_of("synth_keywords", "fcn", layout, 0)
    c = MlflowClient(tracking_uri=server.tracking_uri)
    run = c.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.info.artifact_uri.startswith("mlflow-artifacts:/"), run.info.artifact_uri
    logged = {a.path for a in c.list_artifacts(run_id, "model")}
    assert "model/model.pt" in logged
    stored = list(Path(server.artifacts_destination).rglob("model.pt"))  # went through the server, not to ./mlartifacts
    assert stored and not (proj / "mlartifacts").exists()

    env = {k: v for k, v in os.environ.items() if k != "MUSICREP_ARTIFACT_ROOT"}
    out = subprocess.run(
        ["musicrep", "compare", "--format", "csv", "--per-seed"], cwd=proj, env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    df = pd.read_csv(io.StringIO(out.stdout))
    row = df[(df.task == "synth_keywords") & (df.model == "fcn")]
    assert len(row) == 1
    assert abs(float(row["test/accuracy"].iloc[0]) - metrics["test/accuracy"]) < 1e-9
