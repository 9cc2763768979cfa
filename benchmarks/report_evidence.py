"""The report's evidence phase (bootstrap intervals over test clips) with the old and the new AUC.

Builds a scratch project over already segmented datasets (``--data``: a project root whose
``data/segments/`` holds the grid's tasks, e.g. after ``benchmarks/bf16_cells.py``) with every
grid model's packaged card, ``predictions.parquet`` and ``robustness_scores.parquet`` for seed
0; the scores are random, nudged towards the labels (the statistics' cost depends on the shapes:
test clips x classes x robustness points, not on the values). Then times the report's
``_evidence`` (accuracy intervals, robustness intervals, harmonic paired differences) with the
macro ROC-AUC of :mod:`pipeline.evaluation.stats` and with the rank-sum statistic it replaced, alternating
the two ``--rounds`` times, and checks that both give the same tables.

    .venv/bin/python benchmarks/report_evidence.py --data /tmp/cells --rounds 2
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.config.params import load_params  # noqa: E402
from pipeline.core.paths import Layout  # noqa: E402
from pipeline.data.shards import SegmentStore  # noqa: E402
from pipeline.evaluation import stats  # noqa: E402
from pipeline.models.grid import grid_models  # noqa: E402
from pipeline.models.inference import label_matrix  # noqa: E402
from tests.test_stats_auc import rank_sum_auc  # noqa: E402

log = logging.getLogger("report_evidence")


def build(root: Path, data: Path, params) -> None:
    """Cards, predictions and robustness scores of every grid cell (seed 0) under ``root``."""
    (root / "data").symlink_to(data.resolve() / "data")
    layout = Layout(root)
    rng = np.random.default_rng(0)
    points = [(p, float(level)) for p, levels in params.robustness.grid.items() for level in levels]
    for task in params.grid.tasks:
        store = SegmentStore(layout.segments(task))
        rows = store.split("test")
        y = label_matrix(rows["labels"], store.labels, store.multilabel)
        onehot = y if store.multilabel else np.eye(len(store.labels))[y]
        for model in grid_models(params):
            mdir = layout.model(task, model, 0)
            mdir.mkdir(parents=True)
            (mdir / "model.json").write_text(json.dumps({"labels": list(store.labels)}))
            out = layout.metrics(task, model, 0)
            out.mkdir(parents=True)

            def noisy(onehot: np.ndarray = onehot) -> np.ndarray:
                return (rng.random(onehot.shape) + 0.5 * onehot).astype(np.float32)

            ids = rows["clip_id"].astype(str).tolist()
            pd.DataFrame({"clip_id": ids, "labels": list(rows["labels"]), "scores": list(noisy())}).to_parquet(
                out / "predictions.parquet", index=False
            )
            recs = [
                {"perturbation": p, "level": level, "clip_id": c, "scores": s}
                for p, level in points
                for c, s in zip(ids, noisy())
            ]
            pd.DataFrame(recs).to_parquet(out / "robustness_scores.parquet", index=False)


def _tables(evidence: dict) -> str:
    return json.dumps(
        {k: {t: v.to_json() if hasattr(v, "to_json") else str(v) for t, v in d.items()} for k, d in evidence.items()}
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="project root with data/segments/<task>/")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from pipeline.report.build import _evidence

    params = load_params(REPO / "params.yaml")
    new_auc = stats._macro_auc
    times: dict[str, list[float]] = {"rank-sum (before)": [], "counted (after)": []}
    outputs: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        build(Path(tmp), args.data, params)
        layout = Layout(Path(tmp))
        for _ in range(args.rounds):
            for label, fn in (("rank-sum (before)", rank_sum_auc), ("counted (after)", new_auc)):
                stats._macro_auc = fn
                t = time.perf_counter()
                outputs[label] = _tables(_evidence(params, layout))
                times[label].append(time.perf_counter() - t)
    stats._macro_auc = new_auc
    for label, v in times.items():
        log.info("%-18s median %.1f s over %d rounds %s", label, statistics.median(v), len(v), [round(x, 1) for x in v])
    log.info("tables identical: %s", len(set(outputs.values())) == 1)


if __name__ == "__main__":
    main()
