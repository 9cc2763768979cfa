"""The comparison as evidence: seeds, intervals over test clips, paired differences, robustness.

Reads what the cells wrote (``metrics/<task>/<model>/seed<k>/predictions.parquet`` and
``robustness_scores.parquet``) and returns tidy tables for the report and ``compare``:

- :func:`accuracy_table`: per model, the primary test metric as mean +- std over seeds, the
  metric of the seed-averaged model with a 95 % bootstrap interval over test clips, and the
  paired difference to the best model (same clips, same resamples, same seeds) with its
  interval.
- :func:`robustness_table`: per model, the clean metric, the mean over the perturbed points
  (noise perturbations at every level), the absolute drop and the relative drop, each with a
  paired bootstrap interval (clean and perturbed scores of the same clips).
- :func:`harmonic_statement`: the answer to "does the harmonic front-end degrade least?",
  made from the paired differences of drops between the harmonic model(s) and every other
  model, whatever the answer is.

The statistics are :mod:`pipeline.evaluation.stats` (scipy's bootstrap over clips).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from pipeline.config.params import grid_model
from pipeline.core.paths import Layout
from pipeline.core.task_kinds import MULTILABEL, kind_of
from pipeline.evaluation.metrics import primary_metric
from pipeline.evaluation.stats import CONFIDENCE, N_RESAMPLES, Interval, _bootstrap, metric_on, seed_interval, seed_summary
from pipeline.models.checkpoint import read_card
from pipeline.models.grid import grid_models
from pipeline.models.inference import label_matrix
from pipeline.models.zoo import resolve_variant as resolve_registry

if TYPE_CHECKING:
    from pipeline.config.params import Params

log = logging.getLogger(__name__)
NOISE_PERTURBATIONS = ("white_noise", "background_noise")
"""The noise perturbations the robustness claim is about (at every level of the grid)."""


@dataclass
class ModelScores:
    """Test scores of one model over its seeds, aligned on the same clips."""

    model: str
    seeds: list[int]
    clean: list[np.ndarray]  # per seed, (clips, classes)
    perturbed: dict[tuple[str, float], list[np.ndarray]]  # (perturbation, level) -> per seed


def _labels_of(layout: Layout, task: str, model: str, seed: int) -> list[str] | None:
    try:
        return list(read_card(layout.model(task, model, seed))["labels"])
    except Exception:  # noqa: BLE001 - untrained or unreadable card: not part of the evidence
        return None


def load_task(params: Params, layout: Layout, task: str) -> tuple[str, np.ndarray, list[ModelScores], np.ndarray]:
    """``(kind, y, models, clip_ids)`` of one task: every model with predictions for all its seeds' clips.

    Models are kept when at least one seed has ``predictions.parquet``; the clips are the
    intersection over everything loaded (normally the whole test split).
    """
    frames: dict[tuple[str, int], pd.DataFrame] = {}
    rob: dict[tuple[str, int], pd.DataFrame] = {}
    labels = None
    for model in grid_models(params):
        for seed in params.grid.seeds:
            d = layout.metrics(task, model, seed)
            if (d / "predictions.parquet").exists():
                frames[(model, seed)] = pd.read_parquet(d / "predictions.parquet")
                labels = labels or _labels_of(layout, task, model, seed)
            if (d / "robustness_scores.parquet").exists():
                rob[(model, seed)] = pd.read_parquet(d / "robustness_scores.parquet")
    if not frames or labels is None:
        return "", np.zeros(0), [], np.zeros(0)
    clip_ids = None
    for df in frames.values():
        ids = set(df["clip_id"].astype(str))
        clip_ids = ids if clip_ids is None else clip_ids & ids
    order = sorted(clip_ids or [])
    first = next(iter(frames.values())).assign(clip_id=lambda d: d["clip_id"].astype(str)).set_index("clip_id").loc[order]
    multilabel = any(len(v) != 1 for v in first["labels"]) or _is_multilabel(layout, task)
    kind = kind_of(multilabel)
    y = label_matrix([list(v) for v in first["labels"]], labels, multilabel)
    models = []
    for model in grid_models(params):
        seeds = [s for s in params.grid.seeds if (model, s) in frames]
        if not seeds:
            continue
        clean = [_matrix(frames[(model, s)], order) for s in seeds]
        perturbed: dict[tuple[str, float], list[np.ndarray]] = {}
        if all((model, s) in rob for s in seeds):
            for (pert, level), _ in rob[(model, seeds[0])].groupby(["perturbation", "level"], dropna=False):
                if pert not in NOISE_PERTURBATIONS:
                    continue
                mats = []
                for s in seeds:
                    r = rob[(model, s)]
                    sub = r[(r["perturbation"] == pert) & (r["level"] == level)]
                    mats.append(_matrix(sub, order, allow_missing=True))
                if all(m is not None for m in mats):
                    perturbed[(pert, float(level))] = mats
        models.append(ModelScores(model, seeds, clean, perturbed))
    return kind, y, models, np.asarray(order)


def _is_multilabel(layout: Layout, task: str) -> bool:
    meta = layout.segments(task) / "meta.json"
    return meta.exists() and json.loads(meta.read_text()).get("kind") == MULTILABEL


def _matrix(df: pd.DataFrame, order: list[str], allow_missing: bool = False) -> np.ndarray | None:
    by_id = dict(zip(df["clip_id"].astype(str), df["scores"]))
    if allow_missing and not all(c in by_id for c in order):
        return None
    return np.stack([np.asarray(by_id[c], dtype=np.float64) for c in order])


class _Resamples:
    """Per-model statistics on scipy's bootstrap resamples, cached so paired differences reuse them."""

    def __init__(self, kind: str, y: np.ndarray, metric: str | None = None, threshold: float = 0.1) -> None:
        self.kind, self.y = kind, y
        self.metric, self.threshold = metric, threshold  # None: the kind's primary (clean scores only)
        self._cache: dict[tuple[str, str, str], np.ndarray] = {}

    def clean(self, m: ModelScores, idx: np.ndarray) -> np.ndarray:
        def compute() -> np.ndarray:
            return np.mean([metric_on(self.kind, self.y, s, idx, self.metric, self.threshold) for s in m.clean], axis=0)

        return self._memo("clean", m.model, idx, compute)

    def perturbed(self, m: ModelScores, idx: np.ndarray) -> np.ndarray:
        def compute() -> np.ndarray:
            per_point = [np.mean([metric_on(self.kind, self.y, s, idx) for s in mats], axis=0) for mats in m.perturbed.values()]
            return np.mean(per_point, axis=0)

        return self._memo("perturbed", m.model, idx, compute)

    def drop(self, m: ModelScores, idx: np.ndarray) -> np.ndarray:
        return self.clean(m, idx) - self.perturbed(m, idx)

    def relative(self, m: ModelScores, idx: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.drop(m, idx) / self.clean(m, idx)

    def _memo(self, what: str, model: str, idx: np.ndarray, fn: Callable[[], np.ndarray]) -> np.ndarray:
        idx = np.asarray(idx, dtype=np.int64)
        key = (what, model, hashlib.sha1(idx.tobytes() + str(idx.shape).encode()).hexdigest())
        if key not in self._cache:
            self._cache[key] = fn()
        return self._cache[key]

    def interval(self, statistic: Callable[[np.ndarray], np.ndarray], seed: int = 0) -> Interval:
        n = len(self.y)
        value = float(statistic(np.arange(n)))
        if n < 2:
            return Interval(value, float("nan"), float("nan"))
        low, high = _bootstrap(lambda idx, axis=-1: statistic(np.asarray(idx, dtype=np.int64)), n, seed, N_RESAMPLES)
        return Interval(value, low, high)


def accuracy_table(params: Params, layout: Layout, task: str) -> pd.DataFrame:
    """Per model: seeds, mean +- std over seeds, seed-averaged metric [95 % CI], paired difference to the best.

    Columns: ``model, metric, n_seeds, seed_mean, seed_std, seed_ci_low, seed_ci_high`` (95 % t-interval over
    seeds), ``value, ci_low, ci_high`` (95 % bootstrap over test clips), ``diff_to_best, diff_low, diff_high, best``.
    Empty when no model of the task has been evaluated.
    """
    kind, y, models, _ = load_task(params, layout, task)
    if not models:
        return pd.DataFrame()
    metric = primary_metric(kind, task)  # DCASE: the per-sample F1 at evaluate.threshold
    rs = _Resamples(kind, y, metric, params.evaluate.threshold)
    rows = []
    for m in models:
        per_seed = [float(metric_on(kind, y, s, np.arange(len(y)), metric, rs.threshold)) for s in m.clean]
        mean, std, n = seed_summary(per_seed)
        ci, over_seeds = rs.interval(lambda idx, m=m: rs.clean(m, idx)), seed_interval(per_seed)
        rows.append(
            {
                "model": m.model,
                "metric": metric,
                "n_seeds": n,
                "seed_mean": mean,
                "seed_std": std,
                "seed_ci_low": over_seeds.low,
                "seed_ci_high": over_seeds.high,
                "value": ci.value,
                "ci_low": ci.low,
                "ci_high": ci.high,
            }
        )
    df = pd.DataFrame(rows)
    best = models[int(df["value"].to_numpy().argmax())]
    diffs = []
    for m in models:
        if m is best:
            diffs.append(Interval(0.0, 0.0, 0.0))
            continue
        diffs.append(rs.interval(lambda idx, m=m: rs.clean(m, idx) - rs.clean(best, idx)))
    df["diff_to_best"] = [d.value for d in diffs]
    df["diff_low"] = [d.low for d in diffs]
    df["diff_high"] = [d.high for d in diffs]
    df["best"] = best.model
    return df


def robustness_table(params: Params, layout: Layout, task: str) -> tuple[pd.DataFrame, _Resamples | None, list[ModelScores]]:
    """Per model: clean, mean perturbed, absolute and relative drop under noise, each with a 95 % CI.

    Returns ``(table, resamples, models)``; pass all three to :func:`harmonic_statement`. The perturbed value is
    the mean over every noise point (``white_noise`` and ``background_noise`` at each level of ``robustness.grid``),
    seed-averaged. Intervals: ``<name>_low/_high`` bootstrap over test clips; ``drop_seed_low/_high`` the
    t-interval of the drop over seeds (:func:`seed_drops`).
    """
    kind, y, models, _ = load_task(params, layout, task)
    models = [m for m in models if m.perturbed]
    if not models:
        return pd.DataFrame(), None, []
    rs = _Resamples(kind, y)
    rows = []
    for m in models:
        row = {"model": m.model, "n_seeds": len(m.seeds), "n_points": len(m.perturbed), "n_clips": len(y)}
        for name, fn in (("clean", rs.clean), ("perturbed", rs.perturbed), ("drop", rs.drop), ("relative_drop", rs.relative)):
            ci = rs.interval(lambda idx, fn=fn, m=m: fn(m, idx))
            row.update({name: ci.value, f"{name}_low": ci.low, f"{name}_high": ci.high})
        over_seeds = seed_interval(seed_drops(kind, y, m))
        row.update({"drop_seed_low": over_seeds.low, "drop_seed_high": over_seeds.high})
        rows.append(row)
    return pd.DataFrame(rows), rs, models


def seed_drops(kind: str, y: np.ndarray, m: ModelScores, point: tuple[str, float] | None = None) -> list[float]:
    """Each seed's absolute drop on the whole test split: clean metric minus the metric at ``point``
    (``(perturbation, level)``), or minus the mean over every noise point when ``point`` is None."""
    full = np.arange(len(y))
    points = [point] if point is not None else list(m.perturbed)
    out = []
    for i in range(len(m.seeds)):
        perturbed = np.mean([float(metric_on(kind, y, m.perturbed[p][i], full)) for p in points])
        out.append(float(metric_on(kind, y, m.clean[i], full)) - perturbed)
    return out


def is_harmonic(model: str, params: Params) -> bool:
    """Whether grid model ``model`` has the harmonic front-end (hcnn, ``harmonic+...`` or an alias of one)."""

    try:
        variant = grid_model(params, model).variant
        frontend, _spec = resolve_registry(variant)
    except (KeyError, ValueError):
        return False
    return frontend == "harmonic"


def harmonic_statement(
    params: Params, table: pd.DataFrame, rs: _Resamples | None, models: list[ModelScores], task: str
) -> tuple[pd.DataFrame, str]:
    """Paired differences of absolute drop, harmonic model minus each other model, and one plain sentence.

    A negative difference means the harmonic model lost less under noise. The sentence says
    whether a harmonic model degrades least with the intervals excluding a tie, or whether the
    data cannot tell, or whether it degrades more, naming the numbers.
    """
    if table.empty or rs is None:
        return pd.DataFrame(), f"{task}: no robustness scores yet."
    harmonic = [m for m in models if is_harmonic(m.model, params)]
    if not harmonic:
        return pd.DataFrame(), f"{task}: no harmonic front-end in the grid."
    rows = []
    for h in harmonic:
        for other in models:
            if other is h:
                continue
            d = rs.interval(lambda idx, h=h, o=other: rs.drop(h, idx) - rs.drop(o, idx))
            rows.append({"harmonic": h.model, "other": other.model, "drop_difference": d.value, "low": d.low, "high": d.high})
    diffs = pd.DataFrame(rows)
    sentences = []
    level = int(round(CONFIDENCE * 100))
    ranked = table.sort_values("drop")["model"].tolist()
    for h in harmonic:
        sub = diffs[diffs["harmonic"] == h.model]
        better = int((sub["high"] < 0).sum())
        worse = int((sub["low"] > 0).sum())
        tied = len(sub) - better - worse
        rank = ranked.index(h.model) + 1
        drop = table.set_index("model").loc[h.model]
        if better == len(sub):
            verdict = "degrades least: its drop is smaller than every other model's, with every paired interval below zero"
        elif worse == 0 and better > 0:
            verdict = (
                f"is not worse than any model; it degrades significantly less than {better} of {len(sub)}, "
                f"and the other {tied} cannot be told apart"
            )
        elif worse == 0:
            verdict = "cannot be told apart from any other model (every paired interval includes zero)"
        else:
            verdict = (
                f"does not degrade least: {worse} of {len(sub)} models lose significantly less under noise "
                f"({better} lose significantly more, {tied} cannot be told apart)"
            )
        sentences.append(
            f"{task}: {h.model} (absolute drop {drop['drop']:.3f} [{drop['drop_low']:.3f}, "
            f"{drop['drop_high']:.3f}], rank {rank} of {len(table)}) {verdict} ({level} % paired bootstrap "
            f"over {int(drop['n_clips'])} test clips, {int(drop['n_seeds'])} seed(s))."
        )
    return diffs, " ".join(sentences)
