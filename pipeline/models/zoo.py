"""The model zoo: named variants = front-end + back-end + paper input length.

Usage::

    from pipeline.models.base import ModelConfig
    from pipeline.models.zoo import build_model, input_length_for

    length = input_length_for("hcnn", "paper", clip_samples=16_000, task_kind="single")  # 16,384
    model = build_model(ModelConfig("hcnn", n_classes=35, multilabel=False, input_length=length))
    logits = model(torch.randn(2, length))  # (2, 35)

Names:

- a registry name (``"fcn"``, ``"short_cnn"``, ...) uses the variant's own front-end;
- ``"<frontend>+<variant>"`` (``"mfcc+short_cnn"``, ``"harmonic+short_cnn"``) swaps the
  front-end and keeps the variant's back-end; front-end settings the new front-end also
  accepts (e.g. ``n_mels``, ``n_fft``, ``hop_length``) are carried over.

The variants themselves are declared by their back-end modules (``VARIANTS`` in
``pipeline/models/backends/<name>.py``, found by a package scan); this module holds the machinery
only. See ``docs/models.md`` for the variant table and ``docs/contributing.md`` to add one.
"""

from __future__ import annotations

import logging
from typing import Any

from torch import nn

from pipeline.config.profiles import PROFILES
from pipeline.core.task_kinds import SINGLE, TASK_KINDS
from pipeline.models.backends import BACKENDS, VARIANTS
from pipeline.models.base import AudioModel, ModelConfig
from pipeline.models.frontends import FRONTENDS
from pipeline.models.options import check_options
from pipeline.models.spec import VariantSpec

logger = logging.getLogger(__name__)

__all__ = [
    "BACKENDS",
    "FRONTENDS",
    "PROFILES",
    "TASK_KINDS",
    "VARIANTS",
    "VariantSpec",
    "build_model",
    "count_parameters",
    "frontend_table",
    "infer_task",
    "input_length_for",
    "list_variants",
    "registry_table",
    "resolve_variant",
]


EVENT_CLIP_MAX_SAMPLES = 160_000
"""Multi-label clips up to 10 s at 16 kHz count as sound events, longer ones as music tagging."""


def list_variants() -> list[VariantSpec]:
    """All registry entries, in registry order."""
    return list(VARIANTS.values())


def resolve_variant(variant: str) -> tuple[str, VariantSpec]:
    """``"short_cnn"`` or ``"mfcc+short_cnn"`` -> ``(front-end name, VariantSpec)``.

    Raises:
        ValueError: unknown variant or front-end name, or a front-end whose output kind does
            not match the back-end (e.g. ``"mel+samplecnn"``).
    """
    if not isinstance(variant, str) or not variant:
        raise ValueError(f"variant must be a non-empty string, got {variant!r}")
    frontend, _, base = variant.rpartition("+")
    if base not in VARIANTS:
        raise ValueError(f"unknown model variant {base!r}; choose one of {sorted(VARIANTS)}")
    spec = VARIANTS[base]
    frontend = frontend or spec.frontend
    if frontend not in FRONTENDS:
        raise ValueError(f"unknown front-end {frontend!r} in {variant!r}; choose one of {sorted(FRONTENDS)}")
    wanted = spec.backend.input_kind
    if FRONTENDS[frontend].output_kind != wanted:
        compatible = sorted(name for name, cls in FRONTENDS.items() if cls.output_kind == wanted)
        raise ValueError(
            f"front-end {frontend!r} cannot feed the {base!r} back-end (it takes {wanted} input); use one of {compatible}"
        )
    return frontend, spec


def infer_task(task_kind: str, clip_samples: int) -> str:
    """``"keywords"`` (single-label), ``"events"`` (multi-label clips <= 10 s) or ``"tagging"``."""
    if task_kind not in TASK_KINDS:
        raise ValueError(f"task_kind must be one of {TASK_KINDS}, got {task_kind!r}")
    if task_kind == SINGLE:
        return "keywords"
    return "events" if clip_samples <= EVENT_CLIP_MAX_SAMPLES else "tagging"


def input_length_for(variant: str, profile: str, clip_samples: int, task_kind: str, max_samples: int | None = None) -> int:
    """Chunk length in samples for ``variant`` under ``profile``.

    Args:
        variant: registry name or ``"<frontend>+<variant>"`` (the back-end's rule applies).
        profile: ``"paper"`` - the spec's L for the variant (HCNN and gated_crnn per task,
            see :func:`infer_task`); a home-task L longer than the clip is capped at the clip
            (the short-clip protocol of docs/decisions.md: fcn/crnn/cnnsa on 1-s words or
            10-s events); ``"smoke"`` - short and cheap: ``min(paper L, clip_samples)``. Both
            are raised to ``min_input_length``; Sample-CNNs snap up to a frame of 3 samples.
        clip_samples: length of the dataset's clips in samples.
        task_kind: ``"multilabel"`` or ``"single"``.
        max_samples: smoke only: train on crops of at most this many samples (``None``: the
            clip). Evaluation still covers the clip by averaging ``n_chunks`` chunks, as the
            paper protocol does with its 29-s clips and few-second inputs.

    Returns:
        L in samples (clips shorter than L are zero-padded by the data loader).
    """
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")
    if not isinstance(clip_samples, int) or isinstance(clip_samples, bool) or clip_samples < 1:
        raise ValueError(f"clip_samples must be a positive integer, got {clip_samples!r}")
    _, spec = resolve_variant(variant)
    task = infer_task(task_kind, clip_samples)
    paper = spec.paper.task_lengths.get(task, spec.paper.input_length)
    if profile == "paper":
        if task in spec.paper.task_lengths or paper <= clip_samples:
            return paper  # the reference's own L for this task, or a home-task L that fits the clip
        return _fit_length(spec, clip_samples)
    return _fit_length(spec, min(paper, clip_samples, max_samples or clip_samples))


