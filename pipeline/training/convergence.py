"""Whether a training run stopped while validation was still improving.

A run whose best validation epoch is its last, or within its last 10 % of epochs, has not
converged: more epochs would likely give a better model. ``train`` logs
:func:`still_improving_note` at its end, the model card keeps ``still_improving``, and the
report marks such cells with :data:`MARK` (legend :data:`LEGEND`).
"""

from __future__ import annotations

import math

MARK = "↗"
LEGEND = f"{MARK}: validation still improving at the last epochs (best epoch within the last 10 %); more epochs would likely help"
LAST_FRACTION = 0.1


def still_improving(best_epoch: object, epochs_run: object) -> bool:
    """True when ``best_epoch`` (1-based) is within the last :data:`LAST_FRACTION` of ``epochs_run`` (at least the last one).

    Unknown or non-numeric values (an old card, a run without history) give ``False``.
    """
    try:
        best, run = int(best_epoch), int(epochs_run)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return False
    if run < 1 or best < 1:
        return False
    window = max(1, math.ceil(LAST_FRACTION * run))
    return best > run - window


def still_improving_note(best_epoch: int, epochs_run: int) -> str | None:
    """The warning ``train`` logs when :func:`still_improving`, else ``None``."""
    if not still_improving(best_epoch, epochs_run):
        return None
    return (
        f"validation still improving at epoch {best_epoch}; more epochs would likely help "
        f"(best of {epochs_run} epochs: raise train.epochs, and set train.patience to stop once it levels off)"
    )
