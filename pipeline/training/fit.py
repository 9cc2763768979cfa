"""The epoch loop of ``train``: optimiser steps, validation, best-model selection, and its callbacks.

:func:`fit` owns only what decides the weights: the optimiser and its schedule, the per-epoch
seeds, the steps, and the validation loss that picks the best epoch. Everything else that
happens around an epoch is a :class:`Callback`, built by :func:`pipeline.training.train.train_model`
in this order: :class:`Tracking` (MLflow), :class:`Progress` (the bar and the epoch's log line),
:class:`Checkpoint` (``last.pt``, rank 0), :class:`EpochHook` (the caller's hook) and
:class:`EarlyStopping`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from pipeline.core.io_utils import atomic_path
from pipeline.core.progress import EpochProgress
from pipeline.core.task_kinds import PRIMARY_METRIC, kind_of
from pipeline.evaluation.metrics import clip_loss, task_metrics
from pipeline.models.inference import autocast_for
from pipeline.training import distributed
from pipeline.training.schedules import lr_at, paper_phase

if TYPE_CHECKING:
    from pipeline.config.params import TrainParams

log = logging.getLogger(__name__)
CHECKPOINT_VERSION = 1


def epoch_seed_of(seed: int, epoch: int) -> int:
    """The seed of one epoch's data order, crops and dropout (same on resume)."""
    return seed * 100_003 + epoch


def loss_fn(multilabel: bool) -> nn.Module:
    """BCE-with-logits (multi-label) or cross-entropy (single-label)."""
    return nn.BCEWithLogitsLoss() if multilabel else nn.CrossEntropyLoss()


def fresh_best() -> dict[str, Any]:
    """The best-epoch record before any epoch: ``{epoch: 0, val_loss: inf, state_dict: None, val_metrics: {}}``."""
    return {"epoch": 0, "val_loss": math.inf, "state_dict": None, "val_metrics": {}}


@dataclasses.dataclass
class FitState:
    """What the loop carries from epoch to epoch; :class:`Checkpoint` stores all but the live objects.

    Attributes:
        model: the model being trained (live).
        optimizer: the current optimiser (live; replaced at each paper-schedule phase).
        epoch: the last finished epoch, 1-based (0 before the first; a resumed run starts after it).
        phase: the paper-schedule phase the optimiser belongs to (0 = Adam).
        history: one record per finished epoch: ``epoch``, ``train_loss``, ``val_loss`` and ``val_<metric>``
            (validated epochs only, :func:`is_validated`), ``train_lr`` and ``train_phase`` (MLflow
            ``train/lr``, ``train/phase``).
        best: the lowest-validation-loss validated epoch: ``epoch``, ``val_loss``, ``val_metrics`` and its
            ``state_dict`` (CPU tensors; ``None`` before the first epoch).
        stop: set by a callback to end training after the current epoch.
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    epoch: int = 0
    phase: int = 0
    history: list[dict[str, float]] = dataclasses.field(default_factory=list)
    best: dict[str, Any] = dataclasses.field(default_factory=fresh_best)
    stop: bool = False


@dataclasses.dataclass
class Validation:
    """The validation split and how it is scored after every validated epoch.

    Attributes:
        clips: the validation clips, scored with the evaluation protocol
            (:class:`pipeline.models.stored_scoring.StoredClips`: chunks cut in DataLoader workers
            from the memory-mapped shards); ``clips.predict(model, bf16)`` -> ``(n_clips, n_classes)``.
        y: their labels: ``(n_clips, n_classes)`` multi-hot, or ``(n_clips,)`` class indices.
        multilabel: multi-label (BCE, ROC-AUC) or single-label (cross-entropy, accuracy).
        threshold: ``evaluate.threshold`` for the multi-label F1.
        bf16: bf16 autocast (the resolved ``train.bf16``, :func:`pipeline.models.inference.use_bf16`).
    """

    clips: Any
    y: np.ndarray
    multilabel: bool
    threshold: float
    bf16: bool

    @property
    def kind(self) -> str:
        return kind_of(self.multilabel)

    def __call__(self, model: nn.Module, device: torch.device) -> tuple[float, dict[str, float]]:
        """``(val_loss, val_metrics)`` of ``model`` on the split (``device``: where ``clips`` was built to run)."""
        scores = self.clips.predict(model, self.bf16)
        return clip_loss(scores, self.y, self.multilabel), task_metrics(self.kind, self.y, scores, self.threshold)


def validates(epoch: int, train: TrainParams) -> bool:
    """Whether ``epoch`` (1-based) is validated: every ``train.val_every``-th epoch, and always the last."""
    return epoch % train.val_every == 0 or epoch == train.epochs


def is_validated(record: dict[str, float]) -> bool:
    """Whether a history record is of a validated epoch (the others carry no ``val_*`` entries)."""
    return "val_loss" in record


class Callback:
    """Hooks around the epochs of :func:`fit`; every method is a no-op unless overridden."""

    def on_epoch_start(self, state: FitState, epoch: int) -> None:
        """Before the first step of ``epoch`` (1-based)."""

    def on_step(self, step: int, batch: int, loss_sum: torch.Tensor) -> None:
        """After optimiser step ``step`` (1-based) of ``batch`` samples; ``loss_sum`` is a 0-d device tensor."""

    def on_steps_done(self) -> None:
        """After the epoch's last step, or when a step raised."""

    def on_epoch_end(self, state: FitState, record: dict[str, float], improved: bool) -> None:
        """After validation; ``state.epoch`` is the finished epoch and ``record`` its history row."""

    def on_abort(self) -> None:
        """A callback's ``on_epoch_end`` raised (a kill); the exception is re-raised after this."""


