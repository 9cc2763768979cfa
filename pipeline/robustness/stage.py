"""``robustness`` stage: test metrics of a trained model under perturbations.

For one (task, model), :func:`run_robustness`

1. loads the packaged model (``models/<task>/<model>/seed<k>/``) and the test split of
   ``data/segments/<task>/`` (at most ``robustness.max_clips`` clips, a seeded random subset
   in manifest order, the same subset for every model of the task);
2. scores the clean clips and every ``(perturbation, level)`` of ``robustness.grid`` with the
   evaluation protocol (:func:`pipeline.models.inference.predict_clips`: the whole clip is perturbed,
   then chunked and the chunk scores averaged, as in the reference robustness script); in a grid cell
   the clean point takes the scores ``evaluate`` has just written, so its metrics equal ``eval.json``'s;
3. computes the task metrics (:func:`pipeline.evaluation.metrics.task_metrics`) at each point and writes,
   atomically, into ``metrics/<task>/<model>/seed<k>/``:

   - ``robustness.parquet`` / ``robustness.csv``: tidy table, one row per
     (perturbation, level, metric): ``task, model, seed, perturbation, level, metric, value, unit,
     n_clips, noise_source`` (the noise bank of background-noise points, else empty); the unperturbed point has ``perturbation == "clean"`` and ``level`` NaN;
   - ``robustness.json``: flat ``{"<perturbation>/<unit>_<level>/<metric>": value}`` for
     ``dvc metrics show`` (e.g. ``white_noise/snr_10/roc_auc``, ``clean/roc_auc``);
   - ``robustness_scores.parquet``: the activated scores of every clip at every point (the
     report's bootstrap intervals of degradation, paired across models);
   - the figure (primary metric vs level, one panel per perturbation) is drawn by the report
     (:func:`pipeline.robustness.plots.plot_robustness`), so a grid cell never imports matplotlib;

4. logs the same numbers to MLflow as ``robust/<perturbation>/<unit>_<level>/<metric>`` via
   ``pipeline.tracking.runs.log_robustness`` when that function exists.

Random perturbations use one seed per clip derived from ``(params.seed, perturbation,
clip_id)``, the same at every level (common random numbers: a clip gets the same noise pattern
at 20 dB and at 0 dB, only scaled), so curves are smooth and re-runs are identical.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from pipeline.config.project import pretrained_mirror
from pipeline.core.errors import UserError
from pipeline.core.io_utils import atomic_path, write_json
from pipeline.core.paths import Layout
from pipeline.data.shards import SegmentStore, select_clips
from pipeline.evaluation.evaluate import evaluated_scores
from pipeline.evaluation.label_bridge import LabelBridge, load_for_scoring
from pipeline.models.inference import predict_clips
from pipeline.models.runtime import Runtime, resolve_runtime
from pipeline.robustness.noises import load_noise
from pipeline.robustness.perturb import INFO, PERTURBATIONS, apply, check_level
from pipeline.tracking.runs import log_robustness

if TYPE_CHECKING:
    from pipeline.config.params import Params

log = logging.getLogger(__name__)

COLUMNS = ["task", "model", "seed", "perturbation", "level", "metric", "value", "unit", "n_clips", "noise_source"]
TABLE, CSV, JSON, PNG = "robustness.parquet", "robustness.csv", "robustness.json", "robustness.png"
SCORES = "robustness_scores.parquet"
"""Per clip and point: ``perturbation, level, clip_id, scores`` (the report's paired intervals)."""
CLEAN = "clean"
MAX_BATCH_SAMPLES = 1 << 21  # samples perturbed at once (about 2 min of audio, ~8 MB per copy)
MAX_BATCH_CLIPS = 64
CACHE_BYTES = 512 << 20  # keep the selected clean clips in memory below this size
_SKIP_METRICS = {"n_classes_scored"}  # bookkeeping, not a score


# --------------------------------------------------------------------------------------------
# names
# --------------------------------------------------------------------------------------------
def format_level(level: float) -> str:
    """Filesystem-safe level text: ``10 -> '10'``, ``-1 -> 'm1'``, ``0.8 -> '0p8'``."""
    v = float(level)
    if v == 0:
        v = 0.0  # no "-0"
    return f"{v:g}".replace("-", "m").replace(".", "p").replace("+", "")


def level_key(perturbation: str, level: float) -> str:
    """``snr_10``, ``semitones_m1``, ``rate_1p25``, ``db_20``, ``preset_4`` (unit from ``INFO``)."""
    return f"{INFO[perturbation].unit}_{format_level(level)}"


def metric_key(perturbation: str, level: float | None, metric: str) -> str:
    """Key of one number in ``robustness.json`` (MLflow adds the ``robust/`` prefix)."""
    if perturbation == CLEAN:
        return f"{CLEAN}/{metric}"
    return f"{perturbation}/{level_key(perturbation, level)}/{metric}"


def flat_metrics(table: pd.DataFrame) -> dict[str, float]:
    """``{metric_key: value}`` of a tidy table; non-finite values are left out."""
    out: dict[str, float] = {}
    for row in table.itertuples(index=False):
        if math.isfinite(row.value):
            out[metric_key(row.perturbation, row.level, row.metric)] = float(row.value)
    return out


def validate_grid(grid: dict[str, list[float]]) -> None:
    """Raise :class:`UserError` for unknown perturbations, bad levels or colliding level names."""
    for name, levels in grid.items():
        if name not in PERTURBATIONS:
            raise UserError(f"robustness.grid: unknown perturbation {name!r}; allowed: {', '.join(PERTURBATIONS)}.")
        keys = set()
        for level in levels:
            try:
                check_level(name, level)
            except ValueError as exc:
                raise UserError(f"robustness.grid.{name}: {exc}.") from None
            key = level_key(name, level)
            if key in keys:
                raise UserError(f"robustness.grid.{name}: two levels share the name {key!r}; remove the duplicate.")
            keys.add(key)


def clip_seed(base: int, perturbation: str, clip_id: str) -> int:
    """Stable 63-bit seed of one clip under one perturbation (independent of level and batch)."""
    digest = hashlib.sha256(f"{int(base)}\x00{perturbation}\x00{clip_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


# --------------------------------------------------------------------------------------------
# data and perturbation streams
# --------------------------------------------------------------------------------------------
def _open_store(seg_dir: Path):
    """``(manifest, meta, wave(row) -> ndarray)`` of a segments directory."""

    store = SegmentStore(seg_dir)
    return store.manifest, store.meta, store.wave


def perturbed_waves(
    waves: Iterable[np.ndarray],
    name: str,
    level: float,
    seeds: Sequence[int],
    *,
    noise: Sequence[np.ndarray] | None = None,
    device: torch.device | str = "cpu",
    max_batch_samples: int = MAX_BATCH_SAMPLES,
    max_batch_clips: int = MAX_BATCH_CLIPS,
) -> Iterator[np.ndarray]:
    """Yield the perturbed clips, in order, processing runs of equal-length clips as batches.

    Each clip uses its own seed (``seeds[i]``), so the output does not depend on batching.
    The perturbation runs on ``device``; the yielded arrays are float32 NumPy (CPU).
    """
    batch: list[np.ndarray] = []
    batch_seeds: list[int] = []

    def flush() -> list[np.ndarray]:
        x = torch.from_numpy(np.stack(batch)).to(device)
        y = apply(name, x, level, list(batch_seeds), noise=noise)
        out = list(y.float().cpu().numpy())
        batch.clear()
        batch_seeds.clear()
        return out

    for wave, seed in zip(waves, seeds, strict=True):
        wave = np.asarray(wave, dtype=np.float32)
        if batch and (
            len(wave) != len(batch[0]) or len(batch) >= max_batch_clips or (len(batch) + 1) * len(wave) > max_batch_samples
        ):
            yield from flush()
        batch.append(wave)
        batch_seeds.append(int(seed))
    if batch:
        yield from flush()


# --------------------------------------------------------------------------------------------
# the stage
# --------------------------------------------------------------------------------------------
def _metric_rows(
    cell: dict[str, Any], perturbation: str, level: float, metrics: dict[str, float], noise_source: str
) -> list[dict[str, Any]]:
    """Rows of :data:`COLUMNS` for one grid point: ``cell`` gives ``task``, ``model``, ``seed`` and
    ``n_clips``; ``noise_source`` is recorded for the perturbations that mix in recorded noise."""
    unit = "" if perturbation == CLEAN else INFO[perturbation].unit
    noisy = bool(INFO.get(perturbation) and INFO[perturbation].needs_noise)
    return [
        {
            "task": cell["task"],
            "model": cell["model"],
            "seed": cell["seed"],
            "perturbation": perturbation,
            "level": level,
            "metric": metric,
            "value": value,
            "unit": unit,
            "n_clips": cell["n_clips"],
            "noise_source": noise_source if noisy else "",
        }
        for metric, value in metrics.items()
    ]


def _save(
    task: str,
    model_name: str,
    table: pd.DataFrame,
    clip_scores: list[dict[str, Any]],
    out_dir: Path,
    params: Params,
    layout: Layout,
    seed: int,
    *,
    noise_source: str | None,
    track: bool,
) -> None:
    """Write the table (:func:`write_outputs`) and the per-clip scores; log them to MLflow when ``track``."""
    paths = write_outputs(table, out_dir)
    with atomic_path(out_dir / SCORES) as tmp:
        pd.DataFrame(clip_scores).to_parquet(tmp, index=False)
    paths["scores"] = out_dir / SCORES
    if not track:
        return

    flat = flat_metrics(table)
    robust = {f"robust/{k}": v for k, v in flat.items()}
    log_robustness(task, model_name, robust, list(paths.values()), params, layout, seed, noise_source=noise_source)


def run_robustness(
    task: str,
    model_name: str,
    params: Params,
    layout: Layout,
    *,
    track: bool = True,
    seed: int | None = None,
    label_map: dict[str, str] | None = None,
    reuse_clean: bool = False,
    runtime: Runtime | None = None,
) -> pd.DataFrame:
    """Run the robustness stage for one trained model; return the tidy table.

    Args:
        task: dataset/task name (``data/segments/<task>/``).
        model_name: grid model name (``models/<task>/<model_name>/``), or a published ``sota:`` model scored through
            the labels it shares with ``task`` (as ``evaluate``'s zero-shot path; ``metrics/<task>/sota-<dataset>/<model>/``).
        params: validated params (uses ``robustness``, ``evaluate``, ``runtime.device``,
            ``train.bf16`` and ``seed``).
        layout: project layout.
        track: log to MLflow through ``pipeline.tracking.runs.log_robustness`` when available.
        seed: training seed of the cell (default: the first of ``grid.seeds``); the clips
            and noise draws depend only on the data seed, so all seeds see the same inputs.
        label_map: ``{dataset label: model label}`` for a model whose vocabulary differs.
        reuse_clean: the clean point's scores from the ``predictions.parquet`` ``evaluate`` has just written
            (:func:`~pipeline.evaluation.evaluate.evaluated_scores`; a grid model without label map, all clips there).
        runtime: the device resolved once by the caller (a grid cell); default resolved from ``params``.

    Returns:
        Tidy DataFrame with :data:`COLUMNS` (also written to ``robustness.parquet``/``.csv``).

    Raises:
        UserError: bad grid, missing model or segments, empty test split, missing noises.
    """

    rp = params.robustness
    grid = {name: [float(v) for v in levels] for name, levels in rp.grid.items()} if rp.enabled else {}
    if not rp.enabled:
        log.info("robustness disabled in params: only the clean point is evaluated")
    validate_grid(grid)

    seed = params.grid.seeds[0] if seed is None else int(seed)
    device = (runtime or resolve_runtime(params)).device
    model, card, results = load_for_scoring(task, model_name, layout, seed, mirror=pretrained_mirror(params=params))
    track, model_name = track and results == model_name, results  # a published model has no training run to log into
    model.to(device)
    manifest, meta, wave_of = _open_store(layout.segments(task))
    test = manifest[manifest["split"] == "test"]
    if test.empty:
        raise UserError(f"{layout.segments(task)} has no test clips; re-run `musicrep segment {task}`.")
    test = select_clips(test, rp.max_clips, params.seed)
    bridge = LabelBridge.for_model(list(meta["labels"]), card, label_map, dataset=task, model=model_name)
    test, mapped, _ = bridge.select(test, what=f"{task} for {model_name}")  # single-label: clips it cannot name left out
    y_true = bridge.y(mapped)
    n_clips = len(test)
    rows_iter = list(test.itertuples(index=False))

    cache: list[np.ndarray] | None = None
    if int(test["n_samples"].sum()) * 4 <= CACHE_BYTES:
        cache = [wave_of(r) for r in rows_iter]

    def clean_waves() -> Iterator[np.ndarray]:
        return iter(cache) if cache is not None else (wave_of(r) for r in rows_iter)

    noise = None
    if any(INFO[name].needs_noise and levels for name, levels in grid.items()):  # as dag.noise_dependencies
        noise = load_noise(rp.noise_source, layout, seed=params.seed)

    clip_scores: list[dict[str, Any]] = []  # per clip and point, for bootstrap intervals in the report

    protocol = {"n_chunks": params.evaluate.n_chunks, "batch_size": params.runtime.eval_batch_size, "bf16": params.train.bf16}

    def score(waves: Iterable[np.ndarray], perturbation: str = CLEAN, level: float = math.nan, scores=None) -> dict[str, float]:
        scores = predict_clips(model, waves, device=device, **protocol) if scores is None else scores
        for r, row in zip(rows_iter, scores):
            clip_scores.append(
                {"perturbation": perturbation, "level": level, "clip_id": str(r.clip_id), "scores": row.astype(np.float32)}
            )
        metrics = bridge.metrics(y_true, scores, params.evaluate.threshold)
        return {k: float(v) for k, v in metrics.items() if k not in _SKIP_METRICS}

    records: list[dict[str, Any]] = []
    cell = {"task": task, "model": model_name, "seed": seed, "n_clips": n_clips}

    def add(perturbation: str, level: float, metrics: dict[str, float]) -> None:
        records.extend(_metric_rows(cell, perturbation, level, metrics, rp.noise_source))

    out_dir = layout.metrics(task, model_name, seed)
    own = reuse_clean and results == model_name and label_map is None  # a grid model scored on its own labels
    clean = evaluated_scores(out_dir, test["clip_id"].tolist()) if own else None
    t0 = time.perf_counter()
    add(CLEAN, math.nan, score(clean_waves(), scores=clean))
    how = "scores of evaluate" if clean is not None else "scored"
    log.info("robustness %s/%s: clean on %d clips (%s) in %.1f s", task, model_name, n_clips, how, time.perf_counter() - t0)
    for name, levels in grid.items():
        seeds = [clip_seed(params.seed, name, str(r.clip_id)) for r in rows_iter]
        for level in levels:
            t1 = time.perf_counter()
            waves = perturbed_waves(clean_waves(), name, level, seeds, noise=noise, device=device)
            add(name, level, score(waves, name, level))
            log.info(
                "robustness %s/%s: %s %s in %.1f s", task, model_name, name, level_key(name, level), time.perf_counter() - t1
            )

    table = pd.DataFrame.from_records(records, columns=COLUMNS)
    noise_source = rp.noise_source if noise is not None else None
    _save(task, model_name, table, clip_scores, out_dir, params, layout, seed, noise_source=noise_source, track=track)
    log.info("robustness %s/%s done in %.1f s -> %s", task, model_name, time.perf_counter() - t0, out_dir)
    return table


def write_outputs(table: pd.DataFrame, out_dir: str | Path) -> dict[str, Path]:
    """Write ``robustness.{parquet,csv,json}`` atomically into ``out_dir``; return their paths.

    The figure (:func:`plot_robustness`) is drawn by the report, so a grid cell never pays
    for importing matplotlib.
    """
    out_dir = Path(out_dir)
    paths = {"parquet": out_dir / TABLE, "csv": out_dir / CSV, "json": out_dir / JSON}
    with atomic_path(paths["parquet"]) as tmp:
        table.to_parquet(tmp, index=False)
    with atomic_path(paths["csv"]) as tmp:
        table.to_csv(tmp, index=False)
    write_json(paths["json"], flat_metrics(table))
    return paths


# --------------------------------------------------------------------------------------------
# report helpers
# --------------------------------------------------------------------------------------------
def robustness_summary(tables: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Degradation of every perturbed point relative to the same model's clean score.

    Args:
        tables: tidy robustness tables (any number of tasks/models; concatenated here).

    Returns:
        One row per (task, model, seed, perturbation, level, metric) with columns ``task, model,
        seed, perturbation, level, unit, metric, clean, value, drop`` (clean - value, against the
        same seed's clean score) and ``relative_degradation`` (1 - value/clean; NaN when clean
        is 0 or NaN).
    """
    cols = ["task", "model", "seed", "perturbation", "level", "unit", "metric", "clean", "value", "drop", "relative_degradation"]
    frames = [t for t in tables if t is not None and len(t)]
    if not frames:
        return pd.DataFrame(columns=cols)
    df = pd.concat(frames, ignore_index=True)
    if "seed" not in df:
        df["seed"] = 0
    keys = ["task", "model", "seed", "metric"]  # each seed's points against that seed's clean score
    clean = (
        df[df["perturbation"] == CLEAN][[*keys, "value"]].drop_duplicates(keys, keep="last").rename(columns={"value": "clean"})
    )
    pert = df[df["perturbation"] != CLEAN].merge(clean, on=keys, how="left")
    pert["drop"] = pert["clean"] - pert["value"]
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = 1.0 - pert["value"].to_numpy(float) / pert["clean"].to_numpy(float)
    rel[~np.isfinite(rel)] = np.nan
    pert["relative_degradation"] = rel
    if "unit" not in pert:
        pert["unit"] = [INFO[p].unit if p in INFO else "" for p in pert["perturbation"]]
    return pert[cols].sort_values(["task", "model", "seed", "perturbation", "level", "metric"]).reset_index(drop=True)
