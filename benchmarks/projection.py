"""Project the paper grid's cost from what the code runs: GPU-hours per cell and the makespan on 1/4/16 GPUs.

Read from the code: the grid (``profile: paper``: tasks, every registry variant, seeds), each
cell's input length (:func:`pipeline.models.zoo.input_length_for`, the short-clip protocol
included), the clip length of each dataset (its source), the validation and evaluation chunk
count (``evaluate.n_chunks``), ``train.epochs``, ``train.val_every``, ``train.val_max_clips`` and the
robustness grid's points. The split sizes are MTAT's reference lists (``pipeline.data.sources.mtat.REFERENCE_COUNTS``)
and, for Speech Commands and DCASE, the counts the code's split makes from the publishers' lists
and metadata (:data:`SPLITS`; DCASE's validation is drawn from the development clips, so it is not
the challenge's 51,172 / 488).

**Assumption (no GPU was lent):** the per-variant rate is the CPU's training samples/s at batch
16 and paper L (:data:`CPU_SAMPLES_PER_S`, docs/benchmarks.md, 2-core machine) times
``--speedup`` (default 100x). ``--rates bench.json`` (``benchmarks/models.py --json`` run on the
GPU) replaces both with measured rates. Time per clip scales with the cell's input length over
the paper L. A forward pass (validation, evaluation, robustness) counts a third of a training
step. Per cell::

    train       = epochs x train clips                              (one crop per clip per epoch)
    validation  = validated epochs x val clips x n_chunks / 3       (every train.val_every-th epoch and the last)
    test        = test clips x n_chunks x (1 + robustness points) / 3   (the clean point reuses evaluate's scores)

Data sizes (:func:`data_sizes`): every feature cache the grid builds for a dataset
(:func:`pipeline.features.cache.frontends_for_grid`) is built with the real code
(:func:`pipeline.features.cache.compute_cache`) on one clip of the dataset's clip length, and its
shard bytes are scaled by the dataset's clip count; the waveform is the segment shards' float32.

Cells are independent: on N GPUs the wall time is the makespan of the cells packed longest-first
(LPT) onto N GPUs, which no N brings below the longest cell. Examples::

    .venv/bin/python benchmarks/projection.py                       # docs/scaling.md's tables
    .venv/bin/python benchmarks/projection.py --cells               # one row per cell
    .venv/bin/python benchmarks/projection.py --rates bench.json    # measured GPU rates instead of the assumption
    .venv/bin/python benchmarks/projection.py --sizes               # also the waveform and feature-cache sizes
"""

from __future__ import annotations

import argparse
import heapq
import json
import logging
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import SAMPLE_RATE
from pipeline.core.io_utils import write_json
from pipeline.data.shards import SegmentStore
from pipeline.features.cache import compute_cache, frontends_for_grid

log = logging.getLogger("projection")

CPU_SAMPLES_PER_S = {
    "fcn": 2.29,
    "crnn": 1.84,
    "musicnn": 4.78,
    "samplecnn": 6.75,
    "samplecnn_se": 2.44,
    "hcnn": 4.45,
    "cnnsa": 1.55,
    "short_cnn": 7.38,
    "short_res": 7.52,
    "attention_rnn": 232.9,
    "gated_crnn": 6.42,
}
"""Measured: training samples/s at batch 16 and paper L on the 2-core CPU (docs/benchmarks.md, model zoo)."""

SPLITS = {
    "speech_commands": (84_843, 9_981, 11_005),
    "dcase2017_task4": (46_050, 5_610, 1_103),
}
"""(train, val, test) clips as the code splits them: Speech Commands by its list files; DCASE with the
per-class validation draw from the development clips (issue 27's count), the evaluation set as test."""

GPU_COUNTS = (1, 4, 16)


@dataclass(frozen=True)
class Cell:
    task: str
    model: str
    seed: int
    input_s: float
    hours: float


def _params(path: Path | None):
    from pipeline.config.params import load_params

    if path is not None:
        return load_params(path)
    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "params.yaml"
        file.write_text("profile: paper\n")
        return load_params(file)


def _splits(task: str) -> tuple[int, int, int]:
    if task == "mtat":
        from pipeline.data.sources.mtat import REFERENCE_COUNTS

        return REFERENCE_COUNTS["train"], REFERENCE_COUNTS["val"], REFERENCE_COUNTS["test"]
    if task not in SPLITS:
        raise SystemExit(f"no split sizes for {task!r}; add them to SPLITS in benchmarks/projection.py")
    return SPLITS[task]


