"""Real recordings end to end through the `musicrep` commands (FSDD from the ``fsdd_dir`` mirror of conftest.py).

- FSDD: download --mirror -> segment -> features -> train -> evaluate; accuracy well above
  chance (10 digits) on the standard split (takes 0-4 are test). Marked slow (minutes).
- A folder-per-class dataset of the user's own audio trains and evaluates with the same commands.
- A real `musicrep train` process killed with SIGKILL mid-run resumes to the same result.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
log = logging.getLogger(__name__)
FSDD_MODEL, FSDD_EPOCHS = "short_cnn", 10  # 0.907 test accuracy in docs/datasets.md (fcn at width 0.25: val ~0.75)


def _project(tmp: Path, overrides: dict) -> Path:
    proj = tmp / "proj"
    proj.mkdir(parents=True)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for key, value in overrides.items():
        params[key] = {**params.get(key, {}), **value} if isinstance(value, dict) and isinstance(params.get(key), dict) else value
    (proj / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return proj


def _musicrep(proj: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    res = subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=proj, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, f"musicrep {' '.join(args)} failed:\n{res.stdout[-2000:]}\n{res.stderr[-3000:]}"
    return res


@pytest.mark.slow
def test_fsdd_keyword_model_from_local_mirror(tmp_path: Path, fsdd_dir: Path) -> None:
    model = FSDD_MODEL
    proj = _project(
        tmp_path,
        {
            "grid": {"tasks": ["fsdd"], "models": [model]},
            "train": {"epochs": FSDD_EPOCHS, "width": 0.25},
            "evaluate": {"n_chunks": 1},
        },
    )
    _musicrep(proj, "download", "fsdd", "--mirror", str(fsdd_dir))
    for cmd in (["segment", "fsdd"], ["features", "fsdd"], ["train", "fsdd", model], ["evaluate", "fsdd", model]):
        _musicrep(proj, *cmd)
    result = json.loads((proj / "metrics" / "fsdd" / model / "seed0" / "eval.json").read_text())
    assert result["test/n_clips"] == 300
    log.info("FSDD %s test accuracy %.4f on %d clips", model, result["test/accuracy"], result["test/n_clips"])
    assert result["test/accuracy"] >= 0.85, result


def test_folder_per_class_trains_and_evaluates(tmp_path: Path, fsdd_dir: Path) -> None:
    """The user's own audio: folder-per-class, through the same commands."""
    audio = tmp_path / "my_audio"
    for digit in ("0", "1", "7"):
        (audio / f"digit_{digit}").mkdir(parents=True)
        for f in sorted((fsdd_dir / "recordings").glob(f"{digit}_*_1*.wav"))[:24]:
            shutil.copy(f, audio / f"digit_{digit}" / f.name)
    proj = _project(
        tmp_path,
        {
            "grid": {"tasks": ["folder"], "models": ["fcn"]},
            "train": {"epochs": 2, "width": 0.125, "steps_per_epoch": 4},
            "evaluate": {"n_chunks": 1},
            "datasets": {"folder": {"path": str(audio), "clip_seconds": 1.0}},
        },
    )
    for cmd in (
        ["download", "folder"],
        ["segment", "folder"],
        ["features", "folder"],
        ["train", "folder", "fcn"],
        ["evaluate", "folder", "fcn"],
    ):
        _musicrep(proj, *cmd)
    meta = json.loads((proj / "data" / "segments" / "folder" / "meta.json").read_text())
    assert meta["kind"] == "single" and sorted(meta["labels"]) == ["digit_0", "digit_1", "digit_7"]
    result = json.loads((proj / "metrics" / "folder" / "fcn" / "seed0" / "eval.json").read_text())
    assert 0 <= result["test/accuracy"] <= 1 and result["test/n_clips"] > 0


@pytest.mark.slow
def test_sigkill_during_training_then_resume_matches(tmp_path: Path) -> None:
    over = {
        "grid": {"tasks": ["synth_keywords"], "models": ["samplecnn"]},
        "datasets": {"synth_keywords": {"n_clips": 120, "clip_seconds": 1.0}},
        "train": {"epochs": 3, "width": 0.125},
        "evaluate": {"n_chunks": 1},
    }
    straight = _project(tmp_path / "a", over)
    killed = _project(tmp_path / "b", over)
    for proj in (straight, killed):
        for cmd in (["download", "synth_keywords"], ["segment", "synth_keywords"], ["features", "synth_keywords"]):
            _musicrep(proj, *cmd)
    _musicrep(straight, "train", "synth_keywords", "samplecnn")
    _musicrep(straight, "evaluate", "synth_keywords", "samplecnn")
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "train", "synth_keywords", "samplecnn"],
        cwd=killed,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    ckpt = killed / ".checkpoints" / "synth_keywords" / "samplecnn" / "seed0" / "last.pt"
    deadline = time.time() + 600
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert proc.poll() is None, "training finished before it could be killed; make it longer"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (killed / "models" / "synth_keywords" / "samplecnn" / "seed0" / "model.pt").exists()
    _musicrep(killed, "train", "synth_keywords", "samplecnn", "--resume")
    _musicrep(killed, "evaluate", "synth_keywords", "samplecnn")
    a = json.loads((straight / "metrics" / "synth_keywords" / "samplecnn" / "seed0" / "eval.json").read_text())
    b = json.loads((killed / "metrics" / "synth_keywords" / "samplecnn" / "seed0" / "eval.json").read_text())
    assert a["test/accuracy"] == b["test/accuracy"]
    assert a["test/loss"] == pytest.approx(b["test/loss"], rel=1e-5)
