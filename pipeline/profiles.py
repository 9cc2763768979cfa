"""Profile defaults: ``smoke`` (synthetic data, minutes on a 2-core CPU) and ``paper``
(real datasets and the seed's protocol, meant for a GPU).

``params.yaml`` overrides these key by key; a key it leaves out takes the default of the
profile it names. Edit the defaults here only with a matching note in ``docs/params.md``.
"""

from __future__ import annotations

import copy
from typing import Any

ALL_MODELS = [
    "fcn",
    "crnn",
    "musicnn",
    "samplecnn",
    "samplecnn_se",
    "hcnn",
    "cnnsa",
    "short_cnn",
    "short_res",
    "attention_rnn",
    "gated_crnn",
]

_COMMON: dict[str, Any] = {
    "seed": 0,
    "variants": {},
    "datasets": {
        "synth_tags": {"n_clips": 600, "clip_seconds": 2.0},
        "synth_keywords": {"n_clips": 720, "clip_seconds": 1.0},
        "synth_events": {"n_clips": 480, "clip_seconds": 2.0},
    },
    "segment": {"sample_rate": 16000, "shard_mb": 256, "min_seconds": 0.05, "silence_dbfs": -80.0},
    "features": {"n_fft": 512, "hop_length": 256, "enabled": True},
    "report": {"out_dir": "reports"},
    "flow": {"task_runner": "thread", "address": None, "max_workers": 1, "gpu_concurrency": 1, "gpu_tag": "auto"},
}

_SMOKE: dict[str, Any] = {
    "profile": "smoke",
    "grid": {"tasks": ["synth_tags", "synth_keywords", "synth_events"], "models": list(ALL_MODELS)},
    "train": {
        "epochs": 8,
        "batch_size": 16,
        "lr": 2e-3,
        "weight_decay": 1e-4,
        "optimizer": "adam",
        "width": 0.25,
        "device": "auto",
        "bf16": True,
        "num_threads": 0,
        "steps_per_epoch": None,
        "use_feature_cache": True,
        "patience": None,
    },
    "evaluate": {"n_chunks": 3, "batch_size": 32, "threshold": 0.1},
    "robustness": {
        "enabled": True,
        "grid": {"white_noise": [20.0, 10.0, 0.0], "background_noise": [20.0, 10.0, 0.0]},
        "noise_source": "synthetic",
        "max_clips": None,
    },
}

_PAPER: dict[str, Any] = {
    "profile": "paper",
    "grid": {"tasks": ["mtat", "speech_commands", "dcase2017_task4"], "models": list(ALL_MODELS)},
    "train": {
        "epochs": 200,
        "batch_size": 16,
        "lr": 1e-4,
        "weight_decay": 1e-4,
        "optimizer": "paper",
        "width": 1.0,
        "device": "auto",
        "bf16": True,
        "num_threads": 0,
        "steps_per_epoch": None,
        "use_feature_cache": True,
        "patience": None,
    },
    "evaluate": {"n_chunks": 16, "batch_size": 16, "threshold": 0.1},
    "robustness": {
        "enabled": True,
        "grid": {
            "white_noise": [40.0, 30.0, 20.0, 10.0, 0.0],
            "background_noise": [20.0, 10.0, 0.0],
            "pitch_shift": [-1.0, 1.0],
            "time_stretch": [0.8, 1.25],
            "gain": [-20.0, 20.0],
        },
        "noise_source": "speech_commands",
        "max_clips": None,
    },
}


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def profile_defaults(profile: str) -> dict[str, Any]:
    """Full default params for ``profile`` (``"smoke"`` or ``"paper"``)."""
    if profile == "smoke":
        return _merge(_COMMON, _SMOKE)
    if profile == "paper":
        return _merge(_COMMON, _PAPER)
    raise ValueError(f"unknown profile {profile!r}; allowed: smoke, paper")
