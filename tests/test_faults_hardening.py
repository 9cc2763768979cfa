"""Fault suite, issue 28: locks on every stage, bounded downloads, params bombs, degenerate data, bad options.

Each test names the fault of issue 28 it covers; ``docs/reliability.md`` maps faults to these
tests. All fast (default tier).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from pipeline.core.errors import UserError
from pipeline.core.paths import Layout
from pipeline.orchestration import stages
from tests.test_faults import REPO, _cli, _hold_lock_in_subprocess, _tiny


# ----------------------------------------------------------------------------- 1: one lock per cell
def test_a_step_beside_a_running_cell_is_refused_naming_the_pid(tmp_path: Path, monkeypatch, capsys) -> None:
    """Fault 1: `train`, `evaluate` or `robustness` of a cell that `cell` is running exits 2, one line naming its pid."""
    proc = _hold_lock_in_subprocess(tmp_path, "cell", "synth_keywords", "fcn", "0")
    try:
        (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text())
        for step in ("train", "evaluate", "robustness"):  # refused, not queued (a queued step would train, or fail otherwise)
            code, lines = _cli(monkeypatch, capsys, "--project", str(tmp_path), step, "synth_keywords", "fcn", "--seed", "0")
            errors = [line for line in lines if line.startswith("error:")]
            assert code == 2 and len(errors) == 1 and "Traceback" not in "".join(lines), lines
            assert f"another `musicrep cell synth_keywords fcn 0` is running (pid {proc.pid})" in errors[0]
            assert "cell-synth_keywords-fcn-0.lock" in errors[0] and "--wait" in errors[0]
        assert not (tmp_path / "models").exists() and not (tmp_path / "metrics").exists()
    finally:
        proc.kill()
        proc.wait()


def test_the_cell_lock_is_one_lock_reentrant_across_the_steps(tmp_path: Path) -> None:
    """Fault 1: `cell` holds the cell lock and its steps take it again in-process; another thread is refused."""
    layout, p = Layout(tmp_path), _tiny()
    errors: list[BaseException] = []

    def other() -> None:
        try:
            with stages.cell_lock("train", "synth_keywords", "fcn", None, p, layout):
                pass
        except UserError as exc:
            errors.append(exc)

    with stages.cell_lock("cell", "synth_keywords", "fcn", 0, p, layout) as path:
        with stages.cell_lock("train", "synth_keywords", "fcn", 0, p, layout) as again:  # seed None = grid.seeds[0] = 0
            assert again == path
        t = threading.Thread(target=other)
        t.start()
        t.join()
    assert len(errors) == 1 and "`musicrep cell synth_keywords fcn --seed 0` is running" in str(errors[0])


def test_wait_queues_behind_the_holder(tmp_path: Path, monkeypatch) -> None:
    """Fault 1: with --wait (MUSICREP_LOCK_WAIT) a second run waits for the holder instead of failing."""
    from pipeline.core.locks import stage_lock

    proc = _hold_lock_in_subprocess(tmp_path, "cell", "synth_keywords", "fcn", "0")
    threading.Timer(1.0, proc.kill).start()
    monkeypatch.setenv("MUSICREP_LOCK_WAIT", "1")
    t0 = time.time()
    with stage_lock("cell", "synth_keywords", "fcn", 0, root=tmp_path):
        waited = time.time() - t0
    proc.wait()
    assert 0.5 < waited < 30


def test_export_refuses_to_overwrite_a_file_it_did_not_write(tmp_path: Path) -> None:
    """Fault 8: `export -o notes.onnx` keeps a file that export did not write (unless --force)."""
    from pipeline.inference.export import export_onnx

    out = tmp_path / "notes.onnx"
    out.write_text("my notes")
    with pytest.raises(UserError, match=r"already exists and was not written by `musicrep export`.*--force"):
        export_onnx(None, {}, out)  # refused before the model is touched
    assert out.read_text() == "my notes"


def test_a_killed_exports_temporary_folder_is_removed_by_the_next(tmp_path: Path, monkeypatch) -> None:
    """Fault 8: the temporary folder of a killed export (beside its output) goes with the next export to that file."""
    import torch

    from pipeline.inference import export

    left = tmp_path / ".m.onnx.tmp-killed"
    left.mkdir()
    (left / "dynamic.onnx").write_bytes(b"half")
    seen: list[Path] = []

    def boom(model, path, *a):
        seen.append(Path(path).parent)
        raise RuntimeError("stop here")

    monkeypatch.setattr(export, "_export_and_check", boom)
    net = torch.nn.Linear(1, 1)
    net.input_length, net.config = 16, type("C", (), {"sample_rate": 16000, "variant": "x"})()
    with pytest.raises(RuntimeError, match="stop here"):
        export.export_onnx(net, {}, tmp_path / "m.onnx")
    assert not left.exists() and seen and seen[0].parent == tmp_path and seen[0].name.startswith(".m.onnx.tmp-")
    assert not seen[0].exists()


# ----------------------------------------------------------------------------- 2: bounded downloads
class _Hostile:
    """A loopback HTTP server (127.0.0.1) that lies: ``announce`` bytes in ``Content-Length``, or an endless body."""

    def __init__(self, announce: int | None) -> None:
        import http.server

        announce_ = announce

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                self.send_response(200)
                if announce_ is not None:
                    self.send_header("Content-Length", str(announce_))
                self.end_headers()
                block = b"\0" * 65536
                try:
                    for _ in range(1 << 16):  # 4 GiB at most, an endless body as far as the client can tell
                        self.wfile.write(block)
                except OSError:
                    pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _bytes_under(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def test_a_mirror_announcing_10_gib_for_a_pinned_file_is_refused(tmp_path: Path, monkeypatch, capsys) -> None:
    """Fault 2: `pretrained fetch` from a mirror announcing 10 GiB for a file pinned at 3 MB: exit 2, < 1 MiB on disk."""
    server = _Hostile(announce=10 << 30)
    store = tmp_path / "store"
    monkeypatch.setenv("MUSICREP_PRETRAINED_DIR", str(store))
    monkeypatch.setenv("MUSICREP_DOWNLOAD_ATTEMPTS", "3")
    try:
        t0 = time.time()
        code, lines = _cli(monkeypatch, capsys, "pretrained", "fetch", "sota:mtat/fcn", "--mirror", server.url)
    finally:
        server.close()
    assert code == 2 and len(lines) == 1 and time.time() - t0 < 20, lines
    assert "announces 10,737,418,240 bytes, more than its pinned size of" in lines[0] and "nothing was kept" in lines[0]
    assert _bytes_under(store) < 1 << 20


@pytest.mark.parametrize("pinned", [True, False])
def test_an_endless_body_is_stopped_at_the_cap(tmp_path: Path, monkeypatch, pinned: bool) -> None:
    """Fault 2: a body without Content-Length that never ends stops at the pinned size, else at MUSICREP_DOWNLOAD_MAX_BYTES."""
    from pipeline.data.download import RemoteFile, RetryPolicy, fetch_file

    server = _Hostile(announce=None)
    monkeypatch.setenv("MUSICREP_DOWNLOAD_MAX_BYTES", "3e6")
    remote = RemoteFile(
        "big.bin", f"{server.url}/big.bin", sha256="0" * 64 if pinned else None, size=2_000_000 if pinned else None
    )
    try:
        t0 = time.time()
        with pytest.raises(UserError) as err:
            fetch_file(remote, tmp_path / "raw", "x", policy=RetryPolicy(attempts=2, backoff_s=0))
    finally:
        server.close()
    msg = str(err.value)
    assert time.time() - t0 < 20 and "\n" not in msg and "the server sent more than" in msg
    assert ("pinned size of 2,000,000 bytes" in msg) if pinned else ("MUSICREP_DOWNLOAD_MAX_BYTES" in msg and "3,000,000" in msg)
    assert _bytes_under(tmp_path) < 1 << 20, "the .part is removed"


# ----------------------------------------------------------------------------- 3: params bombs and runaway lists
def _params_check(monkeypatch, capsys, *sets: str) -> tuple[int, list[str]]:
    """``musicrep params --check --set S ...`` in-process: ``(exit code, stderr lines)``."""
    return _cli(monkeypatch, capsys, "params", "--check", *(arg for item in sets for arg in ("--set", item)))


def _alias_bomb(levels: int = 9, width: int = 9) -> str:
    """Anchors under an allowed free-form key (a variant's options), the bomb under ``grid.seeds``: 9**9 values."""
    chain = ["&s0 0"] + [f"&s{i} [" + ", ".join([f"*s{i - 1}"] * width) + "]" for i in range(1, levels)]
    return (
        "profile: smoke\nvariants:\n  v: {model: fcn, options: {a: [" + ", ".join(chain) + "]}}\n"
        "grid:\n  tasks: [synth_keywords]\n  models: [fcn]\n"
        f"  seeds: &s{levels} [" + ", ".join([f"*s{levels - 1}"] * width) + "]\n"
    )


def test_an_alias_bomb_under_an_allowed_key_is_refused_at_once(tmp_path: Path, monkeypatch, capsys) -> None:
    """Fault 3: `grid: {seeds: &s9 [*s8, ...]}` (9 levels x 9 aliases) is refused by `params --check` in < 5 s."""
    (tmp_path / "params.yaml").write_text(_alias_bomb())
    t0 = time.time()
    code, lines = _cli(monkeypatch, capsys, "--project", str(tmp_path), "params", "--check")
    assert time.time() - t0 < 5 and code == 2 and len(lines) == 1, lines
    assert "params.yaml is refused: its aliases" in lines[0] and "more than 100,000 values" in lines[0]
    t0 = time.time()
    code, lines = _params_check(
        monkeypatch,
        capsys,
        "grid.seeds=[&a [1,1,1,1,1,1,1,1,1,1], &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a], &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b], &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c], &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d], &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]]",
    )
    assert (
        time.time() - t0 < 5 and code == 2 and lines == [lines[0]] and lines[0].startswith("error: --set grid.seeds is refused")
    )


def test_ordinary_aliases_and_the_shipped_params_still_load() -> None:
    """Fault 3: the budget counts expanded values; a few aliases (and the shipped params.yaml) are fine."""
    from pipeline.config.params import load_yaml

    assert load_yaml("a: &x [1, 2]\nb: *x\nc: {<<: {k: 1}, j: 2}\n") == {"a": [1, 2], "b": [1, 2], "c": {"k": 1, "j": 2}}
    assert isinstance(load_yaml((REPO / "params.yaml").read_text()), dict)
    with pytest.raises(Exception, match="recursive alias"):
        load_yaml("a: &x [1, *x]\n")


def test_a_runaway_grid_list_is_capped_and_set_errors_name_set(tmp_path: Path, monkeypatch, capsys) -> None:
    """Faults 3 and 8: 151 seeds are refused naming the cap (not printing the list); a `--set` typo names `--set`."""
    monkeypatch.chdir(REPO)
    code, lines = _params_check(monkeypatch, capsys, "grid.seeds=[" + ",".join(map(str, range(151))) + "]")
    assert (
        code == 2 and len(lines) == 1 and "at most 100 items" in lines[0] and "(151 entries)" in lines[0] and len(lines[0]) < 400
    )
    assert lines[0].startswith("error: --set grid.seeds:")
    code, lines = _params_check(monkeypatch, capsys, "train.epoch=3")
    assert code == 2 and lines[0].startswith("error: --set train.epoch: unknown key") and "params.yaml" not in lines[0]


# ----------------------------------------------------------------------------- 4: one fetch per pretrained entry
def test_two_fetches_of_one_pretrained_model_wait_then_share_it(tmp_path: Path) -> None:
    """Fault 4: two concurrent `pretrained fetch` of one model: one packages it, the other waits and finds it."""
    from pipeline.models import pretrained
    from tests.test_pretrained import MIRROR

    if not (MIRROR / "manifest.json").exists():
        pytest.skip(f"no mirror of the published reference models at {MIRROR}")
    calls: list[str] = []
    real = pretrained._fetch_and_package

    def counted(*args):
        calls.append(threading.current_thread().name)
        time.sleep(0.5)  # the other fetch arrives while this one works
        return real(*args)

    results: dict[str, object] = {}

    def run(name: str) -> None:
        try:
            results[name] = pretrained.fetch("sota:mtat/fcn", MIRROR, tmp_path)
        except BaseException as exc:  # noqa: BLE001 - the test reports it
            results[name] = exc

    pretrained._fetch_and_package = counted
    try:
        threads = [threading.Thread(target=run, args=(n,), name=n) for n in ("a", "b")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        pretrained._fetch_and_package = real
    target = pretrained.package_dir("sota:mtat/fcn", tmp_path)
    assert results == {"a": target, "b": target} and len(calls) == 1
    assert pretrained.is_fetched("sota:mtat/fcn", tmp_path) and not list((tmp_path / "downloads").rglob("*.part"))


# ----------------------------------------------------------------------------- 5: degenerate data
def _one_class_folder(tmp_path: Path) -> Path:
    """An own dataset, folder per class, with a single class ``dog`` (6 one-second tones)."""
    import numpy as np
    import soundfile as sf

    root = tmp_path / "audio"
    (root / "dog").mkdir(parents=True)
    for i in range(6):
        t = np.arange(16000) / 16000
        sf.write(root / "dog" / f"bark{i}.wav", 0.3 * np.sin(2 * np.pi * (300 + 50 * i) * t), 16000)
    return root


def test_a_one_class_dataset_is_warned_by_segment_and_refused_by_probe_and_train(
    tmp_path: Path, monkeypatch, capsys, caplog
) -> None:
    """Fault 5: `segment` warns about a one-class dataset; `probe` and `train` refuse it in one line before any fitting."""
    import logging

    import torch

    from pipeline.config.params import load_params
    from pipeline.models.base import ModelConfig
    from pipeline.models.checkpoint import save_model
    from pipeline.models.zoo import build_model

    project = tmp_path / "project"
    project.mkdir()
    datasets = {"barks": {"kind": "folder", "path": str(_one_class_folder(tmp_path))}}
    (project / "params.yaml").write_text((REPO / "params.yaml").read_text())
    p = load_params(project / "params.yaml", overrides={"datasets": datasets})
    layout = Layout(project)
    stages.download("barks", p, layout)
    with caplog.at_level(logging.WARNING, logger="pipeline"):
        stages.segment("barks", p, layout)
    assert any("barks holds 1 class ('dog') in 6 clips" in r.getMessage() for r in caplog.records)

    torch.manual_seed(0)
    net = build_model(ModelConfig("fcn", 1, False, width=0.125, input_length=16000))
    packaged = save_model(net, tmp_path / "m" / "seed0", ["dog"], {"task": "barks", "model_name": "fcn"})
    import yaml

    (project / "params.yaml").write_text(
        yaml.safe_dump({**yaml.safe_load((REPO / "params.yaml").read_text()), "datasets": datasets})
    )
    code, lines = _cli(monkeypatch, capsys, "--project", str(project), "probe", "barks", "--model", str(packaged))
    errors = [line for line in lines if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and "one class ('dog')" in errors[0] and "at least 2" in errors[0], lines
    assert not (project / "metrics").exists(), "nothing embedded or written"
    with pytest.raises(UserError, match=r"barks cannot be used: its train split holds one class \('dog'\)"):
        stages.train("barks", "fcn", p, layout)
    assert not (project / "models").exists()


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("empty_test", "its test split is empty"),
        ("no_tag_contrast", "no tag of its test split"),
    ],
)
def test_degenerate_test_splits_are_refused_by_evaluate(tmp_path: Path, change: str, expected: str) -> None:
    """Fault 5: `evaluate` on an empty test split, or a tagging test split where no tag has both positives and negatives."""
    import pandas as pd

    from pipeline.data.split_checks import require_split

    rows = pd.DataFrame({"labels": [["a", "b"], ["a", "b"]], "split": ["test", "test"]})
    if change == "empty_test":
        rows = rows.iloc[:0]
    with pytest.raises(UserError, match=expected) as err:
        require_split(rows, "tags", "test", multilabel=True)
    assert "\n" not in str(err.value) and "re-run `musicrep segment tags`" in str(err.value)
    require_split(pd.DataFrame({"labels": [["a"], ["a", "b"]]}), "tags", "test", multilabel=True)  # tag b separates: fine


def test_evaluate_refuses_an_empty_test_split_before_loading_the_model(tmp_path: Path) -> None:
    """Fault 5: `evaluate` with no test clip exits with one line (no model needed to find out), not sklearn's ValueError."""
    import pandas as pd

    layout, p = Layout(tmp_path), _tiny()
    stages.download("synth_keywords", p, layout)
    seg = stages.segment("synth_keywords", p, layout)
    manifest = pd.read_parquet(seg / "manifest.parquet")
    manifest.loc[manifest["split"] == "test", "split"] = "train"
    manifest.to_parquet(seg / "manifest.parquet", index=False)
    with pytest.raises(UserError, match=r"synth_keywords cannot be used: its test split is empty"):
        stages.evaluate("synth_keywords", "fcn", p, layout)


# ----------------------------------------------------------------------------- 6: typed, ranged model options
@pytest.mark.parametrize(
    ("model", "options", "expected"),
    [
        ("sincnet+fcn", "{n_filters: 0}", "option 'n_filters' = 0: input should be greater than or equal to 1"),
        ("leaf+fcn", "{f_max: 1.0e9}", "option 'f_max' = '1.0e9': must be at most sample_rate / 2 = 8000 Hz"),
        ("sincnet+fcn", "{min_band_hz: -100}", "option 'min_band_hz' = -100: input should be greater than 0"),
        ("sincnet+fcn", "{kernel_size: 250}", "option 'kernel_size' = 250: must be odd"),
        ("mel+fcn", "{f_min: 5000, f_max: 4000}", "option 'f_min' = 5000.0 must be below 'f_max' = 4000.0"),
        ("harmonic+fcn", "{learn_bw: some}", "option 'learn_bw' = 'some': input should be 'only_Q', 'fix' or 'full'"),
    ],
)
def test_bad_model_options_fail_params_check(monkeypatch, capsys, model: str, options: str, expected: str) -> None:
    """Fault 6: out-of-range or mistyped front-end/back-end options fail `params --check` in one line naming --set."""
    monkeypatch.chdir(REPO)
    code, lines = _params_check(monkeypatch, capsys, f"variants.v={{model: {model}, options: {options}}}", "grid.models=[v]")
    assert code == 2 and len(lines) == 1 and expected in lines[0] and "--set variants.v" in lines[0], lines


def test_every_option_of_every_part_is_typed(tmp_path: Path) -> None:
    """Fault 6: each front-end and back-end declares a schema for exactly its options, and each option refuses garbage."""
    from pipeline.models.backends import BACKENDS
    from pipeline.models.frontends import FRONTENDS
    from pipeline.models.options import check_options, option_names

    checked = 0
    for name, part in {**FRONTENDS, **BACKENDS}.items():
        assert option_names(part.OPTION_SPEC) == part.OPTIONS, name
        for option in part.OPTIONS:
            with pytest.raises(ValueError, match=rf"option '{option}' = 'garbage'"):
                check_options({"part": part.OPTION_SPEC}, {option: "garbage"}, 16000)
            checked += 1
    assert checked >= 40
    typed = check_options({"f": FRONTENDS["sincnet"].OPTION_SPEC}, {"n_filters": "40", "min_band_hz": "1.0e2"}, 16000)
    assert typed == {"f": {"n_filters": 40, "min_band_hz": 100.0}}  # numeric strings coerced, then range-checked


def test_train_refuses_a_bad_option_before_building(tmp_path: Path) -> None:
    """Fault 6: `train` with sincnet `n_filters: 0` is one line (was MKL FFT error and a RUNNING MLflow run)."""
    from pipeline.config.params import grid_model
    from pipeline.models.build import build_for_task

    p = _tiny(variants={"v": {"model": "sincnet+fcn", "options": {"n_filters": 0}}})
    with pytest.raises(UserError, match=r"option 'n_filters' = 0: input should be greater than or equal to 1"):
        build_for_task(grid_model(p, "v"), "synth_keywords", n_classes=10, multilabel=False, clip_samples=16000)


# ----------------------------------------------------------------------------- 7: environment faults, unfinished runs
@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("ENOSPC", "there is no space left on the device holding /p/x.npy (No space left on device); free space there"),
        ("EACCES", "permission denied on /p/x.npy (Permission denied); fix its permissions"),
        ("EISDIR", "/p/x.npy is a folder where a file is expected (Is a directory); move the folder away"),
        ("EROFS", "/p/x.npy is on a read-only file system (Read-only file system); run the project from a writable folder"),
    ],
)
def test_environment_faults_map_to_one_sentence(code: str, expected: str) -> None:
    """Fault 7: an OS fault anywhere in the exception chain (e.g. under torch's RuntimeError) names the path and the fix."""
    import errno
    import os

    from pipeline.core.errors import environment_error

    number = getattr(errno, code)
    try:
        try:
            raise OSError(number, os.strerror(number), "/p/x.npy")
        except OSError as inner:
            raise RuntimeError("PytorchStreamWriter failed writing file") from inner
    except RuntimeError as exc:
        mapped = environment_error(exc)
    assert mapped is not None and str(mapped).startswith(expected) and "\n" not in str(mapped)
    assert environment_error(ValueError("a bug")) is None


