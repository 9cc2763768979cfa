"""The published MTAT taggers on ``corpus_tags``, zero-shot: ROC-AUC per mapped tag with intervals.

Reads what ``musicrep evaluate corpus_tags sota:mtat/MODEL --label-map MAP.json`` wrote
(``metrics/corpus_tags/sota-mtat/MODEL/seed0/cross/corpus_tags/predictions.parquet``: the mapped
labels and all 50 MTAT scores of every test clip) and prints, per model and per mapped tag, the
ROC-AUC of the MTAT tag's score against the corpus tag, with a 95 % bootstrap interval over the
test clips (:func:`pipeline.evaluation.metric_intervals.metric_intervals`).

    .venv/bin/python benchmarks/corpus_tags_sota.py --project /tmp/study --map mtat_map.json --models musicnn fcn crnn
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.data.tag_vocabularies import TAGS  # noqa: E402
from pipeline.evaluation.metric_intervals import metric_intervals  # noqa: E402


def per_tag(predictions: Path, mapping: dict[str, str], mtat_tags: list[str]) -> dict[str, str]:
    """``{"corpus tag -> MTAT tag": "auc [low, high]"}`` plus the macro over the mapped tags."""
    df = pd.read_parquet(predictions)
    targets = list(mapping.values())
    y = np.array([[t in set(labels) for t in targets] for labels in df["labels"]], dtype=np.int64)
    scores = np.stack(df["scores"].to_numpy())[:, [mtat_tags.index(t) for t in targets]]
    res = metric_intervals("multilabel", y, scores, [f"{k} → {v}" for k, v in mapping.items()])
    out = {name: f"{i.value:.3f} [{i.low:.3f}, {i.high:.3f}]" for name, i in res["per_tag"].items()}
    m = res["roc_auc"]
    out["macro"] = f"{m.value:.3f} [{m.low:.3f}, {m.high:.3f}]"
    out["positives / clips"] = f"{int(y.sum())} / {len(y)}"
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--project", type=Path, required=True)
    ap.add_argument("--map", type=Path, required=True, help="the --label-map JSON given to evaluate")
    ap.add_argument("--models", nargs="+", default=["musicnn", "fcn", "crnn"])
    args = ap.parse_args()
    mapping = json.loads(args.map.read_text())
    mtat_tags = list(TAGS["mtat"])  # the published MTAT heads' tag order
    table = {}
    for model in args.models:
        pred = args.project / "metrics/corpus_tags/sota-mtat" / model / "seed0/cross/corpus_tags/predictions.parquet"
        if pred.exists():
            table[f"sota:mtat/{model}"] = per_tag(pred, mapping, mtat_tags)
    print(pd.DataFrame(table).to_markdown())


if __name__ == "__main__":
    main()
