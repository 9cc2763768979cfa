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

See ``docs/models.md`` for the variant table, the adaptations and the decisions.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from pipeline.config.profiles import PROFILES
from pipeline.models.backends import BACKENDS
from pipeline.models.base import AudioModel, ModelConfig
from pipeline.models.frontends import FRONTENDS
from pipeline.models.options import check_options

logger = logging.getLogger(__name__)

__all__ = [
    "PROFILES",
    "TASK_KINDS",
    "VARIANTS",
    "VariantSpec",
    "build_model",
    "count_parameters",
    "infer_task",
    "input_length_for",
    "list_variants",
    "registry_table",
    "resolve_variant",
]


TASK_KINDS = ("multilabel", "single")
EVENT_CLIP_MAX_SAMPLES = 160_000
"""Multi-label clips up to 10 s at 16 kHz count as sound events, longer ones as music tagging."""
SAMPLE_CNN_FRAME = 3
"""Samples per frame of the sample-level CNNs (their first convolution has stride 3)."""


@dataclass(frozen=True)
class VariantSpec:
    """One registry entry.

    Attributes:
        name: registry name.
        frontend: front-end name (key of ``pipeline.models.frontends.FRONTENDS``).
        backend: back-end name (key of ``pipeline.models.backends.BACKENDS``).
        paper_input_length: the spec's chunk length L in samples at 16 kHz (home task).
        reference_params: trainable parameters at width 1.0 with 50 outputs (docs/spec.md §2.10), or
            None for the task baselines that are not in the reference code.
        min_input_length: shortest input (samples) the model accepts.
        description: one line: paper and architecture.
        notes: adaptations relative to the reference.
        frontend_kwargs: front-end settings of this variant (e.g. ``{"n_mels": 128}``).
        backend_kwargs: back-end settings of this variant.
        reference_params_by_classes: docs/spec.md §2.10 counts by number of outputs (50, 35, 17).
        task_input_lengths: paper L per task (``"tagging"``, ``"events"``, ``"keywords"``)
            where it differs from ``paper_input_length``.
        smoke_rule: how ``input_length_for(..., "smoke", ...)`` picks L (for the docs).
    """

    name: str
    frontend: str
    backend: str
    paper_input_length: int
    reference_params: int | None
    min_input_length: int
    description: str
    notes: str
    frontend_kwargs: Mapping[str, Any] = field(default_factory=dict)
    backend_kwargs: Mapping[str, Any] = field(default_factory=dict)
    reference_params_by_classes: Mapping[int, int] = field(default_factory=dict)
    task_input_lengths: Mapping[str, int] = field(default_factory=dict)
    smoke_rule: str = "min(paper L, clip), at least min_input_length"
    cpu_mkldnn: bool = True
    """Train with oneDNN (mkldnn) convolutions on CPU. False where PyTorch's native kernels were
    measured faster (``benchmarks/models.py``, ``docs/benchmarks.md``): musicnn's tall
    one-channel front filters backpropagate about 2x faster without oneDNN on our CPUs."""
    cpu_bf16: bool = False
    """``train.bf16: auto`` trains and infers in bf16 autocast on a CPU with native bf16
    (``pipeline.models.inference.use_bf16``). True where a smoke training step was measured at least 1.2x
    faster in bf16 than in fp32 on such a CPU (``benchmarks/bf16.py``, docs/benchmarks.md: 1.34-2.40x);
    False for samplecnn (1.03x) and gated_crnn (1.11x), for short_res (1.24x, but its synth_tags
    cell diverged to NaN in bf16, docs/results.md), and for any variant not measured."""


_LOGITS_NOTE = "Returns logits (no sigmoid in forward)."
_FIT_NOTE = "Fit: pool kernels clipped to the map size, global max pool at the end."

