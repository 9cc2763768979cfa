"""Grid cells of the same model on two tasks, paired and interleaved: the before/after of a task swap.

Each ``musicrep cell TASK MODEL --no-resume`` (train, evaluate, robustness, from scratch) is one
child process, timed from outside: wall clock, and user + system CPU seconds from the kernel's
accounting of the finished child (``os.wait4``). The two tasks of a model run back to back, their
order alternating from model to model and round to round, so a drift of the machine's speed hits
both sides of a pair alike. The result is the ratio of sums (task B over task A) of wall and CPU,
with the load average before and after each run, since on a shared machine the wall follows the load.

    .venv/bin/python benchmarks/paired_cells.py --models fcn musicnn hcnn samplecnn \\
        --tasks synth_tags corpus_tags --json paired.json

Run it in a project whose data stages for both tasks are built (``dvc repro features`` with both in
``grid.tasks``). ``--set`` passes run-time settings on (default ``runtime.num_threads=1``, as
``make repro`` runs each cell); the cells' outputs are overwritten, so use a scratch clone.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import time
from pathlib import Path

log = logging.getLogger("paired_cells")


def run_cell(task: str, model: str, settings: list[str], nice: int) -> dict[str, object]:
    """Run one cell in a child process; its wall and CPU seconds, exit status and the load around it."""
    cmd = [shutil.which("musicrep") or "musicrep"]
    for setting in settings:
        cmd += ["--set", setting]
    cmd += ["cell", task, model, "--no-resume"]
    load_before = os.getloadavg()[0]
    start = time.monotonic()
    child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=lambda: os.nice(nice))
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.monotonic() - start
    return {
        "task": task,
        "model": model,
        "wall_s": round(wall, 1),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
        "exit": os.waitstatus_to_exitcode(status),
        "load_before": round(load_before, 1),
        "load_after": round(os.getloadavg()[0], 1),
    }


def ratio_of_sums(rows: list[dict[str, object]], before: str, after: str, key: str) -> float:
    """``sum(key over task after) / sum(key over task before)``."""
    total = {task: sum(float(r[key]) for r in rows if r["task"] == task) for task in (before, after)}
    return total[after] / total[before]


def main() -> None:
    """Parse the arguments, run the pairs, log each row and the ratios, optionally write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", required=True, help="grid variants, e.g. fcn hcnn leaf+short_cnn")
    parser.add_argument("--tasks", nargs=2, default=["synth_tags", "corpus_tags"], metavar=("BEFORE", "AFTER"))
    parser.add_argument("--rounds", type=int, default=1, help="pairs per model")
    parser.add_argument("--set", dest="settings", action="append", default=None, help="run-time KEY=VALUE")
    parser.add_argument("--nice", type=int, default=10, help="niceness of the cells")
    parser.add_argument("--json", type=Path, help="write the rows and ratios here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    settings = args.settings or ["runtime.num_threads=1"]
    rows: list[dict[str, object]] = []
    for round_ in range(args.rounds):
        for index, model in enumerate(args.models):
            order = args.tasks if (index + round_) % 2 == 0 else args.tasks[::-1]
            for task in order:
                rows.append(run_cell(task, model, settings, args.nice))
                log.info("%s", rows[-1])
    before, after = args.tasks
    result = {
        "rows": rows,
        "wall_ratio": round(ratio_of_sums(rows, before, after, "wall_s"), 3),
        "cpu_ratio": round(ratio_of_sums(rows, before, after, "cpu_s"), 3),
    }
    log.info("%s / %s: wall %.3f, CPU %.3f", after, before, result["wall_ratio"], result["cpu_ratio"])
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
