"""Smoke-grid cells trained and evaluated with ``train.bf16`` forced on or off, side by side.

Runs ``train`` + ``evaluate`` of the given ``task:model:seed`` cells with the project's
``params.yaml`` in a scratch project (``--root``; the data stages run there first when their
outputs are missing), once per ``--bf16`` setting, each setting in its own sub-project so the
models do not overwrite each other, and writes one JSON row per cell and setting: the test
metrics, the training seconds and the process CPU seconds. The committed ``metrics/`` of the
repository are never touched.

    .venv/bin/python benchmarks/bf16_cells.py --root /tmp/cells --bf16 on \\
        --cells synth_tags:fcn:0 synth_keywords:fcn:0 --json cells.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

log = logging.getLogger("bf16_cells")


def prepare(root: Path, tasks: set[str]) -> None:
    """Download, segment and feature-cache ``tasks`` under ``root/data`` unless already there."""
    from pipeline.config.params import load_params
    from pipeline.core.paths import Layout
    from pipeline.orchestration import stages

    params, layout = load_params(REPO / "params.yaml"), Layout(root)
    for task in sorted(tasks):
        if (layout.segments(task) / "manifest.parquet").exists():
            continue
        t = time.perf_counter()
        stages.download(task, params, layout)
        stages.segment(task, params, layout)
        stages.features(task, params, layout)
        log.info("prepared %s in %.1f s", task, time.perf_counter() - t)


def run_cell(root: Path, task: str, model: str, seed: int, bf16: str, threads: int) -> dict[str, object]:
    from pipeline.config.params import load_params
    from pipeline.core.paths import Layout
    from pipeline.orchestration import stages

    params = load_params(REPO / "params.yaml", overrides={"train": {"bf16": bf16}, "runtime": {"num_threads": threads}})
    sub = root / f"bf16-{bf16}"
    sub.mkdir(parents=True, exist_ok=True)
    if not (sub / "data").exists():
        (sub / "data").symlink_to(root / "data")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{sub / f'mlflow-{os.getpid()}.db'}"
    layout = Layout(sub)
    wall, cpu = time.perf_counter(), time.process_time()
    stages.train(task, model, params, layout, resume=False, seed=seed)
    train_s, train_cpu = time.perf_counter() - wall, time.process_time() - cpu
    metrics = stages.evaluate(task, model, params, layout, seed=seed)
    return {
        "task": task,
        "model": model,
        "seed": seed,
        "bf16": bf16,
        "train_s": train_s,
        "train_cpu_s": train_cpu,
        "cell_s": time.perf_counter() - wall,
        "metrics": metrics,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, required=True)
    ap.add_argument("--cells", nargs="+", required=True, help="task:model:seed")
    ap.add_argument("--bf16", nargs="+", default=["on", "off"], choices=["auto", "on", "off"])
    ap.add_argument(
        "--threads", type=int, default=0, help="torch threads per cell (runtime.num_threads; 0: torch default, as params.yaml)"
    )
    ap.add_argument("--json", type=Path, required=True, help="rows are appended as each cell finishes (JSON lines)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    cells = [(t, m, int(s)) for t, m, s in (c.split(":") for c in args.cells)]
    args.root.mkdir(parents=True, exist_ok=True)
    prepare(args.root, {t for t, _, _ in cells})
    for task, model, seed in cells:
        for bf16 in args.bf16:
            row = run_cell(args.root, task, model, seed, bf16, args.threads)
            log.info("%s/%s seed%d bf16 %s: %.1f s %s", task, model, seed, bf16, row["train_s"], row["metrics"])
            with args.json.open("a") as fh:
                fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
