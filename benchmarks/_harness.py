"""What the benchmark scripts share: their common options, alternating timings, the JSON they write, a store of synthetic clips."""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks._machine import describe
from pipeline.data.shards import FeatureStore, SegmentStore


def benchmark_parser(doc: str | None, **defaults: int | float) -> argparse.ArgumentParser:
    """An argument parser with ``--NAME`` (of the default's type) for each default given, and ``--json``."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, default in defaults.items():
        ap.add_argument(f"--{name}", type=type(default), default=default)
    ap.add_argument("--json", type=Path, help="write the results here")
    return ap


def alternating_medians(timings: dict[str, Callable[[], float]], rounds: int) -> dict[str, float]:
    """The median of each timing (a function returning seconds) over ``rounds`` rounds that run them in turn.

    Alternating, rather than timing one contender after the other, gives every contender the same share of
    the machine's drift (clock boost, heat, other load).
    """
    seconds: dict[str, list[float]] = {name: [] for name in timings}
    for _ in range(rounds):
        for name, timing in timings.items():
            seconds[name].append(timing())
    return {name: statistics.median(values) for name, values in seconds.items()}


def write_results(args: argparse.Namespace, results: Any, device: str = "cpu", **extra: Any) -> dict[str, Any]:
    """``{"machine", **extra, "args", "results"}``, written to ``args.json`` if given; returned."""
    out = {"machine": describe(device), **extra, "args": {k: str(v) for k, v in vars(args).items()}, "results": results}
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return out


def write_stores(root: Path, clips: int, audio: np.ndarray, features: np.ndarray, kind: str) -> tuple[SegmentStore, FeatureStore]:
    """A one-shard segment store and feature cache of ``clips`` equal clips in ``root/segments``, ``root/features``.

    Args:
        audio: the shard, ``(clips * samples,)`` float32.
        features: the feature shard, ``(1, bins, clips * frames)`` float16.
        kind: the task kind recorded in ``meta.json`` (every clip is labelled ``a``, split ``train``).
    """
    samples, frames = audio.size // clips, features.shape[-1] // clips
    seg, feat = root / "segments", root / "features"
    seg.mkdir()
    feat.mkdir()
    np.save(seg / "shard-00000.npy", audio)
    ids = [f"c{i:06d}" for i in range(clips)]
    pd.DataFrame(
        {
            "clip_id": ids,
            "split": "train",
            "labels": [["a"]] * clips,
            "shard": "shard-00000.npy",
            "offset": np.arange(clips) * samples,
            "n_samples": samples,
            "source_sha256": "0" * 64,
            "source_path": "x",
        }
    ).to_parquet(seg / "manifest.parquet", index=False)
    (seg / "meta.json").write_text(json.dumps({"labels": ["a"], "kind": kind}))
    np.save(feat / "shard-00000.npy", features)
    pd.DataFrame(
        {"clip_id": ids, "shard": "shard-00000.npy", "offset": np.arange(clips) * frames, "n_frames": frames}
    ).to_parquet(feat / "index.parquet", index=False)
    (feat / "spec.json").write_text(json.dumps({"pad_value": -100.0}))
    return SegmentStore(seg), FeatureStore(feat)
