"""``features`` stage: fill the spectrogram cache with the models' own front-ends.

For every model of the grid whose front-end is a fixed function of the waveform
(``Frontend.cache_spec()`` is not ``None``), the full clips of a segmented dataset are run
through *that very front-end module* and stored as float16 shards under
``data/features/<dataset>/<name>-<hash>/`` where ``<hash>`` is the hash of the transform's
parameters and of the segments they were computed from (:func:`segments_key`): a changed
parameter or changed audio is a new cache, never a stale one. Files:

- ``shard-00000.npy``: float16 ``(channels, bins, frames)``, clips concatenated on frames;
- ``index.parquet``: ``clip_id, shard, offset, n_frames``;
- ``spec.json``: the cache spec, its hash and ``pad_value`` (the output for silence).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from pipeline.config.params import grid_model
from pipeline.core.io_utils import sha256_file, stable_hash, write_json
from pipeline.core.paths import Layout
from pipeline.core.progress import track
from pipeline.data.shards import SegmentStore
from pipeline.models.build import build_for_task
from pipeline.models.grid import grid_models

if TYPE_CHECKING:
    from pipeline.config.params import Params
    from pipeline.models.base import Frontend

log = logging.getLogger(__name__)
SHARD_FRAMES = 200_000


def segments_key(seg_dir: str | Path) -> str:
    """Hash of the segmented data a cache is computed from (``manifest.parquet`` + ``meta.json``).

    The manifest holds every clip's source SHA-256, shard, offset and length, and the meta the
    sample rate and labels, so new or changed audio (a new ``seed``, a replaced file) gives a
    new key and therefore a new cache directory, also outside DVC (which deletes outputs).
    """
    seg_dir = Path(seg_dir)
    digests = [sha256_file(seg_dir / name) for name in ("manifest.parquet", "meta.json") if (seg_dir / name).exists()]
    return stable_hash(digests, length=8)


def cache_dir_name(spec: dict[str, Any], data_key: str | None = None) -> str:
    """``<name>-<hash>`` directory name of a cache spec computed from the segments ``data_key``.

    ``<hash>`` covers the transform's parameters and (when given) :func:`segments_key`.
    """
    name = spec.get("name", spec.get("frontend", "features"))
    return f"{name}-{stable_hash(spec if data_key is None else {'spec': spec, 'segments': data_key})}"


def frontends_for_grid(dataset: str, params: Params, data_key: str | None = None) -> dict[str, Frontend]:
    """Distinct cacheable front-ends used by the grid's models on ``dataset`` (keyed by cache directory name)."""

    out: dict[str, Frontend] = {}
    for name in grid_models(params):
        model = build_for_task(grid_model(params, name), dataset, n_classes=2, multilabel=True, clip_samples=16_000)
        spec = model.frontend.cache_spec()
        if spec is not None:
            out.setdefault(cache_dir_name(spec, data_key), model.frontend)
    return out


@torch.no_grad()
def compute_cache(store: SegmentStore, frontend: Frontend, out_dir: Path) -> Path:
    """Run ``frontend`` over every clip of ``store`` and write one cache directory."""
    spec = frontend.cache_spec()
    data_key = segments_key(store.dir)
    assert spec is not None
    tmp = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    frontend = frontend.eval()
    rows, buffer, filled, shard_i = [], [], 0, 0

    def flush() -> None:
        nonlocal buffer, filled, shard_i
        if buffer:
            np.save(tmp / f"shard-{shard_i:05d}.npy", np.concatenate(buffer, axis=-1).astype(np.float16))
            buffer, filled, shard_i = [], 0, shard_i + 1

    manifest = store.manifest
    # clips of equal length go through the front-end together (batches of 32)
    order = manifest.sort_values("n_samples", kind="stable").index.to_numpy()
    batches: list[list[int]] = []
    for i in order:
        if batches and len(batches[-1]) < 32 and manifest.at[batches[-1][0], "n_samples"] == manifest.at[i, "n_samples"]:
            batches[-1].append(i)
        else:
            batches.append([i])
    for batch in track(batches, total=len(batches), description=f"features {out_dir.name}"):
        waves = np.stack([store.wave(manifest.loc[i]) for i in batch])
        for i, feats in zip(batch, frontend(torch.from_numpy(waves)).float().numpy()):
            if filled and filled + feats.shape[-1] > SHARD_FRAMES:
                flush()
            rows.append(
                {
                    "clip_id": manifest.at[i, "clip_id"],
                    "shard": f"shard-{shard_i:05d}.npy",
                    "offset": filled,
                    "n_frames": feats.shape[-1],
                }
            )
            buffer.append(feats)
            filled += feats.shape[-1]
    flush()
    pd.DataFrame(rows).to_parquet(tmp / "index.parquet", index=False)
    pad_value = float(np.median(frontend(torch.zeros(1, 4096)).float().numpy()))
    write_json(
        tmp / "spec.json", {"spec": spec, "hash": stable_hash(spec), "segments_key": data_key, "pad_value": pad_value, **spec}
    )
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.rename(out_dir)
    return out_dir


def build_features(dataset: str, params: Params, layout: Layout) -> Path:
    """Run the ``features`` stage for ``dataset``; return ``data/features/<dataset>``."""
    root = layout.features(dataset)
    root.mkdir(parents=True, exist_ok=True)
    store = SegmentStore(layout.segments(dataset))
    wanted = frontends_for_grid(dataset, params, segments_key(store.dir)) if params.features.enabled else {}
    for name, frontend in wanted.items():
        if (root / name / "index.parquet").exists():
            log.info("feature cache %s/%s is up to date", dataset, name)
            continue
        compute_cache(store, frontend, root / name)
        log.info("cached %s features for %s", name, dataset)
    for stale in root.iterdir():
        if stale.is_dir() and stale.name not in wanted:
            shutil.rmtree(stale)
    write_json(root / "caches.json", {"dataset": dataset, "caches": sorted(wanted)})
    return root