def _rates(path: Path | None, speedup: float) -> dict[str, float]:
    """Samples/s at paper L per variant: measured on the GPU (``--rates``) or the CPU's times ``speedup``."""
    if path is None:
        return {m: r * speedup for m, r in CPU_SAMPLES_PER_S.items()}
    results = json.loads(path.read_text())["results"]
    return {r["variant"]: float(r["samples_per_second"]) for r in results if r.get("samples_per_second")}


def project(params, rates: dict[str, float]) -> list[Cell]:
    """Every cell of ``params``' grid with its projected GPU-hours."""
    from pipeline.data.registry import get_source
    from pipeline.models.grid import grid_models
    from pipeline.models.zoo import input_length_for, resolve_variant
    from pipeline.training.fit import validates

    epochs, chunks = params.train.epochs, params.evaluate.n_chunks
    validated = sum(validates(epoch, params.train) for epoch in range(1, epochs + 1))
    points = sum(len(v) for v in params.robustness.grid.values()) if params.robustness.enabled else 0
    cells = []
    for task in params.grid.tasks:
        source = get_source(task, params)
        clip_samples = round(source.clip_seconds * SAMPLE_RATE)
        n_train, n_val, n_test = _splits(task)
        if params.train.val_max_clips is not None:
            n_val = min(n_val, params.train.val_max_clips)
        for model in grid_models(params):
            length = input_length_for(model, params.profile, clip_samples, source.kind)
            paper_length = resolve_variant(model)[1].paper.input_length
            seconds_per_clip = (length / paper_length) / rates[model]  # one training step of one clip
            steps = epochs * n_train + (validated * n_val * chunks + n_test * chunks * (1 + points)) / 3
            for seed in params.grid.seeds:
                cells.append(Cell(task, model, seed, length / SAMPLE_RATE, steps * seconds_per_clip / 3600))
    return cells


@dataclass(frozen=True)
class DataSize:
    task: str
    clips: int
    clip_s: float
    waveform_bytes: int  # one clip in the float32 segment shards
    cache_bytes: dict[str, int]  # one clip in each feature cache the grid builds

    def total_gb(self, per_clip: int) -> float:
        return self.clips * per_clip / 1e9


def _one_clip_store(folder: Path, samples: int) -> SegmentStore:
    """A segmented dataset of one clip of ``samples`` (a tone at half scale), laid out as ``segment`` writes it."""
    folder.mkdir(parents=True)
    wave = (0.5 * np.sin(2 * np.pi * 440.0 * np.arange(samples) / SAMPLE_RATE)).astype(np.float32)
    np.save(folder / "shard-00000.npy", wave)
    row = {"clip_id": "c", "split": "train", "labels": ["x"], "shard": "shard-00000.npy", "offset": 0, "n_samples": samples}
    pd.DataFrame([row]).to_parquet(folder / "manifest.parquet", index=False)
    write_json(folder / "meta.json", {"labels": ["x"], "kind": "multilabel", "sample_rate": SAMPLE_RATE})
    return SegmentStore(folder)


def _payload_bytes(folder: Path) -> int:
    """Bytes of the arrays in a folder's ``shard-*.npy`` files (their dtype and shape, without the .npy headers)."""
    return sum(np.load(f, mmap_mode="r").nbytes for f in sorted(folder.glob("shard-*.npy")))


def _cache_label(spec: dict) -> str:
    """``96 mel bins, hop 256``: a cache named by its spec.json (what sets its size)."""
    bins = next((spec[k] for k in ("n_mels", "n_bins", "n_freq") if k in spec), "?")
    return f"{bins} {spec.get('frontend', 'feature')} bins, hop {spec.get('hop_length', '?')}"


def data_sizes(params) -> list[DataSize]:
    """Per dataset of the grid: clips, and one clip's bytes in the segment shards and in every feature cache the grid builds."""
    from pipeline.data.registry import get_source

    out = []
    for task in params.grid.tasks:
        source = get_source(task, params)
        samples = round(source.clip_seconds * SAMPLE_RATE)
        with tempfile.TemporaryDirectory() as tmp:
            store = _one_clip_store(Path(tmp) / "segments", samples)
            caches = {}
            for name, frontend in sorted(frontends_for_grid(task, params).items()):
                cache = compute_cache(store, frontend, Path(tmp) / "features" / name)
                caches[_cache_label(json.loads((cache / "spec.json").read_text()))] = _payload_bytes(cache)
            out.append(DataSize(task, sum(_splits(task)), source.clip_seconds, _payload_bytes(store.dir), caches))
    return out


