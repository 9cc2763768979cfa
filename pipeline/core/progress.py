"""Progress bars for long work (rich), quiet when output is not a terminal."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.progress import track as rich_track

T = TypeVar("T")


def track(items: Iterable[T], total: int | None = None, description: str = "working") -> Iterator[T]:
    """Iterate ``items`` with a rich progress bar on a terminal, plainly otherwise."""
    if not sys.stderr.isatty():
        yield from items
        return

    yield from rich_track(items, total=total, description=description, transient=True)


class EpochProgress:
    """Progress inside one training epoch: step, samples/s, loss and ETA.

    On a terminal a live rich bar (refreshed at most twice a second); otherwise (CI, logs
    redirected) one log line every ``log_seconds``. The running loss is read from the device
    only when it is shown, so the training loop never waits on it.

    Args:
        title: e.g. ``"synth_tags/fcn seed0 epoch 3/8"``.
        total: steps in the epoch.
        log_seconds: interval between log lines without a terminal.
        logger: where the log lines go.
    """

    def __init__(self, title: str, total: int, log_seconds: float = 10.0, logger=None) -> None:
        self.title, self.total, self.log_seconds = title, total, log_seconds
        self.log = logger or logging.getLogger(__name__)
        self._time = time.perf_counter
        self.t0 = self._last = self._time()
        self.samples = 0
        self.bar = None
        if sys.stderr.isatty():
            self.bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]:>7.1f} samples/s  loss {task.fields[loss]:.4f}"),
                TimeRemainingColumn(),
                transient=True,
                refresh_per_second=2,
            )
            self.bar.start()
            self.task = self.bar.add_task(title, total=total, rate=0.0, loss=float("nan"))

    def update(self, step: int, batch: int, loss_sum, steps_done: int) -> None:
        """After ``step`` (1-based) of ``batch`` samples; ``loss_sum`` is a 0-d tensor over ``steps_done`` steps."""
        self.samples += batch
        now = self._time()
        interval = 0.5 if self.bar is not None else self.log_seconds
        if now - self._last < interval and step < self.total:
            return
        self._last = now
        rate = self.samples / max(now - self.t0, 1e-9)
        loss = float(loss_sum) / max(1, steps_done)
        if self.bar is not None:
            self.bar.update(self.task, completed=step, rate=rate, loss=loss)
        elif step < self.total:
            eta = (self.total - step) * (now - self.t0) / max(step, 1)
            self.log.info("%s: step %d/%d, %.1f samples/s, loss %.4f, ETA %.0f s", self.title, step, self.total, rate, loss, eta)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
