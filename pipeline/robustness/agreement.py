"""Label-free robustness: how much a model's tags on unlabelled audio move under perturbations.

``musicrep robustness FOLDER MODEL`` (FOLDER: audio files without labels; MODEL: any
``--model`` value of ``predict``, ``sota:`` names included). For every file and every
``(perturbation, level)`` of ``robustness.grid`` (the same perturbations, SNRs and per-clip
seeds as the labelled stage, :mod:`pipeline.robustness.stage`), :func:`run_agreement` compares
the perturbed scores with the clean ones:

- ``spearman``: Spearman rank correlation of the two score vectors over the model's tags
  (1 = the tags keep their order);
- ``top5_overlap``: the share of the clean top-5 tags still in the perturbed top-5 (0-1).

Scores follow the evaluation protocol (:func:`pipeline.models.inference.predict_clips`): each file is
cut into ``ceil(samples / input length)`` evenly spaced input-length chunks, whose activated
scores are averaged. Each metric is summarised by its mean over files with a 95 % percentile
bootstrap interval over files (:func:`pipeline.evaluation.stats.mean_interval`). Outputs, written into
``out_dir``: ``agreement.csv`` (one row per point and metric: ``perturbation, level, unit,
metric, mean, low, high, n_clips``), ``agreement_clips.csv`` (per file) and ``agreement.json``.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from pipeline.audio.io import AudioError, read_audio
from pipeline.audio.stream import collect_inputs
from pipeline.core.errors import UserError
from pipeline.core.io_utils import atomic_path, write_json
from pipeline.core.paths import Layout
from pipeline.evaluation.stats import mean_interval
from pipeline.inference.predict import load_for_inference
from pipeline.models.inference import predict_clips
from pipeline.models.runtime import Runtime
from pipeline.robustness.noises import load_noise
from pipeline.robustness.perturb import INFO
from pipeline.robustness.stage import clip_seed, perturbed_waves, validate_grid

if TYPE_CHECKING:
    from pipeline.config.params import Params

log = logging.getLogger(__name__)

TOP_K = 5
METRICS = ("spearman", "top5_overlap")


def clip_agreement(clean: np.ndarray, perturbed: np.ndarray, k: int = TOP_K) -> tuple[float, float]:
    """``(Spearman rho, top-k overlap)`` of two score vectors ``(tags,)``; rho is NaN for a constant vector."""

    with np.errstate(invalid="ignore"):
        rho = float(spearmanr(clean, perturbed).statistic) if np.ptp(clean) > 0 and np.ptp(perturbed) > 0 else math.nan
    k = min(k, len(clean))
    top = set(np.argsort(-clean)[:k]) & set(np.argsort(-perturbed)[:k])
    return rho, len(top) / k


def _score(model, waves: list[np.ndarray], device) -> np.ndarray:
    length = model.input_length
    return np.stack(
        [predict_clips(model, [w], n_chunks=max(1, math.ceil(len(w) / length)), device=device, bf16=False)[0] for w in waves]
    )


def run_agreement(inputs: list[str | Path], model_spec: str, params: Params, out_dir: str | Path, layout: Layout) -> pd.DataFrame:
    """Label-free robustness of ``model_spec`` on the audio files under ``inputs``; returns the summary table.

    Raises:
        UserError: no readable audio, a bad grid, a model that cannot be loaded.
    """

    model, card, _ = load_for_inference(model_spec, Runtime.resolve(params.runtime.device), layout.root)
    device = next(model.parameters()).device
    rp = params.robustness
    grid = {name: [float(v) for v in levels] for name, levels in rp.grid.items()}
    validate_grid(grid)
    files, waves = [], []
    for path in collect_inputs(inputs):
        try:
            waves.append(read_audio(path, sample_rate=model.config.sample_rate))
            files.append(path)
        except AudioError as exc:
            log.warning("%s: %s; skipped", path, exc)
    if not waves:
        raise UserError(f"no readable audio under {', '.join(map(str, inputs))}; pass audio files or folders of them.")
    noise = None
    if any(INFO[name].needs_noise for name in grid):
        noise = load_noise(rp.noise_source, layout, seed=params.seed)
    clean = _score(model, waves, device)
    ids = [p.stem for p in files]
    per_clip, summary = [], []
    for name, levels in grid.items():
        seeds = [clip_seed(params.seed, name, cid) for cid in ids]
        for level in levels:
            perturbed = _score(model, list(perturbed_waves(waves, name, level, seeds, noise=noise, device=device)), device)
            values = np.array([clip_agreement(c, p) for c, p in zip(clean, perturbed)])
            for cid, (rho, overlap) in zip(ids, values):
                per_clip.append({"clip": cid, "perturbation": name, "level": level, "spearman": rho, "top5_overlap": overlap})
            for j, metric in enumerate(METRICS):
                ok = values[~np.isnan(values[:, j]), j]
                iv = mean_interval(ok, seed=params.seed)
                summary.append(
                    {
                        "perturbation": name,
                        "level": level,
                        "unit": INFO[name].unit,
                        "metric": metric,
                        "mean": iv.value,
                        "low": iv.low,
                        "high": iv.high,
                        "n_clips": len(ok),
                    }
                )
            log.info("agreement %s %s %s: spearman %.3f", model_spec, name, level, np.nanmean(values[:, 0]))
    table = pd.DataFrame(summary)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "agreement.csv") as tmp:
        table.to_csv(tmp, index=False)
    with atomic_path(out / "agreement_clips.csv") as tmp:
        pd.DataFrame(per_clip).to_csv(tmp, index=False)
    write_json(
        out / "agreement.json",
        {
            "model": model_spec,
            "model_sha256": card.get("sha256"),
            "files": [str(p) for p in files],
            "noise_source": rp.noise_source if noise is not None else None,
            "points": summary,
        },
    )
    return table


__all__ = ["METRICS", "clip_agreement", "run_agreement"]