VARIANTS: dict[str, VariantSpec] = {
    spec.name: spec
    for spec in (
        VariantSpec(
            name="fcn",
            frontend="mel",
            backend="fcn",
            paper_input_length=464_000,
            reference_params=447_732,
            reference_params_by_classes={50: 447_732, 35: 446_757, 17: 445_587},
            min_input_length=1_024,
            description="FCN (Choi et al. 2016): 5 conv-BN-ReLU-maxpool blocks on a 96-band log-mel, 29 s chunks.",
            notes=f"{_LOGITS_NOTE} {_FIT_NOTE} The spec's flatten needs a 1x1 map (1280-2559 frames); "
            "elsewhere GMP summarises the map (identical at 1x1).",
            frontend_kwargs={"n_mels": 96},
            cpu_bf16=True,
        ),
        VariantSpec(
            name="crnn",
            frontend="mel",
            backend="crnn",
            paper_input_length=464_000,
            reference_params=394_100,
            reference_params_by_classes={50: 394_100, 35: 393_605, 17: 393_011},
            min_input_length=1_024,
            description="CRNN (Choi et al. 2017): 4 conv blocks + 2-layer GRU(32) on a 96-band log-mel, 29 s chunks.",
            notes=f"{_LOGITS_NOTE} Output layer has n_classes outputs (the reference hard-wires 50). "
            "Fit pools; a frequency axis left > 1 (other n_mels) is max-pooled.",
            frontend_kwargs={"n_mels": 96},
            cpu_bf16=True,
        ),
        VariantSpec(
            name="musicnn",
            frontend="mel",
            backend="musicnn",
            paper_input_length=48_000,
            reference_params=784_300,
            reference_params_by_classes={50: 784_300, 35: 781_285, 17: 777_667},
            min_input_length=1_024,
            description="Musicnn (Pons et al. 2018, 'mtat' configuration): timbral/temporal filters + 1-D residual back-end, 3 s.",
            notes=f"{_LOGITS_NOTE} Vertical kernel heights are int(0.7 F), int(0.4 F) of the input height F "
            "(67/38 at 96 mel, as the reference).",
            frontend_kwargs={"n_mels": 96},
            cpu_mkldnn=False,
            cpu_bf16=True,
        ),
        VariantSpec(
            name="samplecnn",
            frontend="raw",
            backend="samplecnn",
            paper_input_length=59_049,
            reference_params=1_869_874,
            reference_params_by_classes={50: 1_869_874, 35: 1_862_179, 17: 1_852_945},
            min_input_length=1_024,
            description="Sample-level CNN (Lee et al. 2017): 11 conv stages on the raw waveform, 3^10 samples.",
            notes=f"{_LOGITS_NOTE} {_FIT_NOTE} The reference needs exactly 3^10 samples; other lengths "
            "end with a global max over time.",
            smoke_rule="min(paper L, clip) rounded up to a whole frame of 3 samples (< 1 frame of padding)",
        ),
        VariantSpec(
            name="samplecnn_se",
            frontend="raw",
            backend="samplecnn_se",
            paper_input_length=59_049,
            reference_params=6_951_858,
            reference_params_by_classes={50: 6_951_858, 35: 6_944_163, 17: 6_934_929},
            min_input_length=1_024,
            description="Sample-level CNN + residual squeeze-excitation blocks (Kim et al. 2018), 3^10 samples.",
            notes=f"{_LOGITS_NOTE} {_FIT_NOTE} Same length handling as samplecnn.",
            smoke_rule="min(paper L, clip) rounded up to a whole frame of 3 samples (< 1 frame of padding)",
            cpu_bf16=True,
        ),
        VariantSpec(
            name="hcnn",
            frontend="harmonic",
            backend="hcnn",
            paper_input_length=80_000,
            reference_params=3_631_551,
            reference_params_by_classes={50: 3_631_551, 35: 3_627_696, 17: 3_623_070},
            min_input_length=1_024,
            description="Harmonic CNN (Won et al. 2020): trainable harmonic filterbank (H=6, Q only) + residual 2-D CNN.",
            notes=f"{_LOGITS_NOTE} {_FIT_NOTE} Stage 6-7 pools by the hcnn_pools option "
            "(auto: single-label -> kws, input >= 80,000 -> mtat, else dcase). Paper L per task: "
            "tagging 80,000, events 48,000, keywords 16,384 (1-s clips zero-padded; 16,000 would give "
            "63 frames, which the reference back-end rejects).",
            frontend_kwargs={"n_mels": 128},
            backend_kwargs={"hcnn_pools": "auto"},
            task_input_lengths={"tagging": 80_000, "events": 48_000, "keywords": 16_384},
            cpu_bf16=True,
        ),
        VariantSpec(
            name="cnnsa",
            frontend="mel",
            backend="cnnsa",
            paper_input_length=240_000,
            reference_params=10_521_652,
            reference_params_by_classes={50: 10_521_652, 35: 10_517_797, 17: 10_513_171},
            min_input_length=1_024,
            description="CNN-SA (Won et al. 2019/2020): 7 residual blocks + 2-layer Transformer encoder with a fixed CLS token, 15 s.",
            notes=f"{_LOGITS_NOTE} Fixed CLS vector broadcast to any batch size (reference pre-tiles 64). "
            "d_model = 256 w rounded to a multiple of n_heads. PyTorch default initialisation. "
            "A frequency axis left > 1 (other n_mels) is max-pooled.",
            frontend_kwargs={"n_mels": 128},
            cpu_bf16=True,
        ),
        VariantSpec(
            name="short_cnn",
            frontend="mel",
            backend="short_cnn",
            paper_input_length=59_049,
            reference_params=3_687_348,
            reference_params_by_classes={50: 3_687_348, 35: 3_679_653, 17: 3_670_419},
            min_input_length=1_024,
            description="Short-chunk CNN (Won et al. 2020): 7 conv blocks (pool 2) + GMP + dense head on a 128-band log-mel, 3.7 s.",
            notes=f"{_LOGITS_NOTE} {_FIT_NOTE}",
            frontend_kwargs={"n_mels": 128},
            cpu_bf16=True,
        ),
        VariantSpec(
            name="short_res",
            frontend="mel",
            backend="short_res",
            paper_input_length=59_049,
            reference_params=12_104_244,
            reference_params_by_classes={50: 12_104_244, 35: 12_096_549, 17: 12_087_315},
            min_input_length=1_024,
            description="Short-chunk ResNet (Won et al. 2020): 7 residual blocks (stride 2) + GMP + dense head, 3.7 s.",
            notes=f"{_LOGITS_NOTE}",
            frontend_kwargs={"n_mels": 128},
        ),
        VariantSpec(
            name="attention_rnn",
            frontend="mel",
            backend="attention_rnn",
            paper_input_length=16_000,
            reference_params=None,
            min_input_length=2_048,
            description="Attention-RNN for keywords (de Andrade et al. 2018): time convs + 2 BiLSTM(64) + dot attention, 1 s.",
            notes=f"{_LOGITS_NOTE} Mel of the magnitude STFT, 80 bands 40-8000 Hz, n_fft 1024, hop 128 "
            "(Keras code), in dB; BatchNorm input norm instead of per-batch standardisation; middle "
            "time step as query (paper); Conv->ReLU->BN (Keras code; the spec's Conv->BN->ReLU learnt "
            "much less on multi-label tasks).",
            frontend_kwargs={"n_mels": 80, "n_fft": 1_024, "hop_length": 128, "f_min": 40.0, "power": 1.0},
            cpu_bf16=True,
        ),
        VariantSpec(
            name="gated_crnn",
            frontend="mel",
            backend="gated_crnn",
            paper_input_length=160_000,
            reference_params=None,
            min_input_length=2_048,
            description="Gated CRNN (Xu et al. 2017, DCASE 2017 T4 winner): 8 GLU convs + BiGRU(128) + attention pooling, 10 s.",
            notes=f"{_LOGITS_NOTE} Returns log p - log(1-p) of the attention-pooled clip probability. "
            "Mel of the magnitude STFT, 64 bands, n_fft 1024, hop 664 (Keras code), Hann instead of "
            "Hamming, in dB; BatchNorm input norm instead of a per-band scaler; plain BiGRU (tanh) "
            "instead of the code's gated BiGRU; all 8 gated layers used; attention softmax over time.",
            frontend_kwargs={"n_mels": 64, "n_fft": 1_024, "hop_length": 664, "power": 1.0},
            task_input_lengths={"keywords": 16_000},
        ),
    )
}
"""Registry of the 11 variants (treat as read-only)."""


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
    wanted = BACKENDS[spec.backend].input_kind
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
    if task_kind == "single":
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
    paper = spec.task_input_lengths.get(task, spec.paper_input_length)
    if profile == "paper":
        if task in spec.task_input_lengths or paper <= clip_samples:
            return paper  # the reference's own L for this task, or a home-task L that fits the clip
        return _fit_length(spec, clip_samples)
    return _fit_length(spec, min(paper, clip_samples, max_samples or clip_samples))


