"""A team MLflow tracking server on PostgreSQL, started and stopped by the project (issue 13).

``make mlflow-server`` (or ``python -m pipeline.tracking.server start``) does, under
``.services/`` (``--dir``):

1. ``initdb`` a PostgreSQL cluster into ``postgres/data`` (once; superuser ``mlflow`` with a
   generated password in ``postgres/password``, mode 600; scram-sha-256 over TCP), and start it
   with ``pg_ctl`` listening on 127.0.0.1 only (``--pg-port``, default 5433) with its Unix
   socket in ``postgres/run``. PostgreSQL refuses to run as root: under root the PostgreSQL
   commands run as the ``postgres`` user (else ``nobody``) through ``runuser``, and that user
   owns ``postgres/``.
2. create the database ``mlflow`` (once);
3. start ``mlflow server`` with that backend store (``postgresql+psycopg://``, passed in the
   environment, not on the command line), ``--artifacts-destination artifacts/`` (or
   ``--artifacts``: any shared path or ``s3://``/``gs://`` URI), proxied artifact serving
   (clients log to ``mlflow-artifacts:/`` and never need the store's credentials), bound to
   127.0.0.1 (``--port``, default 5001) with one worker and no job runner (2-core machines).

Then point the pipeline at it: ``export MLFLOW_TRACKING_URI=http://127.0.0.1:5001`` (new
experiments then get the server's artifact root, see :func:`pipeline.tracking.runs.artifact_root`).
``make mlflow-server-stop`` (``... stop``) stops MLflow, then PostgreSQL (fast shutdown);
the data stays for the next start. ``status`` prints what runs. To serve a team, put
``--host`` on a private interface behind a firewall or an authenticating proxy; MLflow's own
host check then needs ``--allowed-hosts`` (see docs/scaling.md).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from pipeline.core.errors import UserError
from pipeline.core.lazy import optional_module

log = logging.getLogger(__name__)

DB = "mlflow"
USER = "mlflow"


@dataclass
class Services:
    """Where the server's pieces live and listen."""

    dir: Path
    pg_port: int = 5433
    port: int = 5001
    host: str = "127.0.0.1"
    artifacts: str | None = None

    @property
    def pg(self) -> Path:
        return self.dir / "postgres"

    @property
    def artifacts_destination(self) -> str:
        return self.artifacts or str((self.dir / "artifacts").resolve())

    @property
    def tracking_uri(self) -> str:
        return f"http://{self.host}:{self.port}"

    def backend_uri(self) -> str:
        password = (self.pg / "password").read_text().strip()
        return f"postgresql+psycopg://{USER}:{password}@127.0.0.1:{self.pg_port}/{DB}"


def pg_bin(name: str) -> str | None:
    """A PostgreSQL server binary (``initdb``, ``pg_ctl``): on PATH or under /usr/lib/postgresql/*/bin."""
    found = shutil.which(name)
    if found:
        return found
    for cand in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
        return str(cand)
    return None


