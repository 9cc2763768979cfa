"""Fault suite (issue 11): every fault and bad input found in the probe, with the fix proven.

Each test names the defect it covers; ``docs/reliability.md`` maps faults to these tests.
Fast by default; the long ones are marked ``slow``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline import stages
from pipeline.errors import UserError
from pipeline.paths import Layout

REPO = Path(__file__).resolve().parents[1]


def _tiny(**top):
    """Tiny params on synth_keywords with ``fcn``; ``top`` overrides top-level keys (e.g. seed)."""
    from pipeline.config import load_params
    from tests.conftest import tiny_overrides

    over = tiny_overrides(tasks=["synth_keywords"], models=["fcn"], n_clips=24)
    over.update(top)
    return load_params(REPO / "params.yaml", overrides=over)


# ----------------------------------------------------------------------------- defect 1
def test_feature_cache_follows_the_audio(tmp_path: Path) -> None:
    """Defect 1: a new seed (new audio) gives a new feature cache, never the old one, outside DVC."""
    from pipeline.data.shards import FeatureStore, SegmentStore
    from pipeline.train import _feature_store_for, build_for_task

    layout = Layout(tmp_path)
    ds = "synth_keywords"
    p0 = _tiny(seed=0)
    for stage in ("download", "segment", "features"):
        getattr(stages, stage)(ds, p0, layout)
    p1 = _tiny(seed=1)
    for stage in ("download", "segment", "features"):
        getattr(stages, stage)(ds, p1, layout)
    store = SegmentStore(layout.segments(ds))
    model = build_for_task("fcn", ds, p1, n_classes=len(store.labels), multilabel=False, clip_samples=16000)
    feats = _feature_store_for(model, ds, p1, layout)
    assert feats is not None
    caches = [d for d in layout.features(ds).iterdir() if d.is_dir()]
    assert len(caches) == 1, "the cache of the old audio is removed"
    import torch

    row = next(store.manifest.itertuples(index=False))
    with torch.no_grad():
        direct = model.frontend(torch.from_numpy(store.wave(row))[None])[0].numpy()
    np.testing.assert_allclose(feats.frames(row.clip_id), direct, rtol=2**-10, atol=1e-2)
    assert isinstance(feats, FeatureStore)