def _fit_length(spec: VariantSpec, target: int) -> int:
    """``target`` raised to the variant's minimum; Sample-CNNs round up to a frame of 3 samples."""
    target = max(target, spec.min_input_length)
    if spec.backend in ("samplecnn", "samplecnn_se"):
        return -(-target // SAMPLE_CNN_FRAME) * SAMPLE_CNN_FRAME
    return target


def _hcnn_pools(choice: str, config: ModelConfig) -> str:
    """``"auto"`` -> ``"kws"`` for single-label, ``"mtat"`` for inputs >= 80,000 samples, else ``"dcase"``."""
    if choice != "auto":
        return choice
    if not config.multilabel:
        return "kws"
    return "mtat" if config.input_length >= 80_000 else "dcase"


def _backend_kwargs(spec: VariantSpec, options: Mapping[str, Any], config: ModelConfig) -> dict[str, Any]:
    kwargs = {**spec.backend_kwargs, **options}
    if spec.backend == "hcnn":
        kwargs["pools"] = _hcnn_pools(kwargs.pop("hcnn_pools", "auto"), config)
    return kwargs


def variant_option_specs(variant: str) -> dict[str, type]:
    """``{"frontend": spec, "backend": spec}``: the option schemas of ``variant``'s two parts.

    Raises:
        ValueError: unknown variant or front-end.
    """
    frontend_name, spec = resolve_variant(variant)
    return {"frontend": FRONTENDS[frontend_name].OPTION_SPEC, "backend": BACKENDS[spec.backend].OPTION_SPEC}


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
    frontend_cls, backend_cls = FRONTENDS[frontend_name], BACKENDS[spec.backend]
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
        **_backend_kwargs(spec, backend_options, config),
    )
    logger.debug(
        "built %s: %s + %s, %d parameters",
        config.variant,
        frontend_name,
        spec.backend,
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
        model = build_model(ModelConfig(spec.name, n_classes, True, input_length=spec.paper_input_length))
        rows.append(
            {
                "name": spec.name,
                "frontend": spec.frontend,
                "backend": spec.backend,
                "input_length": spec.paper_input_length,
                "min_input_length": spec.min_input_length,
                "params": count_parameters(model),
                "reference_params": spec.reference_params_by_classes.get(n_classes),
                "description": spec.description,
                "notes": spec.notes,
            }
        )
    return rows


def count_parameters(module: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters of ``module``; buffers are never counted."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
