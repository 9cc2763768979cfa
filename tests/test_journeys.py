"""The three ways musicrep is used, taken as a user takes them (issue 26; marker ``journey``).

* ``make repro`` from a fresh clone ends with ``reports/index.html`` and a registered model
  version per trained cell, whatever the committed ``dvc.lock`` says, and leaves git clean;
* a scheduled Prefect deployment run (``musicrep serve``) completes, with a task run per cell
  and the pipeline's log lines stored with the run.

The default tier holds the reduced forms (seconds); ``-m slow`` walks each journey whole.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import pytest
import yaml

from tests.conftest import tiny_overrides
from tests.helpers import flows_server_command, free_port, mlflow_ui_command, serving, stop

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.journey


def _git_env() -> dict[str, str]:
    return {**os.environ, **{f"GIT_{who}_{what}": "t" for who in ("AUTHOR", "COMMITTER") for what in ("NAME", "EMAIL")}}


def _run(cmd: list[str], cwd: Path, timeout: int = 1200, env: dict | None = None) -> subprocess.CompletedProcess:
    res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env or _git_env())
    assert res.returncode == 0, f"{' '.join(cmd)}: {res.stdout[-3000:]}{res.stderr[-3000:]}"
    return res


# --- make repro -----------------------------------------------------------------------------------


def test_the_report_stage_declares_a_stamp_that_dvc_rebuilds_when_missing() -> None:
    """Reduced form: the report stage has an output (so a fresh clone runs it), uncached and out of the run cache."""
    from pipeline.config.params import load_params
    from pipeline.core.paths import REPORT_STAMP
    from pipeline.orchestration.dag import dvc_stages

    stage = dvc_stages(load_params(REPO / "params.yaml"))["report"]
    assert stage["outs"] == [{f"reports/{REPORT_STAMP}": {"cache": False, "persist": True}}]
    committed = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["report"]
    assert committed["outs"] == stage["outs"]


def test_the_report_stamp_holds_nothing_run_specific(tmp_path: Path) -> None:
    """The stamp's hash goes into dvc.lock: two builds from the same metrics give the same bytes."""
    from pipeline.report.build import _write_stamp
    from pipeline.report.collect import Entry

    def entries(run_id: str) -> list[Entry]:
        e = Entry("synth_tags", "fcn", tmp_path / "m", 0)
        e.eval = {"test/roc_auc": 0.91, "test/loss": 0.3}
        e.run = {"run_id": run_id, "tags": {"train/seconds": run_id}}
        return [e]

    _write_stamp(entries("a" * 32), tmp_path / "one.json")
    _write_stamp(entries("b" * 32), tmp_path / "two.json")
    assert (tmp_path / "one.json").read_bytes() == (tmp_path / "two.json").read_bytes()
    cells = json.loads((tmp_path / "one.json").read_text())["cells"]
    assert cells[0]["test"]["test/roc_auc"] == 0.91 and cells[0]["task"] == "synth_tags"