def _fit_length(spec: VariantSpec, target: int) -> int:
    """``target`` raised to the variant's minimum, rounded up to a whole frame (Sample-CNNs: 3 samples)."""
    target = max(target, spec.min_input_length)
    return -(-target // spec.frame_samples) * spec.frame_samples


def variant_option_specs(variant: str) -> dict[str, type]:
    """``{"frontend": spec, "backend": spec}``: the option schemas of ``variant``'s two parts.

    Raises:
        ValueError: unknown variant or front-end.
    """
    frontend_name, spec = resolve_variant(variant)
    return {"frontend": FRONTENDS[frontend_name].OPTION_SPEC, "backend": spec.backend.OPTION_SPEC}


def build_model(config: ModelConfig) -> AudioModel:
    """Build the :class:`AudioModel` described by ``config``.

    ``config.variant`` is a registry name or ``"<frontend>+<variant>"``; ``config.width``
    scales every conv/linear width (>= 1 channel each); ``config.options`` holds variant
    knobs (front-end: e.g. ``n_mels``, ``n_harmonics``, ``learn_bw``, ``learn_f0``,
    ``semitone_scale``, ``bw_floor``; back-end: ``hcnn_pools``, ``n_heads``, ``n_layers``).

    Raises:
        ValueError: unknown variant/front-end, incompatible pair, unknown option name (the
            message lists the allowed ones), or an invalid value.
    """
    if not isinstance(config.n_classes, int) or isinstance(config.n_classes, bool) or config.n_classes < 1:
        raise ValueError(f"n_classes must be a positive integer, got {config.n_classes!r}")
    if not config.width > 0:
        raise ValueError(f"width must be > 0, got {config.width!r}")
    frontend_name, spec = resolve_variant(config.variant)
    frontend_cls, backend_cls = FRONTENDS[frontend_name], spec.backend
    try:  # typed and range-checked before anything is built (pipeline/models/options.py)
        typed = check_options(variant_option_specs(config.variant), dict(config.options or {}), config.sample_rate)
    except ValueError as exc:
        raise ValueError(f"{exc} (model {config.variant!r})") from None
    frontend_kwargs = {k: v for k, v in spec.frontend_kwargs.items() if k in frontend_cls.OPTIONS}
    frontend_kwargs.update(typed["frontend"])
    backend_options = typed["backend"]
    frontend = frontend_cls(sample_rate=config.sample_rate, **frontend_kwargs)
    backend = backend_cls(
        in_channels=frontend.out_channels,
        n_bins=frontend.n_bins,
        n_classes=config.n_classes,
        width=config.width,
        **backend_cls.resolve_options({**spec.backend_kwargs, **backend_options}, config),
    )
    logger.debug(
        "built %s: %s + %s, %d parameters",
        config.variant,
        frontend_name,
        spec.backend_name,
        count_parameters(frontend) + count_parameters(backend),
    )
    return AudioModel(frontend, backend, config)


def registry_table(n_classes: int = 50) -> list[dict[str, Any]]:
    """One JSON-able row per variant, with the parameter count measured at width 1.0.

    Keys: ``name, frontend, backend, input_length`` (paper L, home task), ``min_input_length,
    params`` (trainable, ``n_classes`` multi-label outputs), ``reference_params`` (docs/spec.md §2.10
    for ``n_classes`` if listed, else None), ``description, notes``.
    """
    rows = []
    for spec in list_variants():
        model = build_model(ModelConfig(spec.name, n_classes, True, input_length=spec.paper.input_length))
        rows.append(
            {
                "name": spec.name,
                "frontend": spec.frontend,
                "backend": spec.backend_name,
                "input_length": spec.paper.input_length,
                "min_input_length": spec.min_input_length,
                "params": count_parameters(model),
                "reference_params": spec.paper.params_for(n_classes),
                "description": spec.description,
                "notes": spec.notes,
            }
        )
    return rows


def frontend_table(sample_rate: int = 16_000) -> list[dict[str, Any]]:
    """One JSON-able row per front-end, built at its defaults.

    Keys: ``name, output`` (``spectrogram`` or ``waveform``), ``channels, bins`` (C and F of a
    ``(batch, C, F, frames)`` map; ``None`` for the waveform), ``hop`` (samples per frame),
    ``cacheable`` (its output may be cached by the ``features`` stage), ``params`` (trainable).
    Front-ends with mel settings take them from the variant when swapped in (``pcen+short_cnn``:
    128 bands), so their count there differs from this default (96 bands).
    """
    rows = []
    for name, cls in FRONTENDS.items():
        frontend = cls(sample_rate=sample_rate)
        rows.append(
            {
                "name": name,
                "output": cls.output_kind,
                "channels": int(frontend.out_channels),
                "bins": None if frontend.n_bins is None else int(frontend.n_bins),
                "hop": int(frontend.hop_length),
                "cacheable": frontend.cache_spec() is not None,
                "params": sum(p.numel() for p in frontend.parameters() if p.requires_grad),
            }
        )
    return rows


def count_parameters(module: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters of ``module``; buffers are never counted."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
