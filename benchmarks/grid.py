"""Wall-time breakdown of one `make repro` run, from its own log.

`make repro` stamps its phases (``[repro] start|data-done|cells-done|report-done <time>``) and
every cell (``[repro] cell <stage> <start> <end>``), and each cell logs its in-process time
(``cell T/M seedK done in S s (train a s, evaluate b s, robustness c s)``). This script reads
such a log and reports:

- the phases: environment (before ``start``), data stages, the cells, the report;
- per cell: process wall (DVC + Python start-up + the work) and in-process work (train,
  evaluate, robustness); the difference is the fixed cost of the cell's processes (DVC's own
  start-up and hashing, Python imports, the MLflow store, writing outputs);
- how busy the cores were during the cell phase (sum of cell walls / (phase wall x jobs)).

    make repro 2>&1 | tee repro.log
    .venv/bin/python benchmarks/grid.py repro.log --jobs 2 --json grid.json
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks._machine import describe  # noqa: E402

STAMP = re.compile(r"^\[repro\] (start|data-done|cells-done|report-done) ([0-9.]+)$")
CELL = re.compile(r"^\[repro\] cell (\S+) ([0-9.]+) ([0-9.]+)$")
DONE = re.compile(
    r"cell (\S+)/(\S+) seed(\d+) done in ([0-9.]+) s \(train ([0-9.]+) s, evaluate ([0-9.]+) s, "
    r"robustness ([0-9.]+) s\)"
)
TIME = re.compile(r"^(real|user|sys)\s+(\d+)m([0-9.]+)s$")


def parse(text: str) -> dict:
    stamps: dict[str, float] = {}
    cells: dict[str, dict[str, float]] = {}
    work: dict[str, dict[str, float]] = {}
    totals: dict[str, float] = {}
    for line in text.splitlines():
        line = line.strip()
        if m := STAMP.match(line):
            stamps[m[1]] = float(m[2])
        elif m := CELL.match(line):
            cells[m[1]] = {"start": float(m[2]), "end": float(m[3]), "wall": float(m[3]) - float(m[2])}
        elif m := DONE.search(line):
            stage = f"cell-{re.sub(r'[^A-Za-z0-9_-]', '_', m[2])}@{m[1]}-{m[3]}"
            work[stage] = {"work": float(m[4]), "train": float(m[5]), "evaluate": float(m[6]), "robustness": float(m[7])}
        elif m := TIME.match(line):
            totals[m[1]] = int(m[2]) * 60 + float(m[3])
    return {"stamps": stamps, "cells": cells, "work": work, "totals": totals}


def breakdown(parsed: dict, jobs: int) -> dict:
    s, cells, work = parsed["stamps"], parsed["cells"], parsed["work"]
    out: dict = {"totals": parsed["totals"]}
    if {"start", "data-done", "cells-done", "report-done"} <= set(s):
        out["phases_s"] = {
            "data stages": s["data-done"] - s["start"],
            "cells": s["cells-done"] - s["data-done"],
            "report": s["report-done"] - s["cells-done"],
        }
        if "real" in parsed["totals"]:
            out["phases_s"]["environment and the rest"] = parsed["totals"]["real"] - (s["report-done"] - s["start"])
    rows = []
    for stage, c in sorted(cells.items()):
        w = work.get(stage)
        rows.append({"stage": stage, "wall": c["wall"], **(w or {}), "fixed": c["wall"] - w["work"] if w else None})
    out["cells"] = rows
    ran = [r for r in rows if r.get("work") is not None]
    if ran:
        out["cell_summary"] = {
            "cells_run": len(ran),
            "sum_wall_s": sum(r["wall"] for r in ran),
            "sum_work_s": sum(r["work"] for r in ran),
            "sum_train_s": sum(r["train"] for r in ran),
            "sum_evaluate_s": sum(r["evaluate"] for r in ran),
            "sum_robustness_s": sum(r["robustness"] for r in ran),
            "median_fixed_s": statistics.median(r["fixed"] for r in ran),
            "sum_fixed_s": sum(r["fixed"] for r in ran),
        }
        if "phases_s" in out:
            out["cell_summary"]["core_use"] = out["cell_summary"]["sum_wall_s"] / (out["phases_s"]["cells"] * jobs)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("log", type=Path)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    result = breakdown(parse(args.log.read_text(errors="replace")), args.jobs)
    for name, secs in result.get("phases_s", {}).items():
        print(f"{name:26s} {secs:8.1f} s")
    for key, value in result.get("cell_summary", {}).items():
        print(f"{key:26s} {value:8.2f}")
    if args.json:
        args.json.write_text(json.dumps({"machine": describe(), **result}, indent=2))


if __name__ == "__main__":
    main()