def fit(
    forward: Callable[[torch.Tensor], torch.Tensor],
    loader: Any,
    steps_per_epoch: int,
    validation: Validation,
    train: TrainParams,
    state: FitState,
    *,
    new_optimizer: Callable[[int], torch.optim.Optimizer],
    set_epoch_seed: Callable[[int], None],
    device: torch.device,
    seed: int,
    callbacks: Sequence[Callback] = (),
    bf16: bool = False,
) -> FitState:
    """Train from ``state.epoch + 1`` to ``train.epochs`` (or until a callback sets ``state.stop``).

    Args:
        forward: the training forward (maybe compiled or DDP-wrapped), batch -> logits ``(B, n_classes)``.
        loader: yields ``(x, y)`` batches of the epoch whose seed ``set_epoch_seed`` set last.
        steps_per_epoch: batches per epoch (``len(sampler)``), for the lr schedule and progress.
        validation: scores the model after each validated epoch (:func:`validates`: every
            ``train.val_every``-th and the last).
        train: the ``train`` section (``epochs``, ``val_every``, ``optimizer``, ``paper_schedule``, ``lr``,
            ``lr_schedule``).
        state: where to start (fresh, or resumed from a checkpoint); updated in place and returned.
        new_optimizer: phase -> a fresh optimiser over ``state.model`` (paper-schedule switches).
        set_epoch_seed: seeds the data order and crops of the next epoch (the sampler's).
        device: where the batches go.
        seed: the training seed; epoch ``e`` runs under :func:`epoch_seed_of` ``(seed, e)``.
        callbacks: called in order at each hook.
        bf16: run the forward under bf16 autocast (the decision of
            :func:`pipeline.models.inference.use_bf16` for this model and device); the loss stays fp32.
    """
    model = state.model
    criterion = loss_fn(validation.multilabel)
    non_blocking = device.type == "cuda"
    total_steps = train.epochs * steps_per_epoch
    for epoch in range(state.epoch + 1, train.epochs + 1):
        if train.optimizer == "paper" and paper_phase(epoch - 1, train.epochs, train.paper_schedule.phase_starts) != state.phase:
            state.phase = paper_phase(epoch - 1, train.epochs, train.paper_schedule.phase_starts)
            if state.best["state_dict"] is not None:
                model.load_state_dict(state.best["state_dict"])
            state.optimizer = new_optimizer(state.phase)
        torch.manual_seed(epoch_seed_of(seed, epoch))
        set_epoch_seed(epoch_seed_of(seed, epoch))
        model.train()
        loss_sum = torch.zeros((), device=device)
        steps = 0
        for callback in callbacks:
            callback.on_epoch_start(state, epoch)
        try:
            for x, y in loader:
                if train.lr_schedule != "constant":
                    rate = lr_at(train.lr_schedule, train.lr, (epoch - 1) * steps_per_epoch + steps, total_steps)
                    for group in state.optimizer.param_groups:
                        group["lr"] = rate
                x, y = x.to(device, non_blocking=non_blocking), y.to(device, non_blocking=non_blocking)
                with autocast_for(device, bf16):
                    logits = forward(x)
                loss = criterion(logits.float(), y)
                state.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                state.optimizer.step()
                loss_sum += loss.detach()
                steps += 1
                for callback in callbacks:
                    callback.on_step(steps, len(x), loss_sum)
        finally:
            for callback in callbacks:
                callback.on_steps_done()
        train_loss = float(distributed.mean(loss_sum)) / steps if steps else math.nan  # averaged over the ranks
        record = {"epoch": epoch, "train_loss": train_loss}
        improved = False
        if validates(epoch, train):  # selection and early stopping see only the validated epochs
            val_loss, val_metrics = validation(model, device)
            record |= {"val_loss": val_loss, **{f"val_{k}": v for k, v in val_metrics.items()}}
            improved = val_loss < state.best["val_loss"]
            if improved:
                state.best = {
                    "epoch": epoch,
                    "val_loss": val_loss,
                    "val_metrics": val_metrics,
                    "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
                }
        record["train_lr"] = float(state.optimizer.param_groups[0]["lr"])  # the rate of the epoch's last step
        record["train_phase"] = float(state.phase)  # paper schedule: 0 = Adam, then the SGD phases (0 for other optimizers)
        state.history.append(record)
        state.epoch = epoch
        try:
            for callback in callbacks:
                callback.on_epoch_end(state, record, improved)
        except BaseException:
            for callback in callbacks:
                callback.on_abort()
            raise
        if state.stop:
            break
    return state


