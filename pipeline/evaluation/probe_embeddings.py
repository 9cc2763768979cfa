"""Frozen embeddings of a dataset's clips, cached like the feature cache (for ``musicrep probe``).

One embedding per clip of a segmented dataset (every split, manifest order), from a packaged
model (or a randomly initialised network of its architecture, the baseline of a probe):

- **Chunk pooling.** A clip is cut into ``n_chunks`` chunks of the model's input length with the
  evaluation protocol (:func:`pipeline.audio.chunking.eval_chunks`: evenly spaced starts; a clip
  shorter than one chunk is centre-padded), each chunk is embedded, and the clip's embedding
  is the **mean** of its chunk embeddings. That is also how ``musicrep embed`` pools a file, and
  how evaluation pools chunk scores.
- **Layers.** ``pooled`` (default): :meth:`AudioModel.embed`, the back-end feature after its
  global pooling, before the classifier; ``logits``: the classifier's outputs (before the
  activation).
- **Cache.** ``data/embeddings/<dataset>/<model>-<segments>-<layer>-<n_chunks>/`` holding
  ``embeddings.npy`` (float32 ``(clips, dim)``), ``clip_ids.parquet`` and ``spec.json``;
  ``<model>`` is the first 12 hex digits of the packaged ``model.pt``'s SHA-256 (for a random
  network: a hash of its config and init seed) and ``<segments>`` the feature cache's
  :func:`~pipeline.features.cache.segments_key`. New weights or changed audio give a new folder,
  never a stale one; the folder is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pipeline.audio.chunking import eval_chunks
from pipeline.core.choices import LAYERS
from pipeline.core.io_utils import stable_hash, write_json
from pipeline.core.paths import Layout
from pipeline.data.shards import SegmentStore
from pipeline.features.cache import segments_key
from pipeline.models.base import AudioModel
from pipeline.models.zoo import build_model

log = logging.getLogger(__name__)


def random_init_like(model: AudioModel, seed: int) -> AudioModel:
    """A network of ``model``'s architecture and config with fresh random weights (``torch.manual_seed(seed)``)."""

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return build_model(model.config).eval()


def model_key(card: dict, random_init_seed: int | None = None) -> str:
    """12 hex digits naming the weights: the packaged file's SHA-256, or config + seed of a random init."""
    if random_init_seed is None:
        return str(card["sha256"])[:12]
    return "rand" + stable_hash({"config": card.get("config"), "seed": int(random_init_seed)}, length=8)


@torch.no_grad()
def embed_clips(model: AudioModel, waves, *, n_chunks: int, layer: str = "pooled", batch_size: int = 32) -> np.ndarray:
    """``(clips, dim)`` float32: the mean of each clip's ``n_chunks`` evaluation-chunk embeddings.

    Args:
        model: network in eval mode (its device is used).
        waves: iterable of 1-D float32 arrays at the model's rate.
        n_chunks: chunks per clip (``evaluate.n_chunks``).
        layer: ``pooled`` or ``logits``.
        batch_size: chunks per forward pass.
    """
    if layer not in LAYERS:
        raise ValueError(f"layer must be one of {LAYERS}, got {layer!r}")
    device = next(model.parameters()).device
    forward = model.embed if layer == "pooled" else model
    pending: list[np.ndarray] = []
    owners: list[int] = []
    outputs: list[np.ndarray] = []

    def flush() -> None:
        if pending:
            outputs.append(forward(torch.from_numpy(np.stack(pending)).to(device)).float().cpu().numpy())
            pending.clear()

    n_clips = 0
    for i, wave in enumerate(waves):
        n_clips = i + 1
        for chunk in eval_chunks(np.asarray(wave, dtype=np.float32), model.input_length, n_chunks):
            pending.append(chunk)
            owners.append(i)
            if len(pending) >= batch_size:
                flush()
    flush()
    chunks = np.concatenate(outputs) if outputs else np.zeros((0, 1), np.float32)
    sums = np.zeros((n_clips, chunks.shape[1]), np.float64)
    np.add.at(sums, np.asarray(owners, dtype=np.int64), chunks)
    counts = np.bincount(np.asarray(owners, dtype=np.int64), minlength=n_clips)
    return (sums / np.maximum(1, counts)[:, None]).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class Embeddings:
    """Cached clip embeddings of one dataset: ``vectors (clips, dim)`` aligned with ``clip_ids``."""

    directory: Path
    clip_ids: list[str]
    vectors: np.ndarray

    def rows(self, ids) -> np.ndarray:
        """Embeddings of the clips ``ids`` (in that order)."""
        where = {c: i for i, c in enumerate(self.clip_ids)}
        return self.vectors[[where[c] for c in ids]]


def cached_embeddings(
    model: AudioModel, key: str, dataset: str, layout: Layout, *, n_chunks: int, layer: str = "pooled", batch_size: int = 32
) -> Embeddings:
    """The embeddings of every clip of ``dataset`` under the weights ``key`` (computed once, then read)."""
    store = SegmentStore(layout.segments(dataset))
    directory = layout.root / "data" / "embeddings" / dataset / f"{key}-{segments_key(store.dir)}-{layer}-{n_chunks}"
    if (directory / "spec.json").exists():
        vectors = np.load(directory / "embeddings.npy")
        ids = pd.read_parquet(directory / "clip_ids.parquet")["clip_id"].astype(str).tolist()
        log.info("embeddings of %s from the cache %s", dataset, directory)
        return Embeddings(directory, ids, vectors)
    rows = store.manifest
    vectors = embed_clips(model, store.waves(rows), n_chunks=n_chunks, layer=layer, batch_size=batch_size)
    tmp = directory.with_name(directory.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    np.save(tmp / "embeddings.npy", vectors)
    pd.DataFrame({"clip_id": rows["clip_id"].astype(str)}).to_parquet(tmp / "clip_ids.parquet", index=False)
    write_json(
        tmp / "spec.json",
        {"model": key, "variant": model.config.variant, "layer": layer, "n_chunks": n_chunks, "dim": int(vectors.shape[1])},
    )
    shutil.rmtree(directory, ignore_errors=True)
    tmp.rename(directory)
    log.info("embedded %d clips of %s (%s, dim %d) -> %s", len(rows), dataset, layer, vectors.shape[1], directory)
    return Embeddings(directory, rows["clip_id"].astype(str).tolist(), vectors)


def read_spec(directory: Path) -> dict:
    return json.loads((directory / "spec.json").read_text())
