"""``train`` stage: fit one model on one task, resumable, tracked in MLflow.

:func:`train_model` runs three parts: :func:`prepare` (device, data, model, loader, validation
split, checkpoint fingerprint) -> :func:`pipeline.training.fit.fit` (the epochs, with callbacks for
tracking, progress, the checkpoint, the caller's hook and early stopping) -> :func:`package`
(the best weights into ``models/<task>/<model>/seed<k>/``; a warning, and ``still_improving`` in
the card, when the best epoch is among the last ones: :mod:`pipeline.training.convergence`).

- Device: CUDA when present (``runtime.device: auto``), else CPU; bf16 autocast per ``train.bf16``
  (:func:`pipeline.models.inference.use_bf16`: CUDA, and CPUs with native bf16 for the variants measured faster).
- Determinism: the data order and crops of epoch ``e`` come from ``(seed, e)`` and the
  torch RNG is re-seeded at every epoch start, so a run resumed from the checkpoint of
  epoch ``e`` continues exactly as an uninterrupted run would (on the same device).
- Checkpoint after every epoch (``.checkpoints/<task>/<model>/last.pt``: weights,
  optimiser, history, best state, MLflow run id, and a fingerprint of params + data so a
  stale checkpoint is never resumed). ``--resume`` continues from it.
- Model selection: lowest validation loss (docs/spec.md §4); the best weights are packaged in
  ``models/<task>/<model>/`` (:mod:`pipeline.models.checkpoint`) with ``history.csv``.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from pipeline.config.params import grid_model
from pipeline.config.project import pretrained_mirror
from pipeline.core.io_utils import atomic_path, stable_hash
from pipeline.core.paths import Layout
from pipeline.data.shards import FeatureStore, SegmentStore, select_clips
from pipeline.data.split_checks import require_split
from pipeline.features.cache import cache_dir_name, segments_key
from pipeline.models import transfer
from pipeline.models.base import AudioModel
from pipeline.models.build import build_for_task
from pipeline.models.checkpoint import save_model, write_run_id
from pipeline.models.device import quiet_onednn_tf32_notice
from pipeline.models.inference import label_matrix, use_bf16
from pipeline.models.runtime import Runtime, resolve_runtime
from pipeline.models.stored_scoring import StoredClips
from pipeline.models.zoo import resolve_variant as resolve_registry
from pipeline.tracking import runs as tracking
from pipeline.training import distributed
from pipeline.training.batches import CropBatches, EpochSampler, make_loader
from pipeline.training.code import cell_code_hash
from pipeline.training.convergence import still_improving, still_improving_note
from pipeline.training.fit import (
    Callback,
    Checkpoint,
    EarlyStopping,
    EpochHook,
    FitState,
    Progress,
    Tracking,
    Validation,
    fit,
    load_checkpoint,
)

if TYPE_CHECKING:
    from pipeline.config.params import Params, TrainParams

log = logging.getLogger(__name__)

__all__ = ["TrainResult", "make_optimizer", "prepare", "prepare_for_device", "package", "train_model"]


# ----------------------------------------------------------------------------- model
def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))


# ----------------------------------------------------------------------------- data
def _feature_store_for(model: AudioModel, dataset: str, layout: Layout, enabled: bool) -> FeatureStore | None:
    """The cached front-end outputs of ``dataset`` for ``model``, or ``None`` (disabled, a trainable
    front-end, or no cache built: the front-end then runs on the fly).

    ``enabled``: ``train.use_feature_cache and features.enabled``.
    """
    if not enabled:
        return None
    spec = model.frontend.cache_spec()
    if spec is None:
        return None

    path = layout.features(dataset) / cache_dir_name(spec, segments_key(layout.segments(dataset)))
    if not (path / "index.parquet").exists():
        log.info("no feature cache at %s; computing the front-end on the fly", path)
        return None
    return FeatureStore(path)


# ----------------------------------------------------------------------------- optimisation
def make_optimizer(model: nn.Module, train: TrainParams, phase: int = 0) -> torch.optim.Optimizer:
    """Adam / AdamW / SGD at ``train.lr``, or the paper's schedule: phase 0 Adam at ``train.lr``,
    phase ``k >= 1`` SGD at ``train.paper_schedule.sgd_lrs[k - 1]`` (docs/spec.md §4)."""
    if train.optimizer == "paper" and phase > 0:
        lr = train.paper_schedule.sgd_lrs[phase - 1]
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=train.weight_decay)
    if train.optimizer in ("adam", "paper"):
        return torch.optim.Adam(model.parameters(), lr=train.lr, weight_decay=train.weight_decay)
    if train.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=train.lr, weight_decay=train.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=train.lr, momentum=0.9, nesterov=True, weight_decay=train.weight_decay)


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


def _use_mkldnn(model: AudioModel, choice: str, bf16: bool = False) -> bool:
    """Whether to train with oneDNN convolutions on CPU: ``on``/``off``, or the variant's measured default
    (always on under bf16 autocast: PyTorch's native bf16 convolutions were measured 2-9x slower)."""
    if choice != "auto":
        return choice == "on"
    if bf16:
        return torch.backends.mkldnn.enabled

    try:
        _, spec = resolve_registry(model.config.variant)
    except ValueError:
        return True
    return spec.cpu_mkldnn and torch.backends.mkldnn.enabled


@dataclasses.dataclass
class Prepared:
    """A run ready for its first step (built by :func:`prepare`).

    Attributes:
        task, model_name, seed: the cell and its training seed.
        device: where it trains; ``rank``/``world_size``: its place under torchrun (0, 1 alone).
        store: the segmented dataset; ``labels`` its vocabulary; ``multilabel`` its task kind.
        model: on ``device``; ``forward``: what the loop calls (back-end alone on cached features,
            maybe compiled, DDP-wrapped under torchrun).
        feats: the feature cache the batches read, or ``None``.
        loader, sampler: the training batches; ``sampler.set_epoch_seed`` picks an epoch's order.
        validation: the validation split and its scoring.
        data_hash: the dataset's coverage and sources, hashed (a tag, and part of ``fingerprint``).
        fingerprint: params + data + code; a checkpoint resumes only on a match.
        ckpt_path: ``last.pt`` of this cell and seed.
        init: the pretrained init of the variant (:func:`pipeline.models.transfer.apply_init`; empty without one).
        bf16: whether the forward runs under bf16 autocast (:func:`pipeline.models.inference.use_bf16`).
    """

    task: str
    model_name: str
    seed: int
    device: torch.device
    rank: int
    world_size: int
    store: SegmentStore
    labels: list[str]
    multilabel: bool
    model: AudioModel
    forward: Callable[[torch.Tensor], torch.Tensor]
    feats: FeatureStore | None
    loader: Any
    sampler: EpochSampler
    validation: Validation
    data_hash: Any
    fingerprint: str
    ckpt_path: Path
    init: dict[str, str]
    bf16: bool = False


def prepare(task: str, model_name: str, params: Params, layout: Layout, seed: int, runtime: Runtime | None = None) -> Prepared:
    """Seed, pick the device (``runtime``, or resolved from ``params``), read the splits, build the model, the
    batches and the validation set."""
    t, rt = params.train, params.runtime
    seed_everything(seed)
    runtime = runtime or resolve_runtime(params)
    runtime.apply_threads()
    rank, world_size = distributed.init(runtime.device)  # (0, 1) unless under torchrun
    device = distributed.local_device(runtime.device)
    store = SegmentStore(layout.segments(task))
    multilabel, labels = store.multilabel, store.labels
    train_rows, val_rows = store.split("train"), store.split("val")
    require_split(train_rows, task, "train", multilabel, fit=True)  # before anything is built or fitted
    if len(val_rows) == 0:
        val_rows = train_rows.iloc[: max(1, len(train_rows) // 10)]
        log.warning("%s has no validation split; validating on %d training clips", task, len(val_rows))
    val_rows = select_clips(val_rows, t.val_max_clips, params.seed)  # train.val_max_clips (null: all)
    clip_samples = int(np.median(store.manifest["n_samples"]))
    grid, mirror = grid_model(params, model_name), pretrained_mirror(params=params)  # resolved from params here, once
    model = build_for_task(grid, task, n_classes=len(labels), multilabel=multilabel, clip_samples=clip_samples)
    init = transfer.apply_init(model, labels, grid.init, grid.freeze, mirror)  # pretrained init / freezing
    bf16 = use_bf16(runtime.bf16, device, model.config.variant)  # autocast the forward only; loss and weights stay fp32
    feats = _feature_store_for(model, task, layout, t.use_feature_cache and params.features.enabled)
    n_frames = model.frontend.n_frames(model.input_length) if feats is not None else None
    y_train = label_matrix(train_rows["labels"], labels, multilabel)
    y_train = y_train.astype(np.float32) if multilabel else y_train
    batches = CropBatches(store, train_rows, y_train, model.input_length, t.batch_size, feats, n_frames)
    sampler = EpochSampler(len(batches), t.steps_per_epoch, rank=rank, world=world_size)
    loader = make_loader(batches, sampler, device, rt.num_workers)
    e = params.evaluate
    validation = Validation(
        clips=StoredClips(
            store,
            val_rows,
            length=model.input_length,
            n_chunks=e.n_chunks,
            batch_size=rt.eval_batch_size,
            device=device,
            num_workers=rt.num_workers,
        ),
        y=label_matrix(val_rows["labels"], labels, multilabel),
        multilabel=multilabel,
        threshold=e.threshold,
        bf16=bf16,
    )
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
            "code": cell_code_hash(model.config.variant),
        }
    )
    model.to(device)
    forward = distributed.wrap(model, prepare_for_device(model, device, rt.compile, features=feats is not None), device)
    return Prepared(
        task=task,
        model_name=model_name,
        seed=seed,
        device=device,
        rank=rank,
        world_size=world_size,
        store=store,
        labels=labels,
        multilabel=multilabel,
        model=model,
        forward=forward,
        feats=feats,
        loader=loader,
        sampler=sampler,
        validation=validation,
        data_hash=data_hash,
        fingerprint=fingerprint,
        ckpt_path=layout.checkpoints(task, model_name, seed) / "last.pt",
        init=init,
        bf16=bf16,
    )


def start_state(run: Prepared, train: TrainParams, resume: bool) -> tuple[FitState, str | None]:
    """A fresh :class:`~pipeline.training.fit.FitState`, or the one of a matching checkpoint (``resume``),
    with the MLflow run id the checkpoint names (``None`` when fresh)."""
    saved = load_checkpoint(run.ckpt_path, run.fingerprint) if resume else None
    if saved is None:
        return FitState(run.model, make_optimizer(run.model, train, 0)), None
    run.model.load_state_dict(saved["model"])
    optimizer = make_optimizer(run.model, train, saved["phase"])
    optimizer.load_state_dict(saved["optimizer"])
    log.info("resuming %s/%s seed %d from epoch %d", run.task, run.model_name, run.seed, saved["epoch"])
    state = FitState(run.model, optimizer, saved["epoch"], saved["phase"], saved["history"], saved["best"])
    return state, saved.get("run_id")


def tracking_run(run: Prepared, params: Params, run_id: str | None, root: Path) -> tracking.TrainingRun | None:
    """The MLflow run of rank 0 in the store of the project at ``root`` (continuing ``run_id`` on resume); ``None`` on the other ranks."""
    if run.rank:
        return None
    model, feats = run.model, run.feats
    tags = {
        "device": str(run.device),
        "bf16": str(run.bf16),
        "variant": model.config.variant,
        "input_length": str(model.input_length),
        "feature_cache": feats.dir.name if feats is not None else "none",
        "data_hash": str(run.data_hash),
        "n_params": str(sum(p.numel() for p in model.parameters() if p.requires_grad)),
        "coverage": str(run.store.meta.get("coverage", {}).get("fraction")),
        **({"world_size": str(run.world_size)} if run.world_size > 1 else {}),
        **{f"init.{k}": v for k, v in run.init.items()},
    }
    return tracking.TrainingRun(run.task, run.model_name, params, run_id=run_id, seed=run.seed, tags=tags, root=root)


def callbacks_for(
    run: Prepared,
    train: TrainParams,
    mlflow_run: tracking.TrainingRun | None,
    run_id: str | None,
    on_epoch_end: Callable[[int], None] | None,
    progress_seconds: float = 10.0,
) -> list[Callback]:
    """Tracking (rank 0), progress, checkpoint (rank 0), the caller's hook, early stopping; in this order."""
    callbacks: list[Callback] = [] if mlflow_run is None else [Tracking(mlflow_run)]
    title = f"{run.task}/{run.model_name} seed{run.seed}"
    callbacks.append(Progress(title, train.epochs, len(run.sampler), progress_seconds, run.multilabel, log))
    if run.rank == 0:
        callbacks.append(Checkpoint(run.ckpt_path, run.fingerprint, run_id))
    if on_epoch_end is not None:
        callbacks.append(EpochHook(on_epoch_end))
    if train.patience is not None:
        callbacks.append(EarlyStopping(train.patience))
    return callbacks


def package(
    run: Prepared, state: FitState, mlflow_run: tracking.TrainingRun | None, out_dir: Path, run_id: str | None, t0: float
) -> TrainResult:
    """Load the best weights; rank 0 writes ``model.pt``, ``model.json`` and ``history.csv`` to
    ``out_dir`` and closes the MLflow run. ``t0``: ``time.time()`` at the start of training."""
    best = state.best
    run.model.load_state_dict(best["state_dict"])
    if run.rank:  # rank 0 packages and logs the model; the others wait for it and leave
        distributed.finish()
        return TrainResult(out_dir, best["epoch"], best["val_loss"], best["val_metrics"], run_id, time.time() - t0)
    out_dir.mkdir(parents=True, exist_ok=True)
    hist = pd.DataFrame(state.history)
    note = still_improving_note(best["epoch"], state.epoch)
    if note:
        log.warning("%s/%s seed%d: %s", run.task, run.model_name, run.seed, note)
    with atomic_path(out_dir / "history.csv") as tmp:
        hist.to_csv(tmp, index=False)
    seconds = time.time() - t0
    save_model(
        run.model.cpu(),
        out_dir,
        run.labels,
        metadata={
            "task": run.task,
            "model_name": run.model_name,
            "seed": run.seed,
            "kind": run.validation.kind,
            "best_epoch": best["epoch"],
            "best_val_loss": best["val_loss"],
            "epochs_run": state.epoch,
            "still_improving": still_improving(best["epoch"], state.epoch),
            "val_metrics": best["val_metrics"],
            "device": str(run.device),
            "dataset_coverage": run.store.meta.get("coverage", {}),
            **({"init": run.init} if run.init else {}),
        },
    )
    write_run_id(out_dir, run_id)
    mlflow_run.finish_training(out_dir, hist, best, seconds)
    distributed.finish()
    return TrainResult(out_dir, best["epoch"], best["val_loss"], best["val_metrics"], run_id, seconds)


def train_model(
    task: str,
    model_name: str,
    params: Params,
    layout: Layout,
    *,
    resume: bool = False,
    seed: int | None = None,
    on_epoch_end: Callable[[int], None] | None = None,
    runtime: Runtime | None = None,
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
        runtime: device, bf16 and threads resolved once by the caller (a grid cell); default resolved
            here from ``params`` (:func:`pipeline.models.runtime.resolve_runtime`).
    """
    t0 = time.time()
    t = params.train
    seed = params.grid.seeds[0] if seed is None else int(seed)
    run = prepare(task, model_name, params, layout, seed, runtime)
    state, run_id = start_state(run, t, resume)
    mlflow_run = tracking_run(run, params, run_id, layout.root)
    run_id = mlflow_run.run_id if mlflow_run else run_id
    device = run.device
    mkldnn = _use_mkldnn(run.model, params.runtime.mkldnn, run.bf16) if device.type == "cpu" else torch.backends.mkldnn.enabled
    quiet_onednn_tf32_notice()  # torch's notice about Intel GPUs, emitted by mkldnn.flags on every CPU run
    with tracking.ended_on_failure(mlflow_run):  # an error or interrupt ends the run FAILED/KILLED, never RUNNING
        with torch.backends.mkldnn.flags(enabled=mkldnn):  # scoped: the process's setting is restored after training
            fit(
                run.forward,
                run.loader,
                len(run.sampler),
                run.validation,
                t,
                state,
                new_optimizer=lambda phase: make_optimizer(run.model, t, phase),
                set_epoch_seed=run.sampler.set_epoch_seed,
                device=device,
                seed=seed,
                callbacks=callbacks_for(run, t, mlflow_run, run_id, on_epoch_end, params.runtime.progress_seconds),
                bf16=run.bf16,
            )
        return package(run, state, mlflow_run, layout.model(task, model_name, seed), run_id, t0)
