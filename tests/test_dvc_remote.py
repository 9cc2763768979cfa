"""A shared DVC remote (issue 13): a second clone with an empty cache pulls shards and models instead of recomputing.

A tiny project runs ``dvc repro``, pushes to a local-directory remote (``dvc remote add -d
shared DIR``, committed in ``.dvc/config``), and a ``git clone`` of it with no cache and no
outputs does ``dvc pull``; then ``dvc repro`` has only the report to build.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests import test_e2e

TASK = "synth_keywords"


def _run(cmd: list[str], cwd: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=test_e2e._git_env())
    assert res.returncode == 0, f"{' '.join(cmd)}: {res.stdout[-2000:]}{res.stderr[-2000:]}"
    return res


def test_second_clone_pulls_from_the_shared_remote_and_has_nothing_to_reproduce(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(test_e2e, "MODELS", ["fcn"])  # one cell keeps it short
    proj = test_e2e._project(tmp_path, [TASK])
    remote = tmp_path / "remote"
    _run(["dvc", "remote", "add", "-d", "shared", str(remote)], proj)
    _run(["dvc", "repro"], proj)
    with (proj / ".gitignore").open("a") as f:  # as in the repository: the report is built, not committed
        f.write("/reports\n")
    _run(["git", "add", "-A"], proj)
    _run(["git", "commit", "-qm", "repro"], proj)
    pushed = _run(["dvc", "push"], proj)
    assert remote.is_dir() and any(remote.rglob("*")), pushed.stdout

    clone = tmp_path / "clone"
    _run(["git", "clone", "-q", str(proj), str(clone)], tmp_path)
    outs = (
        f"data/segments/{TASK}/manifest.parquet",
        f"models/{TASK}/fcn/seed0/model.pt",
        f"metrics/{TASK}/fcn/seed0/predictions.parquet",
    )
    assert not (clone / ".dvc" / "cache").exists()  # an empty cache: only git-tracked files (.gitignore, eval.json)
    assert not any((clone / out).exists() for out in outs)
    pulled = _run(["dvc", "pull"], clone)
    for out in outs:
        assert (clone / out).is_file(), (out, pulled.stdout)
    assert list((clone / "data" / "features" / TASK).rglob("*.npy")), "feature shards not pulled"
    # the only stage left to run is the report: its declared stamp is uncached, so the clone lacks the
    # page and DVC builds it (issue 26); the data and the cells come from the remote
    status = _run(["dvc", "status", "--json"], clone)
    assert set(json.loads(status.stdout)) == {"report"}, status.stdout
    repro = _run(["dvc", "repro"], clone)
    assert repro.stdout.count("Running stage") == 1 and "Running stage 'report'" in repro.stdout, repro.stdout
    assert (clone / "reports" / "index.html").is_file()
    assert "up to date" in _run(["dvc", "status"], clone).stdout
