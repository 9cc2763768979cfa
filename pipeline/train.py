"""``train`` stage: fit one model on one task, resumable, tracked in MLflow.

- Device: CUDA with bf16 autocast when present (``train.device: auto``), else CPU.
- Determinism: the data order and crops of epoch ``e`` come from ``(seed, e)`` and the
  torch RNG is re-seeded at every epoch start, so a run resumed from the checkpoint of
  epoch ``e`` continues exactly as an uninterrupted run would (on the same device).
- Checkpoint after every epoch (``.checkpoints/<task>/<model>/last.pt``: weights,
  optimiser, history, best state, MLflow run id, and a fingerprint of params + data so a
  stale checkpoint is never resumed). ``--resume`` continues from it.
- Model selection: lowest validation loss (docs/spec.md §4); the best weights are packaged in
  ``models/<task>/<model>/`` (:mod:`pipeline.checkpoint`) with ``history.csv``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from pipeline import distributed
from pipeline.batches import CropBatches, EpochSampler, make_loader
from pipeline.data.shards import FeatureStore, SegmentStore
from pipeline.errors import UserError
from pipeline.inference import autocast_for, label_matrix, pick_device, predict_clips
from pipeline.io_utils import atomic_path, sha256_file, stable_hash
from pipeline.metrics import PRIMARY_METRIC, clip_loss, task_metrics
from pipeline.models.base import AudioModel
from pipeline.models.build import build_for_task
from pipeline.paths import Layout
from pipeline.schedules import lr_at

if TYPE_CHECKING:
    from pipeline.config import Params

log = logging.getLogger(__name__)
CHECKPOINT_VERSION = 1


# ----------------------------------------------------------------------------- model
def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))


# ----------------------------------------------------------------------------- data
def _feature_store_for(model: AudioModel, dataset: str, params: Params, layout: Layout) -> FeatureStore | None:
    if not (params.train.use_feature_cache and params.features.enabled):
        return None
    spec = model.frontend.cache_spec()
    if spec is None:
        return None
    from pipeline.features.cache import cache_dir_name, segments_key

    path = layout.features(dataset) / cache_dir_name(spec, segments_key(layout.segments(dataset)))
    if not (path / "index.parquet").exists():
        log.info("no feature cache at %s; computing the front-end on the fly", path)
        return None
    return FeatureStore(path)


# ----------------------------------------------------------------------------- optimisation
def make_optimizer(model: nn.Module, params: Params, phase: int = 0) -> torch.optim.Optimizer:
    """Adam / AdamW / SGD, or the paper's schedule (phase 0: Adam 1e-4; then SGD, docs/spec.md §4)."""
    t = params.train
    if t.optimizer == "paper" and phase > 0:
        lr = {1: 1e-3, 2: 1e-4}.get(phase, 1e-5)
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=t.weight_decay)
    if t.optimizer in ("adam", "paper"):
        return torch.optim.Adam(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
    if t.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=t.lr, momentum=0.9, nesterov=True, weight_decay=t.weight_decay)


def paper_phase(epoch: int, epochs: int) -> int:
    """Phase of the paper schedule at ``epoch`` (switch at 40 % of epochs, then +10 %, +10 %)."""
    frac = epoch / max(1, epochs)
    return 0 if frac < 0.4 else 1 if frac < 0.5 else 2 if frac < 0.6 else 3


def loss_fn(multilabel: bool) -> nn.Module:
    """BCE-with-logits (multi-label) or cross-entropy (single-label)."""
    return nn.BCEWithLogitsLoss() if multilabel else nn.CrossEntropyLoss()


# ----------------------------------------------------------------------------- checkpoints
def checkpoint_dir(layout: Layout, task: str, model_name: str, seed: int = 0) -> Path:
    return layout.checkpoints(task, model_name, seed)


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


_TRAINING_CODE = ("models", "features", "train.py", "batches.py", "chunking.py", "inference.py", "distributed.py")


