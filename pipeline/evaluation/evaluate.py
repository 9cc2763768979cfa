"""``evaluate`` stage: test-split metrics with the seed's protocol.

Each test clip is cut into ``evaluate.n_chunks`` chunks of the model's input length, the
activated chunk scores are averaged, and the task's metrics computed: macro ROC-AUC and
PR-AUC (+ per-sample and micro F1 at ``evaluate.threshold``) for multi-label tasks,
accuracy for single-label ones. Writes ``metrics/<task>/<model>/seed<k>/eval.json`` (read
by ``dvc metrics show``; only deterministic values, so ``dvc metrics diff`` shows real
changes; beside the numbers, the segment's ``split_source`` and ``vocabulary_source`` in words,
which ``dvc metrics show`` lists as text), ``predictions.parquet`` (per-clip scores, for figures and paired bootstrap
intervals) and logs ``test/<metric>`` into the model's MLflow run.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from pipeline.config.project import pretrained_mirror
from pipeline.core.io_utils import atomic_path, write_json
from pipeline.core.paths import Layout
from pipeline.core.task_kinds import kind_of
from pipeline.data.catalog import data_sources
from pipeline.data.shards import SegmentStore, select_clips
from pipeline.data.split_checks import require_split
from pipeline.evaluation.label_bridge import LabelBridge, load_for_scoring
from pipeline.evaluation.metrics import clip_loss, per_class_auc, primary_metric, task_metrics
from pipeline.evaluation.stats import clip_interval
from pipeline.models.checkpoint import load_model, read_run_id
from pipeline.models.inference import label_matrix
from pipeline.models.runtime import Runtime, resolve_runtime
from pipeline.models.stored_scoring import StoredClips
from pipeline.tracking import runs as tracking

if TYPE_CHECKING:
    from pipeline.config.params import Params

log = logging.getLogger(__name__)


def _score(model, store: SegmentStore, rows: pd.DataFrame, params: Params, runtime: Runtime) -> np.ndarray:
    """``(clips, classes)`` scores of ``rows`` with the evaluation protocol of ``params.evaluate``
    (chunks cut from the memory-mapped shards in DataLoader workers, :class:`StoredClips`)."""
    clips = StoredClips(
        store,
        rows,
        length=model.input_length,
        n_chunks=params.evaluate.n_chunks,
        batch_size=params.runtime.eval_batch_size,
        device=runtime.device,
        num_workers=params.runtime.num_workers,
    )
    return clips.predict(model, runtime.bf16_for(model.config.variant))


def _write_results(out_dir: Path, result: dict[str, float | str], clip_ids, labels, scores: np.ndarray) -> None:
    """``eval.json`` and ``predictions.parquet`` (per-clip labels and scores) into ``out_dir``, atomically."""
    write_json(out_dir / "eval.json", result)
    preds = pd.DataFrame({"clip_id": clip_ids, "labels": labels})
    preds["scores"] = list(scores.astype(np.float32))
    with atomic_path(out_dir / "predictions.parquet") as tmp:
        preds.to_parquet(tmp, index=False)


def evaluated_scores(out_dir: Path, clip_ids: list[str]) -> np.ndarray | None:
    """The clean scores :func:`evaluate_model` wrote into ``out_dir/predictions.parquet``, in the order of
    ``clip_ids`` (``(clips, classes)`` float32: the very numbers its metrics came from), or ``None`` when the
    file or one of the clips is missing (``evaluate.max_clips`` chose fewer clips than ``robustness.max_clips``).
    The clean point of a grid cell's ``robustness`` (:func:`pipeline.orchestration.stages.cell`)."""
    path = out_dir / "predictions.parquet"
    if not path.exists():
        return None
    preds = pd.read_parquet(path, columns=["clip_id", "scores"])
    by_id = dict(zip(preds["clip_id"].astype(str), preds["scores"]))
    if not clip_ids or any(str(c) not in by_id for c in clip_ids):
        return None
    return np.stack([np.asarray(by_id[str(c)], dtype=np.float32) for c in clip_ids])


def primary_interval(
    kind: str, y: np.ndarray, scores: np.ndarray, task: str | None = None, threshold: float = 0.1
) -> dict[str, float]:
    """``test/<primary>_ci_low`` and ``_ci_high``: the primary metric's 95 % bootstrap interval over test clips.

    The primary metric is the task's (:func:`pipeline.evaluation.metrics.primary_metric`: DCASE's
    per-sample F1 at ``threshold``). Logged to MLflow beside the metric (the runs table and compare
    view show it); ``eval.json``, a DVC output, keeps its keys.
    """

    name = primary_metric(kind, task)
    ci = clip_interval(kind, y, [scores], metric=name, threshold=threshold)
    return {f"test/{name}_ci_low": ci.low, f"test/{name}_ci_high": ci.high}


