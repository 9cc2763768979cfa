"""Validation and evaluation at GPU speed (pipeline/models/stored_scoring.py, issue 27): the chunks cut in
DataLoader workers from the memory-mapped shards score exactly as the old per-clip path.

An untrained tiny fcn is enough: the checks compare the batched path with one clip per forward and
with :func:`pipeline.models.inference.predict_clips`, never with labels. CPU, fp32, a few seconds.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from pipeline.audio.chunking import eval_chunks
from pipeline.data.shards import SegmentStore
from pipeline.models.base import ModelConfig
from pipeline.models.inference import PinnedStage, activate, predict_clips
from pipeline.models.stored_scoring import ChunkBatches, StoredClips
from pipeline.models.zoo import build_model

LENGTH = 2000
# shorter than, equal to, one sample over, and much longer than the input length; a hop of 0 (2001, 2002 with 3 chunks)
SAMPLES = [700, 2000, 2001, 2050, 3000, 6345, 1499, 9000, 4500, 2002, 3500]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> SegmentStore:
    """Clips of the lengths in :data:`SAMPLES`, over two shards."""
    seg = tmp_path_factory.mktemp("segments")
    rng = np.random.default_rng(0)
    half = len(SAMPLES) // 2
    rows = []
    for shard, lengths in (("shard-00000.npy", SAMPLES[:half]), ("shard-00001.npy", SAMPLES[half:])):
        np.save(seg / shard, 0.1 * rng.standard_normal(sum(lengths)).astype(np.float32))
        offsets = np.cumsum([0, *lengths[:-1]])
        rows += [{"shard": shard, "offset": int(o), "n_samples": n} for o, n in zip(offsets, lengths)]
    manifest = pd.DataFrame(rows)
    manifest.insert(0, "clip_id", [f"c{i:03d}" for i in range(len(rows))])
    manifest["split"], manifest["labels"] = "val", [["a"]] * len(rows)
    manifest.to_parquet(seg / "manifest.parquet", index=False)
    (seg / "meta.json").write_text(json.dumps({"labels": ["a", "b", "c"], "kind": "multilabel"}))
    return SegmentStore(seg)


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return build_model(ModelConfig("fcn", 3, True, width=0.125, input_length=LENGTH)).eval()


def _per_clip_reference(net, store: SegmentStore, n_chunks: int) -> np.ndarray:
    """One clip per forward: its evaluation chunks, activated, averaged."""
    out = []
    with torch.no_grad():
        for wave in store.waves(store.manifest):
            chunks = torch.from_numpy(eval_chunks(wave, LENGTH, n_chunks))
            out.append(activate(net(chunks), True).mean(0).numpy())
    return np.stack(out)


def test_chunks_read_from_the_shards_equal_the_evaluation_chunks(store) -> None:
    batches = ChunkBatches(store, store.manifest, LENGTH, n_chunks=3, batch_size=4)
    got = torch.cat([batches[b] for b in range(len(batches))]).numpy()
    want = np.concatenate([eval_chunks(w, LENGTH, 3) for w in store.waves(store.manifest)])
    np.testing.assert_array_equal(got, want)
    assert batches.clips.tolist() == [i for i, w in enumerate(store.waves(store.manifest)) for _ in eval_chunks(w, LENGTH, 3)]


@pytest.mark.parametrize("batch_size", [5, 64])  # chunks of several clips, the whole split per forward
def test_batched_scores_match_one_clip_per_forward(store, net, batch_size: int) -> None:
    clips = StoredClips(store, store.manifest, length=LENGTH, n_chunks=3, batch_size=batch_size, device=torch.device("cpu"))
    scores = clips.predict(net, bf16="off")
    assert scores.shape == (len(SAMPLES), 3) and scores.dtype == np.float32
    np.testing.assert_allclose(scores, _per_clip_reference(net, store, 3), rtol=1e-5, atol=1e-6)
    old = predict_clips(net, store.waves(store.manifest), n_chunks=3, batch_size=batch_size, bf16="off")
    np.testing.assert_array_equal(scores, old)  # the same batches as the former in-process path


def test_workers_give_the_same_scores_and_persist(store, net) -> None:
    kw = {"length": LENGTH, "n_chunks": 2, "batch_size": 6, "device": torch.device("cpu")}
    inline = StoredClips(store, store.manifest, num_workers="auto", **kw)  # CPU: in the process
    workers = StoredClips(store, store.manifest, num_workers=2, **kw)
    assert inline.loader.num_workers == 0 and workers.loader.num_workers == 2 and workers.loader.persistent_workers
    first = workers.predict(net, bf16="off")
    np.testing.assert_array_equal(first, inline.predict(net, bf16="off"))
    np.testing.assert_array_equal(workers.predict(net, bf16="off"), first)  # a second epoch, same workers


def test_pinned_stage_pins_only_for_cuda() -> None:
    cpu = PinnedStage(torch.device("cpu"))
    x = torch.arange(6.0).reshape(2, 3)
    assert not cpu.pinned and torch.equal(cpu(x), x) and cpu.buffer is None
    assert PinnedStage(torch.device("cuda")).pinned  # built without touching CUDA


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_pinned_stage_reuses_one_buffer_on_cuda() -> None:
    stage = PinnedStage(torch.device("cuda"))
    batches = [torch.randn(8, 1000), torch.randn(8, 1000), torch.randn(3, 1000)]
    outs = [stage(b) for b in batches]
    buffer = stage.buffer
    assert buffer is not None and buffer.is_pinned()
    assert stage(torch.randn(8, 1000)) is not None and stage.buffer is buffer  # reused, not reallocated
    for b, o in zip(batches, outs):
        assert o.is_cuda and torch.equal(o.cpu(), b)


def test_stored_clips_need_no_waveform_in_memory(store) -> None:
    clips = StoredClips(store, store.manifest, length=LENGTH, n_chunks=3, batch_size=4, device=torch.device("cpu"))
    shards = [clips.batches.reader._open(name) for name in clips.batches.reader.shard_names]
    assert all(isinstance(s, np.memmap) for s in shards)  # read from the page cache, batch by batch
    assert Path(shards[0].filename).name == "shard-00000.npy"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_stored_clips_on_cuda_with_workers_match_the_cpu(store, net) -> None:
    kw = {"length": LENGTH, "n_chunks": 3, "batch_size": 5}
    on_cpu = StoredClips(store, store.manifest, device=torch.device("cpu"), **kw).predict(net, bf16="off")
    gpu = torch.device("cuda")
    clips = StoredClips(store, store.manifest, device=gpu, num_workers="auto", **kw)
    assert clips.loader.num_workers == 4
    try:
        on_gpu = clips.predict(net.to(gpu), bf16="off")
    finally:
        net.cpu()
    np.testing.assert_allclose(on_gpu, on_cpu, rtol=1e-4, atol=1e-5)
