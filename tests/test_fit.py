"""The epoch loop and its callbacks (pipeline.training.fit) on a two-parameter model: no data, no MLflow."""

from __future__ import annotations

import pytest
import torch

from pipeline.config.params import load_params
from pipeline.training.fit import Callback, EarlyStopping, EpochHook, FitState, Tracking, fit
from tests.conftest import REPO


class ScriptedValidation:
    """Returns the next of ``losses`` as the validation loss after each epoch."""

    multilabel = False

    def __init__(self, losses: list[float]) -> None:
        self.losses = list(losses)

    def __call__(self, model, device) -> tuple[float, dict[str, float]]:
        return self.losses.pop(0), {"accuracy": 0.5}


class Recorder(Callback):
    def __init__(self) -> None:
        self.calls: list[str] = []

    def on_epoch_start(self, state, epoch) -> None:
        self.calls.append(f"start{epoch}")

    def on_epoch_end(self, state, record, improved) -> None:
        self.calls.append(f"end{state.epoch}{'*' if improved else ''}")

    def on_abort(self) -> None:
        self.calls.append("abort")


def _run(losses, callbacks, epochs: int | None = None, **train_overrides):
    epochs = len(losses) if epochs is None else epochs
    train = load_params(REPO / "params.yaml", overrides={"train": {"epochs": epochs, **train_overrides}}).train
    model = torch.nn.Linear(2, 3)
    phases: list[int] = []

    def new_optimizer(phase: int) -> torch.optim.Optimizer:
        phases.append(phase)
        return torch.optim.SGD(model.parameters(), lr=0.1)

    batches = [(torch.randn(4, 2), torch.tensor([0, 1, 2, 0]))] * 2
    state = FitState(model, torch.optim.SGD(model.parameters(), lr=0.1))
    fit(
        model,
        batches,
        len(batches),
        ScriptedValidation(losses),
        train,
        state,
        new_optimizer=new_optimizer,
        set_epoch_seed=lambda seed: None,
        device=torch.device("cpu"),
        seed=0,
        callbacks=callbacks,
    )
    return state, phases


def test_best_epoch_is_the_lowest_validation_loss() -> None:
    rec = Recorder()
    state, _ = _run([3.0, 1.0, 2.0], [rec])
    assert state.epoch == 3 and state.best["epoch"] == 2 and state.best["val_loss"] == 1.0
    assert [h["val_loss"] for h in state.history] == [3.0, 1.0, 2.0]
    assert rec.calls == ["start1", "end1*", "start2", "end2*", "start3", "end3"]


def test_early_stopping_ends_after_patience_epochs_without_improvement() -> None:
    state, _ = _run([1.0, 2.0, 2.0, 0.5, 0.1], [EarlyStopping(2)])
    assert state.epoch == 3 and state.best["epoch"] == 1


def test_a_raising_hook_aborts_every_callback_and_propagates() -> None:
    ended: list[str] = []

    class FakeRun:
        def log_epoch(self, epoch, record) -> None: ...

        def end(self, status: str) -> None:
            ended.append(status)

    def kill(epoch: int) -> None:
        raise KeyboardInterrupt

    rec = Recorder()
    with pytest.raises(KeyboardInterrupt):
        _run([1.0, 1.0], [Tracking(FakeRun()), rec, EpochHook(kill)])
    assert ended == ["KILLED"] and rec.calls == ["start1", "end1*", "abort"]


def test_paper_schedule_switches_phase_at_the_configured_starts() -> None:
    state, phases = _run([1.0] * 10, [], optimizer="paper", lr_schedule="constant")
    assert phases == [1, 2, 3]  # epochs 5, 6 and 7 of 10 (0-based fractions 0.4, 0.5, 0.6)
    assert state.phase == 3
    # the phase and learning rate of every epoch are in the history (history.csv, MLflow train/phase, train/lr)
    assert [h["train_phase"] for h in state.history] == [0, 0, 0, 0, 1, 2, 3, 3, 3, 3]
    assert all(h["train_lr"] > 0 for h in state.history)


def test_val_every_validates_every_nth_and_the_last_epoch() -> None:
    """``train.val_every``: validation after epochs 2, 4 and 5 of 5; selection among those alone."""
    rec = Recorder()
    state, _ = _run([3.0, 1.0, 2.0], [rec], epochs=5, val_every=2)  # the scripted losses of epochs 2, 4, 5
    assert [("val_loss" in h) for h in state.history] == [False, True, False, True, True]
    assert [h["val_loss"] for h in state.history if "val_loss" in h] == [3.0, 1.0, 2.0]
    assert state.best["epoch"] == 4 and state.best["val_loss"] == 1.0
    assert rec.calls[1::2] == ["end1", "end2*", "end3", "end4*", "end5"]
    assert all("train_loss" in h and "train_lr" in h for h in state.history)


def test_progress_line_says_which_epochs_were_validated(caplog) -> None:
    import logging

    from pipeline.training.fit import Progress

    progress = Progress("t/m seed0", 2, 2, 10.0, multilabel=False, logger=logging.getLogger("fit-test"))
    with caplog.at_level("INFO", logger="fit-test"):
        _run([0.5], [progress], epochs=2, val_every=2)
    first, second = [r.getMessage() for r in caplog.records if " epoch " in r.getMessage()]
    assert first.endswith("not validated (train.val_every)")
    assert "epoch 2/2" in second and "val_loss 0.5000 val_accuracy 0.5000 *" in second


def test_early_stopping_counts_at_validated_epochs_only() -> None:
    # validated at 3, 6, 9: best at 3; epoch 4 and 5 are past the patience but not validated, 6 stops
    state, _ = _run([1.0, 2.0, 0.5], [EarlyStopping(2)], epochs=9, val_every=3)
    assert state.epoch == 6 and state.best["epoch"] == 3


def test_val_every_default_is_every_epoch() -> None:
    assert load_params(REPO / "params.yaml").train.val_every == 1
    assert load_params(REPO / "params.yaml", overrides={"profile": "paper"}).train.val_every == 1


def test_training_curve_draws_the_validated_epochs_of_a_sparse_history(tmp_path, monkeypatch) -> None:
    """history.csv under ``train.val_every: 2``: NaN ``val_*`` on the other epochs; the figure keeps the metric panel."""
    import matplotlib.pyplot as plt
    import pandas as pd

    from pipeline.report import figures

    history = pd.DataFrame(
        {
            "epoch": [1, 2, 3, 4],
            "train_loss": [2.0, 1.5, 1.2, 1.0],
            "val_loss": [None, 1.6, None, 1.1],
            "val_accuracy": [None, 0.4, None, 0.6],
        }
    )
    drawn: list[tuple[list, list]] = []
    real_subplots = plt.subplots

    def spy(*args, **kwargs):
        fig, axes = real_subplots(*args, **kwargs)
        for ax in axes.flat:
            real_plot = ax.plot
            ax.plot = lambda x, y, *a, _plot=real_plot, **k: drawn.append((list(x), list(y))) or _plot(x, y, *a, **k)
        return fig, axes

    monkeypatch.setattr(figures.plt, "subplots", spy)
    assert figures.training_curve_figure(history, "t", tmp_path / "curve.png").stat().st_size > 0
    assert ([2, 4], [1.6, 1.1]) in drawn and ([2, 4], [0.4, 0.6]) in drawn  # one line through the validated epochs
