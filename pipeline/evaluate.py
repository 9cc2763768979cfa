"""``evaluate`` stage: test-split metrics with the seed's protocol (spec §5).

Each test clip is cut into ``evaluate.n_chunks`` chunks of the model's input length, the
activated chunk scores are averaged, and the task's metrics computed: macro ROC-AUC and
PR-AUC (+ per-sample and micro F1 at ``evaluate.threshold``) for multi-label tasks,
accuracy for single-label ones. Writes ``metrics/<task>/<model>/eval.json`` (read by
``dvc metrics show``), ``predictions.parquet`` (per-clip scores, for figures) and logs
``test/<metric>`` into the model's MLflow run.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from pipeline.checkpoint import load_model
from pipeline.data.shards import SegmentStore
from pipeline.inference import label_matrix, pick_device, predict_clips
from pipeline.io_utils import atomic_path, write_json
from pipeline.metrics import per_class_auc, task_metrics
from pipeline.paths import Layout
from pipeline.train import clip_loss

if TYPE_CHECKING:
    from pipeline.config import Params

log = logging.getLogger(__name__)


def evaluate_model(task: str, model_name: str, params: "Params", layout: Layout = Layout()) -> dict[str, float]:
    """Evaluate the packaged model ``models/<task>/<model_name>`` on the test split."""
    from pipeline import tracking

    t0 = time.time()
    device = pick_device(params.train.device)
    model, card = load_model(layout.model(task, model_name), map_location=device)
    model.to(device)
    store = SegmentStore(layout.segments(task))
    rows = store.split("test")
    multilabel = store.multilabel
    y = label_matrix(rows["labels"], store.labels, multilabel)
    scores = predict_clips(model, store.waves(rows), n_chunks=params.evaluate.n_chunks,
                           batch_size=params.evaluate.batch_size, device=device, bf16=params.train.bf16)
    kind = "multilabel" if multilabel else "single"
    metrics = task_metrics(kind, y, scores, params.evaluate.threshold)
    metrics["loss"] = clip_loss(scores, y, multilabel)
    metrics["n_clips"] = float(len(rows))
    seconds = time.time() - t0
    metrics["seconds"] = round(seconds, 3)
    out_dir = layout.metrics(task, model_name)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = {f"test/{k}": v for k, v in metrics.items()}
    result["params"] = float(sum(p.numel() for p in model.parameters() if p.requires_grad))
    write_json(out_dir / "eval.json", result)
    preds = pd.DataFrame({"clip_id": rows["clip_id"], "labels": rows["labels"]})
    preds["scores"] = list(scores.astype(np.float32))
    with atomic_path(out_dir / "predictions.parquet") as tmp:
        preds.to_parquet(tmp, index=False)
    if multilabel:
        write_json(out_dir / "per_class_auc.json", per_class_auc(y, scores, store.labels))
    tracking.log_to_run(card["metadata"].get("mlflow_run_id"), {k: v for k, v in result.items() if k.startswith("test/")})
    log.info("evaluated %s/%s on %d test clips: %s", task, model_name, len(rows),
             ", ".join(f"{k}={v:.4f}" for k, v in metrics.items() if k in ("roc_auc", "pr_auc", "accuracy", "f1_sample")))
    return result


def read_eval(task: str, model_name: str, layout: Layout = Layout()) -> dict[str, float] | None:
    import json

    path = layout.metrics(task, model_name) / "eval.json"
    return json.loads(path.read_text()) if path.exists() else None


__all__ = ["evaluate_model", "read_eval", "Path"]