def _reduced_clone(tmp_path: Path) -> Path:
    """A ``git clone`` of this repository whose params.yaml is a reduced grid (one task, two models, one epoch)."""
    clone = tmp_path / "clone"
    _run(["git", "clone", "-q", str(REPO), str(clone)], tmp_path)
    params = yaml.safe_load((clone / "params.yaml").read_text())
    over = tiny_overrides(models=["fcn", "crnn"], tasks=["synth_keywords"], n_clips=36)
    params.update({k: v for k, v in over.items() if k not in ("runtime",)})
    (clone / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    os.symlink(Path(sys.prefix), clone / ".venv")  # the test's own environment; `make -o` keeps make from installing
    (clone / ".git" / "info" / "exclude").write_text(".venv\n")
    _run([sys.executable, "-m", "pipeline", "dag", "--write"], clone)
    for old in ("metrics", "dvc.lock", "params.resolved.yaml"):  # the smoke grid's results are not this grid's
        _run(["git", "rm", "-rq", "--ignore-unmatch", old], clone)
    _run(["git", "add", "-A"], clone)
    _run(["git", "commit", "-qm", "reduced grid"], clone)
    return clone


def _make_repro(proj: Path, tmp_path: Path) -> str:
    env = {
        **_git_env(),
        "PYTHONPATH": str(proj),
        "MLFLOW_TRACKING_URI": f"sqlite:///{proj / 'mlflow.db'}",
        "MUSICREP_ARTIFACT_ROOT": (proj / "mlartifacts").as_uri(),
    }
    return _run(["make", "-o", ".venv/.installed", "repro", "JOBS=2"], proj, timeout=1800, env=env).stdout


def _registered_versions(proj: Path) -> dict[str, list[str]]:
    from mlflow import MlflowClient

    c = MlflowClient(f"sqlite:///{proj / 'mlflow.db'}")
    out: dict[str, list[str]] = {}
    for v in c.search_model_versions():
        out.setdefault(v.name, []).append(v.version)
    return out


@pytest.mark.slow
def test_clone_and_make_repro_end_with_the_report_the_registry_and_a_clean_git(tmp_path: Path) -> None:
    """Full form: clone + make repro; commit its lock; a second fresh clone + make repro is clean."""
    first = _reduced_clone(tmp_path)
    out = _make_repro(first, tmp_path)
    assert (first / "reports" / "index.html").is_file()
    assert "reports/index.html" in out and "make ui-mlflow" in out and "make ui-prefect" in out
    # one model per cell, and the champion of the one front-end family (fcn and crnn are both mel)
    assert sorted(_registered_versions(first)) == [
        "musicrep-synth_keywords-crnn",
        "musicrep-synth_keywords-family-mel",
        "musicrep-synth_keywords-fcn",
    ]
    _run(["git", "add", "-A"], first)
    _run(["git", "commit", "-qm", "results"], first)

    second = tmp_path / "second"
    _run(["git", "clone", "-q", str(first), str(second)], tmp_path)
    os.symlink(Path(sys.prefix), second / ".venv")
    (second / ".git" / "info" / "exclude").write_text(".venv\n")
    _make_repro(second, tmp_path)  # the lock says every stage is up to date; the outputs are missing
    assert (second / "reports" / "index.html").is_file()
    assert {n: len(v) for n, v in _registered_versions(second).items()} == {
        "musicrep-synth_keywords-crnn": 1,
        "musicrep-synth_keywords-family-mel": 1,
        "musicrep-synth_keywords-fcn": 1,
    }
    status = _run(["git", "status", "--porcelain"], second).stdout
    assert status == "", status


# --- a scheduled Prefect deployment run -----------------------------------------------------------


def test_deployment_parameters_validate_where_the_deployment_runs(tmp_path: Path) -> None:
    """Reduced form: ``serve``'s runner cloudpickles the flow by value into a fresh process, where only the
    globals its code uses exist; the parameter model must still build (the "Overrides" forward reference did not)."""
    code = (
        "import cloudpickle, importlib\n"
        "m = importlib.import_module('pipeline.flows.pipeline_flow')\n"
        "cloudpickle.register_pickle_by_value(m)\n"
        "f = cloudpickle.loads(cloudpickle.dumps(m.musicrep_pipeline))\n"
        "for o in ({}, None, {'runtime': {'threads': 1}}):\n"
        "    p = f.validate_parameters({'params_path': 'params.yaml', 'root': '.', 'overrides': o})\n"
        "    assert p['overrides'] == o, p\n"
        "print('ok')\n"
    )
    res = _run([sys.executable, "-c", code], tmp_path, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert res.stdout.strip().endswith("ok")


def test_cell_task_runs_are_named_after_the_cell() -> None:
    from pipeline.flows.pipeline_flow import cell_task

    assert cell_task.task_run_name.format(model="fcn", dataset="synth_tags", seed=0) == "cell fcn@synth_tags seed 0"


def _wait_for_deployment(client, name: str, serve: subprocess.Popen, timeout: float = 180):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            return client.read_deployment_by_name(f"musicrep-pipeline/{name}")
        except Exception:  # noqa: BLE001 - not registered yet (ObjectNotFound) or the API still starting
            assert serve.poll() is None, "musicrep serve exited early"
            time.sleep(1)
    raise AssertionError(f"deployment {name} was not registered in {timeout} s")


def _poll_until_final(client, run_id, timeout: float = 900):
    deadline = time.time() + timeout
    while time.time() < deadline:
        run = client.read_flow_run(run_id)
        if run.state is not None and run.state.is_final():
            return run
        time.sleep(2)
    raise AssertionError(f"flow run {run_id} did not finish in {timeout} s")


@pytest.mark.slow
def test_a_triggered_deployment_run_completes_with_cell_tasks_and_our_logs(tmp_path: Path) -> None:
    """Full form: flows.server, ``musicrep serve --cron``, a run triggered through Prefect's API, polled to Completed."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, LogFilter, LogFilterFlowRunId

    proj = tmp_path / "proj"
    proj.mkdir()
    params = {"profile": "smoke", **tiny_overrides(models=["fcn"], tasks=["synth_keywords"], n_clips=24)}
    params["robustness"] = {"enabled": False}
    (proj / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_API_URL": api, "PYTHONPATH": str(REPO)}
    env.pop("PREFECT_SERVER_EPHEMERAL_ENABLED", None)
    logs = tmp_path / "logs"
    logs.mkdir()
    server = ExitStack()
    serve = None
    try:
        server.enter_context(
            serving(flows_server_command(port), f"{api}/health", {**env, "PREFECT_API_URL": ""}, REPO, logs / "server.log", 180)
        )
        serve = subprocess.Popen(
            [sys.executable, "-m", "pipeline", "--project", str(proj), "serve", "--cron", "0 3 * * *", "--name", "nightly"],
            cwd=proj,
            env=env,
            stdout=(logs / "serve.log").open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings(updates={PREFECT_API_URL: api}):  # this process's client, on the server above
            with get_client(sync_client=True) as client:
                deployment = _wait_for_deployment(client, "nightly", serve)
                assert [s.schedule.cron for s in deployment.schedules] == ["0 3 * * *"]
                run = client.create_flow_run_from_deployment(deployment.id)
                final = _poll_until_final(client, run.id)
                assert final.state.is_completed(), (final.state, (logs / "serve.log").read_text()[-3000:])
                tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id])))
                lines = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run.id])))
        names = {t.name: t.state.type.value for t in tasks}
        assert names.get("cell fcn@synth_keywords seed 0") == "COMPLETED", names
        assert names.get("report") == "COMPLETED", names
        ours = [line.message for line in lines if line.name.startswith("pipeline.")]
        assert any("evaluated synth_keywords/fcn" in m for m in ours), [line.message for line in lines]
        assert (proj / "reports" / "index.html").is_file()
    finally:
        stop(serve)  # serve before the server (docs/spec.md §10.4)
        server.close()
        shutil.rmtree(proj / "data", ignore_errors=True)


# --- a --set try-out ------------------------------------------------------------------------------


def _tracked_project(tmp_path: Path) -> Path:
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "params.yaml").write_text("profile: smoke\n")
    (proj / "dvc.yaml").write_text("stages: {}\n")
    return proj


def test_a_result_changing_set_is_refused_where_dvc_tracks_the_outputs(tmp_path: Path) -> None:
    """The try-out of the issue: refused in one sentence naming ``dvc exp run -S``, exit 2, nothing written."""
    proj = _tracked_project(tmp_path)
    cmd = [sys.executable, "-m", "pipeline", "--project", str(proj), "--set", "train.epochs=1", "--set", "grid.models=[fcn]"]
    res = subprocess.run([*cmd, "flow"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2, res.stderr
    line = res.stderr.strip()
    assert "\n" not in line and "dvc exp run -S ++train.epochs=1 -S '++grid.models=[fcn]'" in line, line
    assert sorted(p.name for p in proj.iterdir()) == ["dvc.yaml", "params.yaml"]


def test_run_time_sets_stay_allowed_and_never_reach_the_tracked_values(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from pipeline.cli.main import app
    from pipeline.config.project import Project, refuse_tracked_tryout

    proj = _tracked_project(tmp_path)
    result = CliRunner().invoke(app, ["--project", str(proj), "--set", "runtime.num_threads=1", "params", "--resolve"])
    assert result.exit_code == 0, result.output
    resolved = yaml.safe_load((proj / "params.resolved.yaml").read_text())
    assert resolved["runtime"]["num_threads"] != 1  # the profile's value: a run-time --set is not tracked
    for command in ("train", "cell", "report", "serve"):
        refuse_tracked_tryout(Project(proj, {"runtime": {"device": "cpu"}, "flow": {"max_workers": 1}}), command)
    (proj / "dvc.yaml").unlink()  # a folder DVC does not track: try-outs write where they like
    refuse_tracked_tryout(Project(proj, {"train": {"epochs": 1}}), "train")


# --- MLflow as a researcher reads it --------------------------------------------------------------


def test_a_training_run_is_named_per_cell_with_run_time_settings_as_tags(tmp_path) -> None:
    """Reduced form of the MLflow journey: what a cell's run holds (the full form reads a server over REST)."""
    from pipeline.config.params import load_params
    from pipeline.tracking.runs import TrainingRun

    params = load_params(REPO / "params.yaml")
    runs = [TrainingRun("journey_task", "fcn", params, seed=seed, root=tmp_path) for seed in (0, 1)]
    for r in runs:
        r.end()
    got = [r.client.get_run(r.run_id) for r in runs]
    assert [g.info.run_name for g in got] == ["fcn · seed 0", "fcn · seed 1"]
    for g in got:
        assert not [k for k in g.data.params if k.startswith(("runtime.", "flow."))], sorted(g.data.params)
        assert g.data.tags["runtime.device"] == params.runtime.device and g.data.tags["model"] == "fcn"
        assert "train.epochs" in g.data.params


def _get_json(url: str, body: dict | None = None) -> dict:
    """GET ``url``, or POST ``body`` as JSON (MLflow's ``runs/search`` is a POST)."""
    import urllib.request

    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"} if data else {})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


@pytest.mark.slow
def test_an_mlflow_server_started_as_the_readme_says_shows_the_cells_runs(tmp_path: Path) -> None:
    """Full form: two seeds of one cell, then `mlflow ui` on the project's store, read over REST."""
    proj = tmp_path / "proj"
    proj.mkdir()
    params = {"profile": "smoke", **tiny_overrides(models=["fcn"], tasks=["synth_keywords"], n_clips=24)}
    params["grid"]["seeds"] = [0, 1]
    (proj / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MUSICREP_ARTIFACT_ROOT")}
    env["PYTHONPATH"] = str(REPO)
    musicrep = [sys.executable, "-m", "pipeline", "--project", str(proj)]
    for args in (
        ["download", "synth_keywords"],
        ["segment", "synth_keywords"],
        *(["cell", "synth_keywords", "fcn", "--seed", s] for s in "01"),
    ):
        _run([*musicrep, *args], proj, timeout=900, env=env)
    port = free_port()
    server_env = {**env, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with serving(mlflow_ui_command(port, proj / "mlflow.db"), f"http://127.0.0.1:{port}/health", server_env, timeout=180):
        api = f"http://127.0.0.1:{port}/api/2.0/mlflow"
        exp = _get_json(f"{api}/experiments/get-by-name?experiment_name=synth_keywords")["experiment"]
        runs = _get_json(f"{api}/runs/search", {"experiment_ids": [exp["experiment_id"]], "max_results": 50})["runs"]
        names = sorted(r["info"]["run_name"] for r in runs)
        assert names == ["fcn · seed 0", "fcn · seed 1"], names
        for r in runs:
            metrics = {m["key"] for m in r["data"].get("metrics", [])}
            assert {"test/accuracy", "test/accuracy_ci_low", "test/accuracy_ci_high"} <= metrics, metrics
            params = {p["key"] for p in r["data"].get("params", [])}
            assert params and not [k for k in params if k.startswith(("runtime.", "flow."))], params
            tags = {t["key"] for t in r["data"].get("tags", [])}
            assert "runtime.device" in tags


def test_the_primary_metric_is_logged_with_its_interval() -> None:
    import numpy as np

    from pipeline.evaluation.evaluate import primary_interval

    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 60)
    scores = rng.random((60, 4))
    scores[np.arange(30), y[:30]] += 1.0  # half the clips right
    ci = primary_interval("single", y, scores)
    accuracy = float((scores.argmax(1) == y).mean())
    assert set(ci) == {"test/accuracy_ci_low", "test/accuracy_ci_high"}
    assert ci["test/accuracy_ci_low"] < accuracy < ci["test/accuracy_ci_high"]


# --- the report's first screen in a browser --------------------------------------------------------

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def chromium(tmp_path: Path, *args: str, timeout: int = 120) -> str:
    """Run Debian's headless ``chromium`` (skip with the reason where it is not installed); its stdout."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("headless Chromium is not installed (Debian: apt-get install -y chromium; .ci/run tries it)")
    profile = tmp_path / "chromium-profile"
    res = subprocess.run(
        [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True, timeout=timeout
    )
    assert res.returncode == 0, res.stderr[-2000:]
    return res.stdout


def test_the_report_leads_with_the_family_summary_in_a_browser(tmp_path: Path) -> None:
    """Reduced form: the page from its template on a made-up context, as Chromium lays it out."""
    from pipeline.report.render import render_report
    from tests.test_report_page import _context

    summary = {
        "title": "synth_tags (synthetic)",
        "table": {
            "header": ["front-end family", "best variant", "clean ROC-AUC [95 % CI]", "white noise at 0 dB [95 % CI]"],
            "rows": [
                ["mel", "fcn", "0.900 [0.880, 0.920]", "0.700 [0.650, 0.750]"],
                ["harmonic", "hcnn", "0.910 [0.890, 0.930]", "0.800 [0.760, 0.840]"],
            ],
        },
        "difference": "hcnn − fcn (mel): +0.100 [+0.050, +0.150]",
        "sentence": "synth_tags: the claim holds here.",
    }
    later = {"convergence_legend": None, "still_improving": [], "transfer": None}  # keys test_report_page's context lacks
    _, html = render_report({**later, **_context(), "summary": [summary]})
    page = tmp_path / "index.html"
    page.write_text(html)
    dom = chromium(tmp_path, "--dump-dom", page.as_uri())
    text = re.sub(r"<[^>]+>", " ", dom)
    assert "front-end family" in text and "the claim holds here" in text
    assert dom.index("Summary: the front-end families") < dom.index('id="contents"') < dom.index("Comparison (clean test split)")
    chromium(tmp_path, "--window-size=1280,800", f"--screenshot={tmp_path / 'first-screen.png'}", page.as_uri())
    assert (tmp_path / "first-screen.png").stat().st_size > 10_000


# --- models say where they come from --------------------------------------------------------------


def test_a_model_says_where_it_comes_from() -> None:
    from pipeline.inference.predict import model_origin, synthetic_note

    trained = {"metadata": {"task": "synth_tags", "model_name": "musicnn", "seed": 0}}
    assert model_origin(trained) == {"kind": "trained", "task": "synth_tags", "model": "musicnn", "seed": 0, "synthetic": True}
    note = synthetic_note(trained, "synth_tags/musicnn")
    assert note is not None and "\n" not in note and "embedded synthetic dataset" in note
    assert synthetic_note({"metadata": {"task": "mtat", "model_name": "fcn", "seed": 0}}, "mtat/fcn") is None
    published = {
        "metadata": {"task": "sota-mtat", "pretrained": {"name": "sota:mtat/fcn", "source_url": "https://x", "sha256": "ab"}}
    }
    origin = model_origin(published)
    assert origin["kind"] == "published" and origin["source_url"] == "https://x" and origin["sha256"] == "ab"
