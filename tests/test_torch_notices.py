"""Torch's oneDNN TF32 notice (about Intel GPUs) is filtered on CPU; other warnings still show."""

from __future__ import annotations

import warnings

import torch

from pipeline.models.device import quiet_onednn_tf32_notice


def test_onednn_tf32_notice_is_ignored_and_nothing_else() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_onednn_tf32_notice()
        with torch.backends.mkldnn.flags(enabled=True):  # where torch emits it on a CPU build
            pass
        warnings.warn("TF32 acceleration on top of oneDNN is available for Intel GPUs. (test)", UserWarning, stacklevel=1)
        warnings.warn("another warning", UserWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["another warning"]
