"""Per-process fixed cost: CPU-seconds a fresh Python process pays before doing any work.

Each probe runs as a child process; its user+system CPU time comes from ``os.wait4`` (so
two busy cores do not distort it the way wall time would). Probes, alternating over
``--repeats`` rounds, each with the venv's bytecode and without it (``PYTHONPYCACHEPREFIX``
pointed at an empty folder: every module is compiled from source, as in a venv installed
without ``--compile-bytecode``):

- ``python``: the interpreter alone;
- ``cli --help``: ``musicrep --help`` (typer app, every command registered);
- ``cell imports``: what a grid cell imports (stages, train, evaluate, robustness, tracking,
  mlflow, torch, torchaudio);
- ``cell imports + optimiser step``: plus one Adam step (which imports ``torch._dynamo``);
- ``cell start``: plus opening the MLflow SQLite store of a project (one client).

    .venv/bin/python benchmarks/startup.py --repeats 3 --json /tmp/startup.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks._machine import describe  # noqa: E402

CELL_IMPORTS = (
    "import pipeline.orchestration.cell, pipeline.training.train, pipeline.evaluation.evaluate, pipeline.robustness.stage, "
    "pipeline.tracking.runs, mlflow, torch, torchaudio"
)
STEP = (
    "import torch; m = torch.nn.Linear(4, 2); o = torch.optim.Adam(m.parameters()); "
    "m(torch.zeros(2, 4)).sum().backward(); o.step()"
)
CLIENT = (
    "from pathlib import Path; from pipeline.tracking import runs as tracking; tracking.client(Path.cwd()).search_experiments()"
)

PROBES = {
    "python": [sys.executable, "-c", "pass"],
    "cli --help": [sys.executable, "-m", "pipeline", "--help"],
    "cell imports": [sys.executable, "-c", CELL_IMPORTS],
    "cell imports + optimiser step": [sys.executable, "-c", f"{CELL_IMPORTS}; {STEP}"],
    "cell start (+ MLflow store)": [sys.executable, "-c", f"{CELL_IMPORTS}; {STEP}; {CLIENT}"],
}


def run(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one child process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"probe failed: {' '.join(cmd)}")
    return usage.ru_utime + usage.ru_stime, wall


def first_line_seconds(cmd: list[str], env: dict[str, str]) -> float:
    """Wall seconds until the command writes its first line to stderr (its log)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    proc.stderr.readline()
    seconds = time.perf_counter() - t0
    proc.kill()
    proc.wait()
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--only", nargs="*", help="probe names (default: all)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    probes = {k: v for k, v in PROBES.items() if not args.only or k in args.only}
    with tempfile.TemporaryDirectory() as tmp:
        base = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "MLFLOW_TRACKING_URI": f"sqlite:///{tmp}/mlflow.db",
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "DO_NOT_TRACK": "true",
            "OMP_NUM_THREADS": "1",
        }
        subprocess.run([sys.executable, "-c", CLIENT], env=base, check=True, capture_output=True)  # create the store once
        envs = {
            "bytecode": base,
            "no bytecode": {**base, "PYTHONPYCACHEPREFIX": str(Path(tmp) / "empty-pycache"), "PYTHONDONTWRITEBYTECODE": "1"},
        }
        samples: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for _ in range(args.repeats):
            for name, cmd in probes.items():
                for mode, env in envs.items():
                    samples.setdefault((name, mode), []).append(run(cmd, env))
        # `musicrep train` logs "train TASK/MODEL: loading" before it imports torch: time to that line
        train_cmd = [sys.executable, "-m", "pipeline", "train", "synth_keywords", "fcn"]
        first = sorted(first_line_seconds(train_cmd, base) for _ in range(args.repeats))[args.repeats // 2]
    print(f"{'first log line of musicrep train':32s} {'bytecode':12s} {first:6.2f} s wall")
    rows = [{"probe": "first log line of musicrep train", "mode": "bytecode", "cpu_s": None, "wall_s": round(first, 3)}]
    for (name, mode), values in samples.items():
        cpu = sorted(v[0] for v in values)[len(values) // 2]
        wall = sorted(v[1] for v in values)[len(values) // 2]
        rows.append({"probe": name, "mode": mode, "cpu_s": round(cpu, 3), "wall_s": round(wall, 3)})
        print(f"{name:32s} {mode:12s} {cpu:6.2f} CPU-s {wall:6.2f} s wall")
    result = {"machine": describe(), "repeats": args.repeats, "results": rows}
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