def size_table(sizes: list[DataSize]) -> str:
    rows = [
        "| dataset | clips | clip (s) | waveform float32 (GB) | feature caches the grid builds: GB each | features (GB) |",
        "|---|---:|---:|---:|---|---:|",
    ]
    for d in sizes:
        each = "; ".join(f"{label}: {d.total_gb(b):.1f}" for label, b in sorted(d.cache_bytes.items(), key=lambda x: -x[1]))
        rows.append(
            f"| {d.task} | {d.clips:,} | {d.clip_s:g} | {d.total_gb(d.waveform_bytes):.1f} | {len(d.cache_bytes)}: {each} "
            f"| {d.total_gb(sum(d.cache_bytes.values())):.1f} |"
        )
    wave = sum(d.total_gb(d.waveform_bytes) for d in sizes)
    feats = sum(d.total_gb(sum(d.cache_bytes.values())) for d in sizes)
    rows.append(f"| all | {sum(d.clips for d in sizes):,} | | {wave:.1f} | | {feats:.1f} |")
    return "\n".join(rows)


def makespan(hours: list[float], gpus: int) -> float:
    """Longest-processing-time-first: each cell, longest first, onto the least loaded GPU."""
    loads = [0.0] * gpus
    for h in sorted(hours, reverse=True):
        heapq.heapreplace(loads, loads[0] + h)
    return max(loads)


def task_table(cells: list[Cell]) -> str:
    rows = ["| task | GPU-hours per cell | sum over the models | longest cell |", "|---|---|---|---|"]
    for task in dict.fromkeys(c.task for c in cells):
        sub = [c for c in cells if c.task == task]
        top = max(sub, key=lambda c: c.hours)
        low = min(c.hours for c in sub)
        rows.append(f"| {task} | {low:.2f}–{top.hours:.1f} | {sum(c.hours for c in sub):.0f} | {top.model}, {top.hours:.1f} h |")
    return "\n".join(rows)


def grid_table(by_speedup: dict[str, list[Cell]]) -> str:
    head = " | ".join(f"{n} GPU{'s' if n > 1 else ''}" for n in GPU_COUNTS)
    rows = [f"| rate | GPU-hours | {head} |", "|---|---|" + "---|" * len(GPU_COUNTS)]
    for label, cells in by_speedup.items():
        hours = [c.hours for c in cells]
        spans = " | ".join(f"{makespan(hours, n):.1f} h" for n in GPU_COUNTS)
        rows.append(f"| {label} | {sum(hours):.0f} | {spans} |")
    return "\n".join(rows)


def cell_table(cells: list[Cell]) -> str:
    rows = ["| task | model | seed | input (s) | GPU-hours |", "|---|---|---:|---:|---:|"]
    rows += [
        f"| {c.task} | {c.model} | {c.seed} | {c.input_s:g} | {c.hours:.2f} |" for c in sorted(cells, key=lambda c: -c.hours)
    ]
    return "\n".join(rows)


def report(params, speedup: float = 100.0, rates: Path | None = None, cells: bool = False, sizes: bool = False) -> str:
    """The tables as Markdown: per task, then the grid's GPU-hours and makespans (then, with ``cells``, every
    cell; with ``sizes``, the data sizes)."""
    if rates:
        by_rate = {f"measured ({rates.name})": project(params, _rates(rates, 1.0))}
        label = next(iter(by_rate))
    else:
        by_rate = {f"CPU x {s:g} (assumed)": project(params, _rates(None, s)) for s in (speedup / 2, speedup, speedup * 2)}
        label = f"CPU x {speedup:g} (assumed)"
    parts = [
        f"Cells: {label} (profile {params.profile}, {len(params.grid.seeds)} seed(s))",
        task_table(by_rate[label]),
        grid_table(by_rate),
    ]
    if cells:
        parts.append(cell_table(by_rate[label]))
    if sizes:
        parts.append(size_table(data_sizes(params)))
    return "\n\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", type=Path, default=None, help="a params file (default: profile paper as shipped)")
    parser.add_argument("--speedup", type=float, default=100.0, help="ASSUMED GPU speed-up over the measured CPU rate")
    parser.add_argument("--rates", type=Path, default=None, help="benchmarks/models.py --json output measured on the GPU")
    parser.add_argument("--cells", action="store_true", help="also print one row per cell")
    parser.add_argument("--sizes", action="store_true", help="also print the waveform and feature-cache sizes")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stdout)
    log.setLevel(logging.INFO)
    log.info("%s", report(_params(args.params), args.speedup, args.rates, args.cells, args.sizes))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