def evaluate_model(
    task: str, model_name: str, params: Params, layout: Layout, seed: int | None = None, runtime: Runtime | None = None
) -> dict[str, float]:
    """Evaluate the packaged model ``models/<task>/<model_name>/seed<k>`` on the test split.

    Args:
        task: dataset name the model was trained on.
        model_name: grid model name.
        params: validated params (``evaluate`` section, device).
        layout: project layout.
        seed: training seed of the cell (default: the first of ``grid.seeds``).
        runtime: device and bf16 resolved once by the caller (a grid cell); default resolved from ``params``.

    Returns:
        ``{"test/<metric>": value, ..., "params": n}`` as written to ``eval.json`` (which also holds the
        text keys of :func:`pipeline.data.catalog.data_sources`).
    """

    seed = params.grid.seeds[0] if seed is None else int(seed)
    store = SegmentStore(layout.segments(task))
    rows = select_clips(store.split("test"), params.evaluate.max_clips, params.seed)  # evaluate.max_clips (null: all)
    multilabel = store.multilabel
    require_split(rows, task, "test", multilabel)  # before the model is loaded
    runtime = runtime or resolve_runtime(params)
    model, card = load_model(layout.model(task, model_name, seed), map_location=runtime.device)
    model.to(runtime.device)
    y = label_matrix(rows["labels"], store.labels, multilabel)
    started = time.perf_counter()
    scores = _score(model, store, rows, params, runtime)
    seconds = time.perf_counter() - started  # a wall time: MLflow only, not eval.json (a DVC output)
    kind = kind_of(multilabel)
    metrics = task_metrics(kind, y, scores, params.evaluate.threshold)
    metrics["loss"] = clip_loss(scores, y, multilabel)
    metrics["n_clips"] = float(len(rows))
    out_dir = layout.metrics(task, model_name, seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = {f"test/{k}": v for k, v in metrics.items()}
    result["params"] = float(sum(p.numel() for p in model.parameters() if p.requires_grad))
    sources = data_sources(store.meta)
    log.info("%s: split from %s; vocabulary from %s", task, sources["split_source"], sources["vocabulary_source"])
    _write_results(out_dir, {**result, **sources}, rows["clip_id"], rows["labels"], scores)
    if multilabel:
        write_json(out_dir / "per_class_auc.json", per_class_auc(y, scores, store.labels))
    logged = {k: v for k, v in result.items() if k.startswith("test/")} | primary_interval(
        kind, y, scores, task, params.evaluate.threshold
    )
    tracking.log_to_run(
        read_run_id(layout.model(task, model_name, seed), card), {**logged, "test/seconds": seconds}, root=layout.root
    )
    log.info(
        "evaluated %s/%s seed%d on %d test clips: %s",
        task,
        model_name,
        seed,
        len(rows),
        ", ".join(f"{k}={v:.4f}" for k, v in metrics.items() if k in ("roc_auc", "pr_auc", "accuracy", "f1_sample")),
    )
    return result


def evaluate_cross(
    task: str,
    model_name: str,
    other: str,
    params: Params,
    layout: Layout,
    seed: int | None = None,
    label_map: dict[str, str] | None = None,
) -> dict[str, float]:
    """Evaluate the model trained on ``task`` on the test split of another dataset ``other``.

    ``model_name`` may be a published model (``sota:mtat/fcn``, :mod:`pipeline.models.pretrained`);
    ``task`` then only names where the results go. Labels are matched by name, or through ``label_map``
    (``{other's label: model's label}``, :class:`pipeline.evaluation.label_bridge.LabelBridge`): single-label,
    clips whose label the model does not know are left out and counted; multi-label, the metrics are
    computed over the shared labels only. Writes ``metrics/<task>/<model>/seed<k>/cross/<other>/eval.json``
    and ``predictions.parquet``, and logs ``cross/<other>/<metric>`` into the model's run.

    Raises:
        UserError: no shared label, or no test clip left after the mapping.
    """

    seed = params.grid.seeds[0] if seed is None else int(seed)
    runtime = resolve_runtime(params)
    # a published model: results under metrics/<task>/sota-<dataset>/<model>/
    model, card, model_name = load_for_scoring(task, model_name, layout, seed, runtime.device, pretrained_mirror(params=params))
    model.to(runtime.device)
    store = SegmentStore(layout.segments(other))
    bridge = LabelBridge.build(store.labels, card, label_map, dataset=other, model=f"{task}/{model_name}")
    rows, mapped, left_out = bridge.select(store.split("test"), what=f"{other} for {task}/{model_name}")
    scores = _score(model, store, rows, params, runtime)
    metrics = bridge.metrics(bridge.y(mapped), scores, params.evaluate.threshold)
    metrics["n_clips"] = float(len(rows))
    metrics["n_clips_left_out"] = float(left_out)
    metrics["n_labels_shared"] = float(len(bridge.shared))
    out_dir = layout.metrics(task, model_name, seed) / "cross" / other
    result = {f"cross/{other}/{k}": float(v) for k, v in metrics.items()}
    _write_results(out_dir, result, rows["clip_id"], mapped, scores)
    tracking.log_to_run(read_run_id(layout.model(task, model_name, seed), card), result, root=layout.root)
    log.info(
        "cross-dataset %s/%s seed%d on %s (%d clips, %d left out): %s",
        task,
        model_name,
        seed,
        other,
        len(rows),
        left_out,
        ", ".join(f"{k}={v:.4f}" for k, v in metrics.items() if k in ("roc_auc", "accuracy")),
    )
    return result


def read_eval(task: str, model_name: str, layout: Layout, seed: int = 0) -> dict[str, float] | None:
    path = layout.metrics(task, model_name, seed) / "eval.json"
    return json.loads(path.read_text()) if path.exists() else None


__all__ = ["evaluate_model", "evaluate_cross", "read_eval", "Path"]
