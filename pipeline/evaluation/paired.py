"""Model A minus model B on one task, with an interval over test clips *and* one over seeds
(``musicrep compare --paired A B [--perturbation P --level L]``).

- Over clips: the paired 95 % bootstrap of the seed-averaged difference (same clips, same resamples
  for both models; :class:`pipeline.evaluation.evidence._Resamples`): how sure the test set makes us.
- Over seeds: the 95 % t-interval of the per-seed differences, paired by seed id
  (:func:`pipeline.evaluation.stats.seed_interval`): how much another training seed could change it.

The quantity is the clean primary metric, or with ``perturbation`` and ``level`` the absolute drop
(clean minus perturbed) at that noise point, e.g. "hcnn minus short_cnn, drop at white noise 0 dB".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.core.errors import UserError
from pipeline.core.paths import Layout
from pipeline.core.task_kinds import PRIMARY_METRIC
from pipeline.evaluation.evidence import ModelScores, _Resamples, load_task, seed_drops
from pipeline.evaluation.stats import metric_on, seed_interval

if TYPE_CHECKING:
    from pipeline.config.params import Params

COLUMNS = [
    "task", "model_a", "model_b", "quantity", "difference", "clips_ci_low", "clips_ci_high", "n_clips",
    "seeds", "seeds_mean", "seeds_ci_low", "seeds_ci_high",
]  # fmt: skip


def _point(m: ModelScores, perturbation: str, level: float) -> tuple[str, float]:
    """The ``(perturbation, level)`` key of ``m`` that ``perturbation`` names (a prefix is enough: ``white``)."""
    names = sorted({p for p, _ in m.perturbed})
    match = [p for p in names if p == perturbation] or [p for p in names if p.startswith(perturbation)]
    levels = sorted({lv for p, lv in m.perturbed if match and p == match[0]})
    if len(match) != 1 or float(level) not in levels:
        raise UserError(
            f"{m.model} has no robustness scores at {perturbation} {level:g}; use --perturbation one of "
            f"{', '.join(names) or '(none: run musicrep robustness first)'} and --level one of {', '.join(f'{v:g}' for v in levels) or '...'}."
        )
    return match[0], float(level)


def paired_row(
    params: Params, layout: Layout, task: str, a: str, b: str, perturbation: str | None = None, level: float | None = None
) -> dict[str, Any]:
    """One row of :data:`COLUMNS`: ``a`` minus ``b`` on ``task`` (module docstring).

    Raises:
        UserError: a model without predictions on ``task``, or a perturbation point it was not scored at.
    """
    kind, y, models, _ = load_task(params, layout, task)
    by_name = {m.model: m for m in models}
    for name in (a, b):
        if name not in by_name:
            have = ", ".join(by_name) or "none yet"
            raise UserError(f"{name} has no predictions on {task} (evaluated models: {have}); run `musicrep cell {task} {name}`.")
    ma, mb = by_name[a], by_name[b]
    rs = _Resamples(kind, y)
    metric = PRIMARY_METRIC[kind]
    if perturbation is None:
        quantity = f"{metric} (clean)"
        clip_stat = lambda idx: rs.clean(ma, idx) - rs.clean(mb, idx)  # noqa: E731
        full = np.arange(len(y))
        per_seed = {
            name: dict(zip(m.seeds, [float(metric_on(kind, y, s, full)) for s in m.clean])) for name, m in (("a", ma), ("b", mb))
        }
    else:
        pa, pb = _point(ma, perturbation, level or 0.0), _point(mb, perturbation, level or 0.0)
        quantity = f"drop of {metric} at {pa[0]} {pa[1]:g}"

        def point_drop(m: ModelScores, p: tuple[str, float], idx: np.ndarray) -> np.ndarray:
            return rs.clean(m, idx) - np.mean([metric_on(kind, y, s, idx) for s in m.perturbed[p]], axis=0)

        clip_stat = lambda idx: point_drop(ma, pa, idx) - point_drop(mb, pb, idx)  # noqa: E731
        per_seed = {"a": dict(zip(ma.seeds, seed_drops(kind, y, ma, pa))), "b": dict(zip(mb.seeds, seed_drops(kind, y, mb, pb)))}
    clips = rs.interval(clip_stat)
    common = [s for s in ma.seeds if s in per_seed["b"]]
    seeds = seed_interval([per_seed["a"][s] - per_seed["b"][s] for s in common])
    return dict(
        zip(
            COLUMNS,
            [
                task,
                a,
                b,
                quantity,
                clips.value,
                clips.low,
                clips.high,
                len(y),
                ", ".join(map(str, common)),
                seeds.value,
                seeds.low,
                seeds.high,
            ],
        )
    )