# ----------------------------------------------------------------------------- callbacks
class Tracking(Callback):
    """Logs every epoch's record to the MLflow run; marks the run KILLED when training is stopped.

    Args:
        run: a :class:`pipeline.tracking.runs.TrainingRun` (``log_epoch``, ``end``).
    """

    def __init__(self, run: Any) -> None:
        self.run = run

    def on_epoch_end(self, state: FitState, record: dict[str, float], improved: bool) -> None:
        self.run.log_epoch(state.epoch, record)

    def on_abort(self) -> None:
        self.run.end(status="KILLED")


class Progress(Callback):
    """The in-epoch progress bar (or log lines) and one log line per finished epoch.

    Args:
        title: names the run in every line, e.g. ``"synth_tags/fcn seed0"``.
        epochs: ``train.epochs``.
        steps_per_epoch: batches per epoch.
        log_seconds: ``runtime.progress_seconds`` (interval of the log lines without a terminal).
        multilabel: selects the primary validation metric shown.
        logger: where the lines go (default this module's).
    """

    def __init__(
        self,
        title: str,
        epochs: int,
        steps_per_epoch: int,
        log_seconds: float,
        multilabel: bool,
        logger: logging.Logger | None = None,
    ) -> None:
        self.title, self.epochs, self.steps, self.log_seconds = title, epochs, steps_per_epoch, log_seconds
        self.primary = PRIMARY_METRIC[kind_of(multilabel)]
        self.log = logger or log
        self.bar: EpochProgress | None = None

    def on_epoch_start(self, state: FitState, epoch: int) -> None:
        self.bar = EpochProgress(f"{self.title} epoch {epoch}/{self.epochs}", self.steps, self.log_seconds, self.log)

    def on_step(self, step: int, batch: int, loss_sum: torch.Tensor) -> None:
        if self.bar is not None:
            self.bar.update(step, batch, loss_sum, step)

    def on_steps_done(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def on_epoch_end(self, state: FitState, record: dict[str, float], improved: bool) -> None:
        validated = (
            f"val_loss {record['val_loss']:.4f} val_{self.primary} {record.get(f'val_{self.primary}', math.nan):.4f}"
            if is_validated(record)
            else "not validated (train.val_every)"
        )
        self.log.info(
            "%s epoch %d/%d phase %d lr %.2g train_loss %.4f %s%s",
            self.title,
            state.epoch,
            self.epochs,
            state.phase,
            record.get("train_lr", math.nan),
            record["train_loss"],
            validated,
            " *" if improved else "",
        )


class Checkpoint(Callback):
    """Writes ``last.pt`` after every epoch (atomically): weights, optimiser, history, best, run id.

    Args:
        path: the checkpoint file.
        fingerprint: params + data + code hash; :func:`load_checkpoint` resumes only a match.
        run_id: the MLflow run a resumed run continues.
    """

    def __init__(self, path: Path, fingerprint: str, run_id: str | None) -> None:
        self.path, self.fingerprint, self.run_id = path, fingerprint, run_id

    def on_epoch_end(self, state: FitState, record: dict[str, float], improved: bool) -> None:
        payload = {
            "version": CHECKPOINT_VERSION,
            "fingerprint": self.fingerprint,
            "epoch": state.epoch,
            "phase": state.phase,
            "model": state.model.state_dict(),
            "optimizer": state.optimizer.state_dict(),
            "history": state.history,
            "best": state.best,
            "run_id": self.run_id,
        }
        with atomic_path(self.path) as tmp:
            torch.save(payload, tmp)


def load_checkpoint(path: Path, fingerprint: str) -> dict[str, Any] | None:
    """The payload :class:`Checkpoint` wrote at ``path``, or ``None`` (absent, unreadable, or made
    with other params, data or code, i.e. another ``fingerprint``)."""
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


class EpochHook(Callback):
    """Calls ``hook(epoch)`` after the epoch's checkpoint is written (an exception it raises stops
    training as a kill would)."""

    def __init__(self, hook: Callable[[int], None]) -> None:
        self.hook = hook

    def on_epoch_end(self, state: FitState, record: dict[str, float], improved: bool) -> None:
        self.hook(state.epoch)


class EarlyStopping(Callback):
    """Stops after ``patience`` epochs without a lower validation loss (``train.patience``); decided at
    validated epochs only (``train.val_every``)."""

    def __init__(self, patience: int) -> None:
        self.patience = patience

    def on_epoch_end(self, state: FitState, record: dict[str, float], improved: bool) -> None:
        if is_validated(record) and state.epoch - state.best["epoch"] >= self.patience:
            log.info("early stop: no validation improvement for %d epochs", self.patience)
            state.stop = True
