"""The answer first: per task, the front-end families side by side and whether the seed's claim holds.

A model's *family* is its front-end's kind (:func:`frontend_family`): ``mel`` (a fixed
time-frequency representation: mel, linear, log, CQT, MFCC), ``waveform`` (raw samples),
``harmonic`` (the Harmonic CNN's learnable harmonic filters) or ``learnable`` (LEAF, SincNet,
PCEN, trainable mel). Per family the best variant on the clean test split is shown with its
clean metric and its metric under each noise type at the strongest level of ``robustness.grid``,
each with a 95 % bootstrap interval over test clips (seed-averaged scores, as
:mod:`pipeline.evaluation.evidence`). The claim "a harmonic front-end is more robust to noise"
is judged by the paired difference, under the strongest noise, between the best harmonic
variant and the best variant of any other family.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from pipeline.config.params import grid_model
from pipeline.core.paths import Layout
from pipeline.core.task_kinds import METRIC_TITLES, PRIMARY_METRIC
from pipeline.evaluation.evidence import ModelScores, _Resamples, load_task
from pipeline.evaluation.stats import CONFIDENCE, Interval, metric_on
from pipeline.models.zoo import resolve_variant as resolve_registry

if TYPE_CHECKING:
    from pipeline.config.params import Params

FAMILIES = ("mel", "waveform", "harmonic", "learnable")
LEARNABLE_FRONTENDS = frozenset({"leaf", "sincnet", "pcen", "trainable_mel"})


def frontend_family(frontend: str) -> str:
    """``harmonic`` -> harmonic, ``raw`` -> waveform, LEAF/SincNet/PCEN/trainable mel -> learnable, else mel."""
    if frontend == "harmonic":
        return "harmonic"
    if frontend == "raw":
        return "waveform"
    return "learnable" if frontend in LEARNABLE_FRONTENDS else "mel"


def model_family(model: str, params: Params) -> str:
    """The family of grid model ``model`` (registry variant, ``front+back`` swap or alias)."""

    variant = grid_model(params, model).variant
    frontend, _spec = resolve_registry(variant)
    return frontend_family(frontend)


@dataclass
class FamilyRow:
    family: str
    model: str
    tied: list[str]  # other variants of the family equal to 3 decimals on the clean split
    clean: Interval
    noise: dict[tuple[str, float], Interval] = field(default_factory=dict)


@dataclass
class TaskSummary:
    task: str
    metric: str
    rows: list[FamilyRow]
    points: list[tuple[str, float]]  # the strongest level of each noise type
    difference: Interval | None
    compared: str  # "hcnn - fcn (mel)"
    sentence: str


def strongest_points(models: list[ModelScores]) -> list[tuple[str, float]]:
    """Per noise type, its strongest level: the lowest SNR in dB."""
    levels: dict[str, float] = {}
    for m in models:
        for pert, level in m.perturbed:
            levels[pert] = min(level, levels.get(pert, level))
    return sorted(levels.items())


def _under(rs: _Resamples, m: ModelScores, points: list[tuple[str, float]], idx: np.ndarray) -> np.ndarray:
    """The seed-averaged metric under the strongest noise, averaged over the noise types."""
    per = [np.mean([metric_on(rs.kind, rs.y, s, idx) for s in m.perturbed[p]], axis=0) for p in points]
    return np.mean(per, axis=0)


def _family_rows(params: Params, rs: _Resamples, models: list[ModelScores], points: list) -> list[FamilyRow]:
    rows = []
    for family in FAMILIES:
        members = [m for m in models if model_family(m.model, params) == family]
        if not members:
            continue
        clean = {m.model: rs.interval(lambda idx, m=m: rs.clean(m, idx)) for m in members}
        best = max(members, key=lambda m: clean[m.model].value)
        tied = [m.model for m in members if m is not best and round(clean[m.model].value, 3) == round(clean[best.model].value, 3)]
        row = FamilyRow(family, best.model, tied, clean[best.model])
        for p in points if all(p in best.perturbed for p in points) else []:
            row.noise[p] = rs.interval(lambda idx, p=p, best=best: _under(rs, best, [p], idx))
        rows.append(row)
    return rows


def _verdict(task: str, d: Interval, harmonic: str, other: str, other_family: str) -> str:
    level = int(round(CONFIDENCE * 100))
    numbers = f"{d.value:+.3f} [{d.low:+.3f}, {d.high:+.3f}], {level} % paired bootstrap"
    if d.low > 0:
        return f"{task}: the claim holds here: under the strongest noise {harmonic} scores above the best other front-end, {other} ({other_family}), by {numbers}."
    if d.high < 0:
        return f"{task}: the claim does not hold here: under the strongest noise {harmonic} scores below the best other front-end, {other} ({other_family}), by {numbers}."
    return f"{task}: the data cannot tell: under the strongest noise {harmonic} minus the best other front-end, {other} ({other_family}), is {numbers}, an interval that includes zero."


def family_summary(params: Params, layout: Layout, task: str) -> TaskSummary | None:
    """The first-screen summary of ``task``; None when no model of the task has been evaluated."""
    kind, y, models, _ = load_task(params, layout, task)
    if not models:
        return None
    rs = _Resamples(kind, y)
    noisy = [m for m in models if m.perturbed]
    points = strongest_points(noisy)
    rows = _family_rows(params, rs, models, points)
    metric = METRIC_TITLES[PRIMARY_METRIC[kind]]
    harmonic = [m for m in noisy if model_family(m.model, params) == "harmonic" and all(p in m.perturbed for p in points)]
    others = [m for m in noisy if model_family(m.model, params) != "harmonic" and all(p in m.perturbed for p in points)]
    if not points or not harmonic or not others:
        why = (
            "no robustness scores on the whole test split yet"
            if not points
            else "no harmonic front-end and another family both scored under noise"
        )
        return TaskSummary(task, metric, rows, points, None, "", f"{task}: the claim is not tested here ({why}).")
    full = np.arange(len(y))
    h = max(harmonic, key=lambda m: float(_under(rs, m, points, full)))
    o = max(others, key=lambda m: float(_under(rs, m, points, full)))
    d = rs.interval(lambda idx: _under(rs, h, points, idx) - _under(rs, o, points, idx))
    other_family = model_family(o.model, params)
    return TaskSummary(
        task,
        metric,
        rows,
        points,
        d,
        f"{h.model} − {o.model} ({other_family})",
        _verdict(task, d, h.model, o.model, other_family),
    )