def training_code_hash() -> str:
    """Hash of the source files that shape a training run (models, features, the loop).

    Part of the checkpoint fingerprint: a checkpoint written by other model or training code is
    not resumed, so a re-run after a code change (which is when DVC re-runs ``train``) trains
    from scratch instead of continuing stale weights.
    """
    root = Path(__file__).resolve().parent
    files = sorted(
        f for name in _TRAINING_CODE for f in ((root / name).rglob("*.py") if (root / name).is_dir() else [root / name])
    )
    return stable_hash([(f.relative_to(root).as_posix(), sha256_file(f)) for f in files])


def _load_checkpoint(path: Path, fingerprint: str) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        log.warning("ignoring unreadable checkpoint %s (%s); starting fresh", path, exc)
        return None
    if state.get("version") != CHECKPOINT_VERSION or state.get("fingerprint") != fingerprint:
        log.warning("checkpoint %s was made with other params, data or code; starting fresh", path)
        return None
    return state


# ----------------------------------------------------------------------------- stage
@dataclasses.dataclass
class TrainResult:
    model_dir: Path
    best_epoch: int
    best_val_loss: float
    val_metrics: dict[str, float]
    run_id: str | None
    seconds: float


def prepare_for_device(
    model: AudioModel, device: torch.device, compile_mode: str = "auto", features: bool = False
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Speed settings for ``device``; returns the training forward to call (maybe compiled).

    ``features``: the loop feeds cached front-end outputs, so the forward is
    ``model.forward_features`` (the back-end alone), else the whole model.

    On CUDA: ``cudnn.benchmark`` (input shapes are fixed per run) and ``channels_last`` for
    models with 2-D convolutions. ``compile_mode``: ``"on"`` wraps the model in
    ``torch.compile``; ``"auto"`` and ``"off"`` leave it eager (``auto`` stays eager until
    compile is measured faster on the GPUs we benchmark, see docs/benchmarks.md). CPU runs
    are untouched, so CPU results do not depend on these settings.
    """
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        if any(isinstance(m, nn.Conv2d) for m in model.modules()):
            model.to(memory_format=torch.channels_last)
    forward = model.forward_features if features else model
    if compile_mode == "on":
        return torch.compile(forward)
    return forward


def _use_mkldnn(model: AudioModel, choice: str) -> bool:
    """Whether to train with oneDNN convolutions on CPU: ``on``/``off``, or the variant's measured default."""
    if choice != "auto":
        return choice == "on"
    from pipeline.models.zoo import resolve_variant as resolve_registry

    try:
        _, spec = resolve_registry(model.config.variant)
    except ValueError:
        return True
    return spec.cpu_mkldnn and torch.backends.mkldnn.enabled


def epoch_seed_of(seed: int, epoch: int) -> int:
    """The seed of one epoch's data order, crops and dropout (same on resume)."""
    return seed * 100_003 + epoch


def train_model(
    task: str,
    model_name: str,
    params: Params,
    layout: Layout = Layout(),
    *,
    resume: bool = False,
    seed: int | None = None,
    on_epoch_end: Callable[[int], None] | None = None,
) -> TrainResult:
    """Train ``model_name`` on ``task`` (a segmented dataset) and package the best model.

    Args:
        task: dataset name (``data/segments/<task>/`` must exist).
        model_name: grid model name.
        params: validated params.
        layout: project layout.
        resume: continue from the last epoch checkpoint when it matches these params/data.
        seed: training seed (initialisation, data order, crops); default the first of
            ``grid.seeds``. The model goes to ``models/<task>/<model>/seed<k>/``.
        on_epoch_end: called with the 1-based epoch after its checkpoint is written
            (progress hooks; an exception it raises stops training like a kill would).
    """
    from pipeline import tracking, transfer
    from pipeline.checkpoint import save_model

    t0 = time.time()
    t = params.train
    seed = params.grid.seeds[0] if seed is None else int(seed)
    seed_everything(seed)
    if t.num_threads:
        torch.set_num_threads(t.num_threads)
    device = pick_device(t.device)
    rank, world_size = distributed.init(device)  # (0, 1) unless under torchrun
    device = distributed.local_device(device)
    store = SegmentStore(layout.segments(task))
    multilabel = store.multilabel
    labels = store.labels
    train_rows, val_rows = store.split("train"), store.split("val")
    if len(train_rows) == 0:
        raise UserError(f"{task} has no training clips; check the dataset's split files and re-run `musicrep segment {task}`.")
    if len(val_rows) == 0:
        val_rows = train_rows.iloc[: max(1, len(train_rows) // 10)]
        log.warning("%s has no validation split; validating on %d training clips", task, len(val_rows))
    clip_samples = int(np.median(store.manifest["n_samples"]))
    model = build_for_task(model_name, task, params, n_classes=len(labels), multilabel=multilabel, clip_samples=clip_samples)
    init_record = transfer.init_from_params(model, labels, params, model_name)  # pretrained init / freezing
    feats = _feature_store_for(model, task, params, layout)
    n_frames = model.frontend.n_frames(model.input_length) if feats is not None else None
    y_train = label_matrix(train_rows["labels"], labels, multilabel)
    y_val = label_matrix(val_rows["labels"], labels, multilabel)
    batches = CropBatches(
        store,
        train_rows,
        y_train.astype(np.float32) if multilabel else y_train,
        model.input_length,
        t.batch_size,
        feats,
        n_frames,
    )
    sampler = EpochSampler(len(batches), t.steps_per_epoch, rank=rank, world=world_size)
    loader = make_loader(batches, sampler, device, t.num_workers)
    val_waves = list(store.waves(val_rows))

    data_hash = store.meta.get("coverage", {}) and stable_hash(
        [store.meta["coverage"], store.manifest["source_sha256"].tolist()[:1000]]
    )
    fingerprint = stable_hash(
        {
            "params": params.model_dump(mode="json", include={"seed", "train", "features", "variants", "profile"}),
            "task": task,
            "model": model_name,
            "training_seed": seed,
            "data": data_hash,
            "config": dataclasses.asdict(model.config),
            "code": training_code_hash(),
        }
    )
    ckpt_path = layout.checkpoints(task, model_name, seed) / "last.pt"
    state = _load_checkpoint(ckpt_path, fingerprint) if resume else None
    model.to(device)
    forward = distributed.wrap(model, prepare_for_device(model, device, t.compile, features=feats is not None), device)
    criterion = loss_fn(multilabel)
    history: list[dict[str, float]] = []
    best = {"epoch": 0, "val_loss": math.inf, "state_dict": None, "val_metrics": {}}
    start_epoch, phase, run_id = 1, 0, None
    optimizer = make_optimizer(model, params, phase)
    if state is not None:
        model.load_state_dict(state["model"])
        phase = state["phase"]
        optimizer = make_optimizer(model, params, phase)
        optimizer.load_state_dict(state["optimizer"])
        history, best, run_id = state["history"], state["best"], state.get("run_id")
        start_epoch = state["epoch"] + 1
        log.info("resuming %s/%s seed %d from epoch %d", task, model_name, seed, state["epoch"])

    kind = "multilabel" if multilabel else "single"
    primary = PRIMARY_METRIC[kind]
    run = (
        None
        if rank
        else tracking.TrainingRun(
            task,
            model_name,
            params,
            run_id=run_id,
            seed=seed,
            tags={  # rank 0 logs
                "device": str(device),
                "variant": model.config.variant,
                "input_length": str(model.input_length),
                "feature_cache": feats.dir.name if feats is not None else "none",
                "data_hash": str(data_hash),
                "n_params": str(sum(p.numel() for p in model.parameters() if p.requires_grad)),
                "coverage": str(store.meta.get("coverage", {}).get("fraction")),
                **({"world_size": str(world_size)} if world_size > 1 else {}),
                **{f"init.{k}": v for k, v in init_record.items()},
            },
        )
    )
    run_id = run.run_id if run else run_id
    from pipeline.progress import EpochProgress

    non_blocking = device.type == "cuda"
    mkldnn = _use_mkldnn(model, t.mkldnn) if device.type == "cpu" else torch.backends.mkldnn.enabled
    with torch.backends.mkldnn.flags(enabled=mkldnn):  # scoped: the process's setting is restored after training
        for epoch in range(start_epoch, t.epochs + 1):
            if t.optimizer == "paper" and paper_phase(epoch - 1, t.epochs) != phase:
                phase = paper_phase(epoch - 1, t.epochs)
                if best["state_dict"] is not None:
                    model.load_state_dict(best["state_dict"])
                optimizer = make_optimizer(model, params, phase)
            torch.manual_seed(epoch_seed_of(seed, epoch))
            sampler.set_epoch_seed(epoch_seed_of(seed, epoch))
            model.train()
            loss_sum = torch.zeros((), device=device)
            steps = 0
            progress = EpochProgress(
                f"{task}/{model_name} seed{seed} epoch {epoch}/{t.epochs}", len(sampler), t.progress_seconds, log
            )
            try:
                for x, y in loader:
                    if t.lr_schedule != "constant":
                        rate = lr_at(t.lr_schedule, t.lr, (epoch - 1) * len(sampler) + steps, t.epochs * len(sampler))
                        for group in optimizer.param_groups:
                            group["lr"] = rate
                    x, y = x.to(device, non_blocking=non_blocking), y.to(device, non_blocking=non_blocking)
                    with autocast_for(device, t.bf16):
                        logits = forward(x)
                    loss = criterion(logits.float(), y)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    loss_sum += loss.detach()
                    steps += 1
                    progress.update(steps, len(x), loss_sum, steps)
            finally:
                progress.close()
            scores = predict_clips(
                model,
                val_waves,
                n_chunks=params.evaluate.n_chunks,
                batch_size=params.evaluate.batch_size,
                device=device,
                bf16=t.bf16,
            )
            val_loss = clip_loss(scores, y_val, multilabel)
            val_metrics = task_metrics(kind, y_val, scores, params.evaluate.threshold)
            train_loss = float(distributed.mean(loss_sum)) / steps if steps else math.nan  # averaged over the ranks
            record = {
                "epoch": epoch,
                "train_loss": train_loss,
                "val_loss": val_loss,
                **{f"val_{k}": v for k, v in val_metrics.items()},
            }
            history.append(record)
            improved = val_loss < best["val_loss"]
            if improved:
                best = {
                    "epoch": epoch,
                    "val_loss": val_loss,
                    "val_metrics": val_metrics,
                    "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
                }
            if run:
                run.log_epoch(epoch, record)
            log.info(
                "%s/%s seed%d epoch %d/%d train_loss %.4f val_loss %.4f val_%s %.4f%s",
                task,
                model_name,
                seed,
                epoch,
                t.epochs,
                record["train_loss"],
                val_loss,
                primary,
                val_metrics.get(primary, math.nan),
                " *" if improved else "",
            )
            if rank == 0:
                _save_checkpoint(
                    ckpt_path,
                    {
                        "version": CHECKPOINT_VERSION,
                        "fingerprint": fingerprint,
                        "epoch": epoch,
                        "phase": phase,
                        "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "history": history,
                        "best": best,
                        "run_id": run_id,
                    },
                )
            if on_epoch_end is not None:
                try:
                    on_epoch_end(epoch)
                except BaseException:
                    if run:
                        run.end(status="KILLED")
                    raise
            if t.patience is not None and epoch - best["epoch"] >= t.patience:
                log.info("early stop: no validation improvement for %d epochs", t.patience)
                break

    model.load_state_dict(best["state_dict"])
    out_dir = layout.model(task, model_name, seed)
    if rank:  # rank 0 packages and logs the model; the others wait for it and leave
        distributed.finish()
        return TrainResult(out_dir, best["epoch"], best["val_loss"], best["val_metrics"], run_id, time.time() - t0)
    out_dir.mkdir(parents=True, exist_ok=True)
    hist = pd.DataFrame(history)
    with atomic_path(out_dir / "history.csv") as tmp:
        hist.to_csv(tmp, index=False)
    seconds = time.time() - t0
    save_model(
        model.cpu(),
        out_dir,
        labels,
        metadata={
            "task": task,
            "model_name": model_name,
            "seed": seed,
            "kind": kind,
            "best_epoch": best["epoch"],
            "best_val_loss": best["val_loss"],
            "val_metrics": best["val_metrics"],
            "mlflow_run_id": run_id,
            "device": str(device),
            "train_seconds": round(seconds, 2),
            "dataset_coverage": store.meta.get("coverage", {}),
            **({"init": init_record} if init_record else {}),
        },
    )
    run.finish_training(out_dir, hist, best)
    distributed.finish()
    return TrainResult(out_dir, best["epoch"], best["val_loss"], best["val_metrics"], run_id, seconds)
