"""Learning-rate schedules as pure functions of the step (or epoch), so a resumed run continues exactly.

A schedule needs no state of its own in the checkpoint: the rate of step ``k`` of ``n`` is
computed from ``k``, ``n`` and the base rate, and the training loop writes it into the
optimizer's parameter groups before each step.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence

SCHEDULES = ("constant", "cosine")

WARMUP_FRACTION = 0.05
"""Cosine schedule: share of the steps spent ramping the rate up linearly from ``base / n_warmup``."""


def lr_at(schedule: str, base: float, step: int, total: int) -> float:
    """Learning rate of optimizer step ``step`` (0-based) of ``total``.

    Args:
        schedule: ``"constant"`` (``base`` throughout) or ``"cosine"`` (linear warm-up over the
            first :data:`WARMUP_FRACTION` of the steps, at least one, then half a cosine from
            ``base`` down to 0 at the last step; the usual choice when the budget is a few epochs).
        base: the peak rate (``train.lr``).
        step: index of the step about to be taken, ``0 <= step < total``.
        total: number of optimizer steps in the whole run.

    Returns:
        The rate, a float in ``(0, base]`` (``base`` for ``constant``).
    """
    if schedule == "constant" or total <= 1:
        return base
    if schedule != "cosine":
        raise ValueError(f"unknown lr schedule {schedule!r}; allowed: {', '.join(SCHEDULES)}")
    warmup = max(1, round(WARMUP_FRACTION * total))
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup + 1) / max(1, total - warmup)
    return base * max(0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0))), 1e-3)


def paper_phase(epoch: int, epochs: int, phase_starts: Sequence[float]) -> int:
    """Phase of the paper schedule (``train.paper_schedule``, docs/spec.md §4) at epoch ``epoch``.

    Args:
        epoch: 0-based epoch index.
        epochs: ``train.epochs``.
        phase_starts: increasing fractions of ``epochs`` where each SGD phase begins
            (the paper's ``[0.4, 0.5, 0.6]``: epochs 80, 100 and 120 of 200).

    Returns:
        0 (Adam) before the first start, else the 1-based index of the last phase that has begun.
    """
    return bisect.bisect_right(phase_starts, epoch / max(1, epochs))
