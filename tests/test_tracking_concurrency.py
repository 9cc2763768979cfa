"""Grid cells start side by side (make repro runs two at once): a fresh MLflow SQLite store must
survive several processes opening it together (MLflow migrates the schema on first use)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_processes_opening_a_fresh_store_together_all_succeed(tmp_path: Path) -> None:
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}", "PYTHONPATH": str(REPO)}
    code = (
        f"from pipeline.tracking import runs as tracking; root = {str(tmp_path)!r}; c = tracking.client(root); "
        "print('experiment', tracking.experiment_id(c, 'synth_tags', root))"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    results = [p.communicate(timeout=300) + (p.returncode,) for p in procs]
    assert all(rc == 0 for _, _, rc in results), [err[-1500:] for _, err, rc in results if rc]
    assert len({out.split()[-1] for out, _, _ in results}) == 1  # one experiment, created once