def _pg_user() -> str | None:
    """The account PostgreSQL runs as when we are root (it refuses root); ``None`` = ourselves."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise UserError(
        "PostgreSQL refuses to run as root and neither a 'postgres' nor a 'nobody' account exists; run as another user."
    )


def _as_pg(cmd: list[str], user: str | None, **kw) -> subprocess.CompletedProcess:
    full = ["runuser", "-u", user, "--", *cmd] if user else cmd
    res = subprocess.run(full, capture_output=True, text=True, **kw)
    if res.returncode != 0:
        raise UserError(
            f"{Path(cmd[0]).name} failed ({res.returncode}): {(res.stderr or res.stdout).strip().splitlines()[-1:]}; see {cmd}."
        )
    return res


def _chown_tree(path: Path, user: str) -> None:
    ent = pwd.getpwnam(user)
    for p in [path, *path.rglob("*")]:
        os.chown(p, ent.pw_uid, ent.pw_gid)


def _pg_running(s: Services, user: str | None) -> bool:
    pg_ctl = pg_bin("pg_ctl")
    if not (s.pg / "data" / "PG_VERSION").exists() or pg_ctl is None:
        return False
    cmd = [pg_ctl, "-D", str(s.pg / "data"), "status"]
    full = ["runuser", "-u", user, "--", *cmd] if user else cmd
    return subprocess.run(full, capture_output=True).returncode == 0


def start_postgres(s: Services) -> None:
    """initdb (once) and start PostgreSQL on 127.0.0.1:``pg_port``; create the ``mlflow`` database."""
    initdb, pg_ctl = pg_bin("initdb"), pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        raise UserError("PostgreSQL server binaries (initdb, pg_ctl) not found; install Debian's postgresql package.")
    user = _pg_user()
    data = s.pg / "data"
    if not (data / "PG_VERSION").exists():
        for sub in ("run", "log"):
            (s.pg / sub).mkdir(parents=True, exist_ok=True)
        pwfile = s.pg / "password"
        pwfile.write_text(secrets.token_urlsafe(24) + "\n")
        os.chmod(s.pg, 0o700)
        if user:
            _chown_tree(s.pg, user)
        pwfile.chmod(0o600)
        _as_pg(
            [
                initdb,
                "-D",
                str(data),
                "-U",
                USER,
                f"--pwfile={pwfile}",
                "--auth-host=scram-sha-256",
                "--auth-local=peer",
                "-E",
                "UTF8",
                "--no-locale",
            ],
            user,
        )
        log.info("initialised PostgreSQL in %s", data)
    if not _pg_running(s, user):
        opts = f"-c listen_addresses=127.0.0.1 -p {s.pg_port} -k {s.pg / 'run'}"
        _as_pg([pg_ctl, "-D", str(data), "-l", str(s.pg / "log" / "postgres.log"), "-o", opts, "-w", "-t", "60", "start"], user)
        log.info("PostgreSQL listening on 127.0.0.1:%d", s.pg_port)
    psycopg = optional_module("psycopg")
    password = (s.pg / "password").read_text().strip()
    with psycopg.connect(
        host="127.0.0.1", port=s.pg_port, user=USER, password=password, dbname="postgres", autocommit=True, connect_timeout=10
    ) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB,)).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{DB}"')
            log.info("created database %s", DB)


def _pidfile(s: Services) -> Path:
    return s.dir / "mlflow-server.json"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def start_mlflow(s: Services, timeout: float = 120.0) -> int:
    """Start ``mlflow server`` in its own session; wait for ``/health``; returns its pid."""
    info = _pidfile(s)
    if info.exists():
        old = json.loads(info.read_text())
        if _alive(old["pid"]):
            log.info("mlflow server already running (pid %d) at %s", old["pid"], old["tracking_uri"])
            return old["pid"]
    if s.artifacts is None:
        Path(s.artifacts_destination).mkdir(parents=True, exist_ok=True)
    mlflow = shutil.which("mlflow") or str(Path(sys.executable).parent / "mlflow")
    env = {
        **os.environ,
        "MLFLOW_BACKEND_STORE_URI": s.backend_uri(),
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    logf = open(s.dir / "mlflow-server.log", "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(
        [
            mlflow,
            "server",
            "--host",
            s.host,
            "--port",
            str(s.port),
            "--workers",
            "1",
            "--artifacts-destination",
            s.artifacts_destination,
            "--serve-artifacts",
        ],
        stdout=logf,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
        cwd=s.dir,
    )
    logf.close()
    info.write_text(json.dumps({"pid": proc.pid, "tracking_uri": s.tracking_uri, **{k: str(v) for k, v in asdict(s).items()}}))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise UserError(f"mlflow server exited with {proc.returncode}; see {s.dir / 'mlflow-server.log'}.")
        try:
            with urllib.request.urlopen(f"{s.tracking_uri}/health", timeout=2) as r:
                if r.status == 200:
                    log.info("mlflow server (pid %d) at %s, artifacts in %s", proc.pid, s.tracking_uri, s.artifacts_destination)
                    return proc.pid
        except OSError:
            pass
        time.sleep(0.5)
    stop_mlflow(s)
    raise UserError(
        f"mlflow server did not answer {s.tracking_uri}/health within {timeout:.0f} s; see {s.dir / 'mlflow-server.log'}."
    )


def stop_mlflow(s: Services, timeout: float = 20.0) -> None:
    info = _pidfile(s)
    if not info.exists():
        return
    pid = json.loads(info.read_text())["pid"]
    if _alive(pid):
        try:
            os.killpg(pid, signal.SIGTERM)  # the server and its uvicorn worker
        except OSError:
            pass
        deadline = time.monotonic() + timeout
        while _alive(pid) and time.monotonic() < deadline:
            try:  # reap it when it is our child (tests)
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
            time.sleep(0.2)
        if _alive(pid):
            os.killpg(pid, signal.SIGKILL)
    info.unlink()
    log.info("mlflow server stopped")


def stop_postgres(s: Services) -> None:
    user = _pg_user()
    if _pg_running(s, user):
        _as_pg([pg_bin("pg_ctl") or "pg_ctl", "-D", str(s.pg / "data"), "-m", "fast", "-w", "stop"], user)
        log.info("PostgreSQL stopped")


def start(s: Services) -> str:
    """PostgreSQL, then the MLflow server; returns the tracking URI."""
    s.dir.mkdir(parents=True, exist_ok=True)
    start_postgres(s)
    start_mlflow(s)
    return s.tracking_uri


def stop(s: Services) -> None:
    """MLflow first (it holds connections), then PostgreSQL."""
    stop_mlflow(s)
    stop_postgres(s)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipeline.tracking.server", description=__doc__.split("\n\n")[0])
    ap.add_argument("action", choices=["start", "stop", "status"])
    ap.add_argument("--dir", type=Path, default=Path(".services"), help="scratch folder (default .services)")
    ap.add_argument("--pg-port", type=int, default=5433)
    ap.add_argument("--port", type=int, default=5001, help="MLflow server port")
    ap.add_argument("--host", default="127.0.0.1", help="MLflow server address (default 127.0.0.1 only)")
    ap.add_argument("--artifacts", default=None, help="artifact store (default DIR/artifacts; a shared path or s3://...)")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    s = Services(a.dir.resolve(), a.pg_port, a.port, a.host, a.artifacts)
    try:
        if a.action == "start":
            uri = start(s)
            log.info("export MLFLOW_TRACKING_URI=%s", uri)
        elif a.action == "stop":
            stop(s)
        else:
            info = _pidfile(s)
            running = info.exists() and _alive(json.loads(info.read_text())["pid"])
            log.info(
                "postgres: %s; mlflow server: %s",
                "running" if _pg_running(s, _pg_user()) else "stopped",
                f"running at {s.tracking_uri}" if running else "stopped",
            )
    except UserError as exc:
        log.error("error: %s", exc)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
