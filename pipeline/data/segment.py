"""``segment`` stage: decode a raw dataset into 16 kHz waveform shards + a Parquet manifest.

Output directory ``data/segments/<dataset>/``:

- ``shard-00000.npy`` ...: float32 1-D arrays (memory-mappable) holding clips back to back;
- ``manifest.parquet``: one row per clip: ``clip_id, split, labels, shard, offset,
  n_samples, source_sha256, source_path``;
- ``meta.json``: dataset name, task, kind, label vocabulary, sample rate, coverage (of clips
  and of audio seconds: ``seconds_listed``, ``seconds_used``, ``seconds_fraction``),
  ``split_source`` and ``vocabulary_source`` (where the split and the label order come from, in
  words; also logged and copied into every cell's ``eval.json``) and, for own datasets, ``split`` (how the split was made: ``split_method``, groups crossing splits);
- ``report.json``: every skipped input with its reason (unreadable, empty, too short,
  silent), expected / present counts and the same ``split`` block.

Inputs that cannot be used are skipped and listed; they never stop the stage. The
directory is built under a temporary name and renamed when complete, so an interrupted run
never leaves a half-written dataset that looks finished.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pipeline.audio.io import AudioError, check_audio_path, peak_dbfs, read_audio
from pipeline.core.errors import UserError
from pipeline.core.io_utils import make_temp_dir, sha256_file, write_json
from pipeline.core.paths import Layout
from pipeline.core.progress import track
from pipeline.core.task_kinds import MULTILABEL
from pipeline.data.registry import get_source
from pipeline.data.split_checks import one_class_warning

if TYPE_CHECKING:
    from pipeline.config.params import Params

log = logging.getLogger(__name__)
MANIFEST = "manifest.parquet"


class _ShardWriter:
    """Accumulates clips and writes ``shard-NNNNN.npy`` files of about ``shard_mb`` MiB."""

    def __init__(self, out_dir: Path, shard_mb: int) -> None:
        self.out_dir = out_dir
        self.limit = shard_mb * (1 << 20) // 4
        self.buffer: list[np.ndarray] = []
        self.filled = 0
        self.index = 0

    def add(self, wave: np.ndarray) -> tuple[str, int]:
        if self.filled and self.filled + len(wave) > self.limit:
            self.flush()
        name, offset = f"shard-{self.index:05d}.npy", self.filled
        self.buffer.append(wave.astype(np.float32, copy=False))
        self.filled += len(wave)
        return name, offset

    def flush(self) -> None:
        if not self.buffer:
            return
        np.save(self.out_dir / f"shard-{self.index:05d}.npy", np.concatenate(self.buffer))
        self.buffer, self.filled = [], 0
        self.index += 1


def segment_dataset(dataset: str, params: Params, layout: Layout) -> Path:
    """Run the ``segment`` stage for ``dataset``; return the output directory."""
    source = get_source(dataset, params, layout)
    raw_dir = layout.raw(dataset)
    catalog = source.catalog(raw_dir, params)
    out_dir = layout.segments(dataset)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = make_temp_dir(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent)  # one per run, never shared

    seg = params.segment
    writer = _ShardWriter(tmp_dir, seg.shard_mb)
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    hashes: dict[str, str] = {}
    spans: dict[str, list[tuple[float, float, bool]]] = defaultdict(list)  # catalog path -> (start, end, cropped)
    for clip in track(catalog.clips.itertuples(index=False), total=len(catalog.clips), description=f"segment {dataset}"):
        path = Path(clip.path)
        if not path.is_absolute():
            path = raw_dir / path
        try:
            check_audio_path(path)  # names dangling links, loops, FIFOs (never opened), unreadable files
            wave = read_audio(
                path, float(clip.start_s or 0.0), None if pd.isna(clip.duration_s) else float(clip.duration_s), seg.sample_rate
            )
            if len(wave) < seg.min_seconds * seg.sample_rate:
                raise AudioError(f"too short ({len(wave) / seg.sample_rate:.3f} s < {seg.min_seconds} s)")
            if peak_dbfs(wave) < seg.silence_dbfs:
                raise AudioError(f"silent (peak below {seg.silence_dbfs} dBFS)")
        except AudioError as exc:
            skipped.append({"clip_id": str(clip.clip_id), "path": str(path), "reason": str(exc)})
            log.warning("skipping %s: %s", path, exc)
            continue
        if str(path) not in hashes:
            hashes[str(path)] = sha256_file(path)
        shard, offset = writer.add(wave)
        spans[str(clip.path)].append(
            (float(clip.start_s or 0.0), float(clip.start_s or 0.0) + len(wave) / seg.sample_rate, not pd.isna(clip.duration_s))
        )
        rows.append(
            {
                "clip_id": str(clip.clip_id),
                "split": str(clip.split),
                "labels": list(clip.labels),
                "shard": shard,
                "offset": int(offset),
                "n_samples": int(len(wave)),
                "source_sha256": hashes[str(path)],
                "source_path": str(path.relative_to(raw_dir) if path.is_relative_to(raw_dir) else path),
            }
        )
    writer.flush()
    if not rows:
        shutil.rmtree(tmp_dir, ignore_errors=True)

        raise UserError(
            f"no usable audio in {raw_dir} ({len(skipped)} files skipped); check the files or re-run `musicrep download {dataset}`."
        )
    manifest = pd.DataFrame(rows)
    manifest.to_parquet(tmp_dir / MANIFEST, index=False)
    one_class = one_class_warning(manifest, dataset)
    if one_class:
        log.warning("%s", one_class)
    expected = catalog.expected if catalog.expected is not None else len(catalog.clips)
    coverage = {
        "expected": int(expected),
        "listed": int(len(catalog.clips)),
        "present": int(len(rows)),
        "skipped": len(skipped),
        "missing": len(catalog.missing),
        "fraction": round(len(rows) / expected, 6) if expected else math.nan,
        "per_split": manifest["split"].value_counts().to_dict(),
        **audio_coverage(catalog, spans, seg.sample_rate),
    }
    kind, task = catalog.kind or source.kind, source.task
    if kind != source.kind:
        task = "tagging" if kind == MULTILABEL else "keywords"
    write_json(
        tmp_dir / "meta.json",
        {
            "dataset": dataset,
            "task": task,
            "kind": kind,
            "labels": catalog.labels,
            "sample_rate": seg.sample_rate,
            "clip_seconds": source.clip_seconds,
            "coverage": coverage,
            "total_seconds": float(manifest["n_samples"].sum() / seg.sample_rate),
            "split_source": catalog.split_source,
            "vocabulary_source": catalog.vocabulary_source,
            **({"split": catalog.info} if catalog.info else {}),
        },
    )
    write_json(
        tmp_dir / "report.json",
        {
            "coverage": coverage,
            **({"split": catalog.info} if catalog.info else {}),
            "skipped": skipped,
            "missing": catalog.missing[:10_000],
        },
    )
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp_dir.rename(out_dir)
    log.info("segmented %s: %d clips (%d skipped) -> %s", dataset, len(rows), len(skipped), out_dir)
    log.info("%s: split from %s; vocabulary from %s", dataset, catalog.split_source, catalog.vocabulary_source)
    return out_dir


def audio_coverage(catalog: Any, spans: dict[str, list[tuple[float, float, bool]]], sample_rate: int) -> dict[str, Any]:
    """Seconds of audio listed vs written to the shards (``seconds_fraction``), not only clips.

    A file's length comes from ``catalog.durations`` where the source gives it; a file read
    whole has the length decoded. Files with neither (skipped, unreadable, absent) are counted
    in ``seconds_unknown_files``. Overlapping clips count their seconds once.
    """
    known = dict(catalog.durations or {})
    used, total, unknown = 0.0, 0.0, 0
    for path in dict.fromkeys(str(p) for p in catalog.clips["path"]):
        pieces = sorted(spans.get(path, []))
        if path in known:
            length = known[path]
        elif pieces and not any(cropped for _, _, cropped in pieces):
            length = max(end for _, end, _ in pieces)
        else:
            unknown += 1
            continue
        total += length
        covered, reach = 0.0, 0.0
        for start, end, _ in pieces:
            start, end = max(start, reach), min(end, length + 1.0 / sample_rate)
            if end > start:
                covered += end - start
                reach = end
        used += min(covered, length)
    return {
        "seconds_listed": round(total, 3),
        "seconds_used": round(used, 3),
        "seconds_fraction": round(used / total, 6) if total > 0 else math.nan,
        "seconds_unknown_files": unknown,
    }


def load_meta(seg_dir: Path) -> dict[str, Any]:
    return json.loads((Path(seg_dir) / "meta.json").read_text())