def test_a_locked_mlflow_store_is_one_sentence() -> None:
    """Fault 7: SQLite's `database is locked` (under MLflow's and SQLAlchemy's wrappers) names the store and the fix."""
    import sqlite3

    from pipeline.core.errors import environment_error

    try:
        try:
            raise sqlite3.OperationalError("database is locked")
        except sqlite3.OperationalError as inner:
            raise RuntimeError("(sqlite3.OperationalError) database is locked [SQL: INSERT ...]") from inner
    except RuntimeError as exc:
        mapped = environment_error(exc)
    assert mapped is not None and "is locked by another process" in str(mapped) and "tracking server" in str(mapped)


def test_disk_full_during_segment_is_exit_2_and_leaves_no_partial_output(tmp_path: Path, monkeypatch, capsys) -> None:
    """Fault 7: ENOSPC while `segment` writes: one line with the path and the fix, exit 2, its temporary folder removed."""
    import errno
    import os

    from pipeline.data import segment as seg

    layout = Layout(tmp_path)
    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text())
    stages.download("synth_keywords", _tiny(), layout)
    real = seg._ShardWriter.__init__

    def full_disk(self, out_dir, shard_mb):
        real(self, out_dir, shard_mb)
        (Path(out_dir) / "shard-00000.npy").write_bytes(b"half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(Path(out_dir) / "shard-00000.npy"))

    monkeypatch.setattr(seg._ShardWriter, "__init__", full_disk)
    code, lines = _cli(monkeypatch, capsys, "--project", str(tmp_path), "segment", "synth_keywords")
    errors = [line for line in lines if line.startswith("error:")]
    assert (
        code == 2 and len(errors) == 1 and "no space left on the device holding" in errors[0] and "shard-00000.npy" in errors[0]
    )
    assert "please report it" not in errors[0]
    assert not [p for p in layout.segments("synth_keywords").parent.iterdir() if "partial" in p.name], "partial output removed"


def test_a_failed_or_interrupted_training_ends_its_mlflow_run() -> None:
    """Fault 7: an error in training ends the MLflow run FAILED, an interrupt KILLED (never left RUNNING)."""
    from pipeline.tracking.runs import ended_on_failure

    class Run:
        run_id = "r1"
        status: list[str] = []

        def end(self, status: str) -> None:
            self.status.append(status)

    run = Run()
    for exc, status in ((RuntimeError("MKL FFT error"), "FAILED"), (KeyboardInterrupt(), "KILLED")):
        with pytest.raises(type(exc)), ended_on_failure(run):
            raise exc
        assert run.status[-1] == status
    with ended_on_failure(run):
        pass
    assert run.status == ["FAILED", "KILLED"]


def test_compare_leaves_out_unfinished_runs(monkeypatch, caplog, tmp_path) -> None:
    """Fault 7: a run still training, killed or failed is not an empty row of `compare`; one warning names it."""
    import logging

    import pandas as pd

    from pipeline.report import compare

    runs = pd.DataFrame(
        {
            "task": ["t", "t", "t"],
            "model": ["fcn", "fcn", "crnn"],
            "seed": ["0", "1", "0"],
            "status": ["FINISHED", "RUNNING", "FAILED"],
            "test/accuracy": [0.5, None, None],
        }
    )
    monkeypatch.setattr(compare, "runs_table", lambda root, tasks=None: runs)
    with caplog.at_level(logging.WARNING, logger="pipeline.report.compare"):
        table = compare.compare_table(tmp_path)
    assert table[["task", "model", "n_seeds"]].to_dict("records") == [{"task": "t", "model": "fcn", "n_seeds": 1}]
    assert any(
        "leaves out 2 unfinished runs: t/fcn seed1 (RUNNING), t/crnn seed0 (FAILED)" in r.getMessage() for r in caplog.records
    )


# ----------------------------------------------------------------------------- 8: the split-hash warning
@pytest.mark.parametrize("with_split_column", [False, True])
def test_the_split_hash_warning_only_where_the_split_is_hashed(tmp_path: Path, caplog, with_split_column: bool) -> None:
    """Fault 8: files outside the CSV's folder warn that their split is hashed only when it is (no split column)."""
    import logging

    import pandas as pd

    from pipeline.config.params import load_params
    from pipeline.data.registry import get_source

    audio = _one_class_folder(tmp_path) / "dog"
    rows = [{"path": str(f), "labels": "dog" if i % 2 else "cat"} for i, f in enumerate(sorted(audio.glob("*.wav")))]
    if with_split_column:
        for i, row in enumerate(rows):
            row["split"] = ("train", "train", "val", "test")[i % 4]
    (tmp_path / "csvs").mkdir()
    pd.DataFrame(rows).to_csv(tmp_path / "csvs" / "labels.csv", index=False)
    p = load_params(
        REPO / "params.yaml",
        overrides={"datasets": {"mine": {"kind": "folder", "labels_csv": str(tmp_path / "csvs" / "labels.csv")}}},
    )
    with caplog.at_level(logging.WARNING, logger="pipeline.data.sources.folder"):
        get_source("mine", p).fetch(tmp_path / "raw", p)
    warned = any("their split is hashed from the absolute path" in r.getMessage() for r in caplog.records)
    assert warned is not with_split_column
