"""``musicrep compare`` on a project of N tracked runs: wall time of the command, end to end.

``--make DIR`` fills a project folder with the runs a smoke grid leaves (3 tasks x 11 models by
default), logged through the project's own tracking code: :class:`pipeline.tracking.runs.TrainingRun`
(every param, the environment tags), 8 epochs of ``train/`` and ``val/`` metrics, the
``test/`` metrics of the evaluate stage and the ``robust/`` points of the robustness stage.
The numbers are made up; the store, its rows and the queries are real. No model, no
predictions, so ``compare`` adds no bootstrap intervals (that part reads the cells' files).

``--time DIR`` runs ``musicrep --project DIR compare -f csv`` ``--repeats`` times in a child
process (``MLFLOW_TRACKING_URI`` pointing at DIR's store) and prints the wall seconds. Run it
with another checkout's code first on ``PYTHONPATH`` for a before/after ratio on one store::

    .venv/bin/python benchmarks/compare.py --make /tmp/cmp
    PYTHONPATH=/path/to/old/checkout .venv/bin/python benchmarks/compare.py --time /tmp/cmp
    .venv/bin/python benchmarks/compare.py --time /tmp/cmp --json /tmp/compare.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

TASKS = ("synth_tags", "synth_keywords", "synth_events")


def _env(project: Path) -> dict[str, str]:
    return {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{project / 'mlflow.db'}"}


def make(project: Path, models: list[str], epochs: int = 8) -> int:
    """Log ``len(TASKS) * len(models)`` finished runs into ``project``'s store; returns their number."""
    os.environ.update(_env(project))
    sys.path.insert(0, str(REPO))
    from pipeline.config.params import load_params
    from pipeline.tracking import runs as tracking

    params = load_params(REPO / "params.yaml")
    rng = random.Random(0)
    n = 0
    for task in TASKS:
        for model in models:
            run = tracking.TrainingRun(task, model, params, seed=0, tags={"device": "cpu", "n_params": "12345"}, root=project)
            for epoch in range(1, epochs + 1):
                run.log_epoch(
                    epoch, {"epoch": epoch, "train_loss": rng.random(), "val_loss": rng.random(), "val_roc_auc": rng.random()}
                )
            test = {f"test/{k}": rng.random() for k in ("roc_auc", "pr_auc", "f1_sample", "f1_micro", "accuracy", "loss")}
            tracking.log_to_run(run.run_id, {**test, "test/n_clips": 120.0, "test/seconds": 2.0}, root=project)
            robust = {
                f"robust/{p}/snr_{lv}/roc_auc": rng.random() for p in ("white_noise", "background_noise") for lv in (20, 10, 0)
            }
            tracking.log_to_run(run.run_id, robust, root=project)
            run.client.log_metric(run.run_id, "best/epoch", rng.randint(1, epochs))
            run.client.set_terminated(run.run_id, "FINISHED")
            n += 1
    return n


def time_compare(project: Path, repeats: int) -> list[float]:
    """Wall seconds of ``musicrep compare -f csv`` on ``project``, one child process per repeat."""
    cmd = [sys.executable, "-m", "pipeline", "--project", str(project), "compare", "-f", "csv"]
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=_env(project), cwd=project, capture_output=True, text=True, check=False)
        out.append(time.perf_counter() - t0)
        if proc.returncode != 0:
            raise SystemExit(f"compare failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    rows = proc.stdout.strip().count("\n")
    print(f"{rows} rows; wall s per run: {', '.join(f'{s:.2f}' for s in out)}; median {statistics.median(out):.2f}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--make", type=Path, help="create the project's runs in this folder")
    ap.add_argument("--time", type=Path, help="time `musicrep compare` on this folder")
    ap.add_argument(
        "--models", default="fcn,crnn,musicnn,samplecnn,samplecnn_se,hcnn,cnnsa,short_cnn,short_res,attention_rnn,gated_crnn"
    )
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", type=Path, help="write the timings here")
    args = ap.parse_args()
    if args.make:
        args.make.mkdir(parents=True, exist_ok=True)
        (args.make / "params.yaml").write_text((REPO / "params.yaml").read_text())
        t0 = time.perf_counter()
        n = make(args.make, args.models.split(","))
        print(f"logged {n} runs into {args.make} in {time.perf_counter() - t0:.1f} s")
    if args.time:
        seconds = time_compare(args.time, args.repeats)
        if args.json:
            sys.path.insert(0, str(REPO))
            from benchmarks._machine import describe

            args.json.write_text(json.dumps({"seconds": seconds, "machine": describe()}, indent=2))


if __name__ == "__main__":
    main()
