"""The contract every model in the zoo follows.

A model is a *front-end* (waveform -> time-frequency features) followed by a *back-end*
(features -> logits). Both are plain ``nn.Module``s; :class:`AudioModel` glues them and is
what the rest of the pipeline (train, evaluate, robustness, predict, embed) talks to.

Conventions
-----------
- Input audio is mono float32 at 16 kHz, shape ``(batch, samples)``.
- Models return **logits** ``(batch, n_classes)``; the task decides the activation
  (sigmoid for multi-label, softmax for single-label). No activation inside ``forward``.
- A front-end whose output is a fixed function of the waveform (no trainable parameters),
  e.g. log-mel, may be *cached* by the ``features`` stage. It says so through
  :meth:`Frontend.cache_spec`; the cache is then filled with this very module, so cached
  features equal the model's own front-end output.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from pipeline.models.options import NoOptions, option_names


class Frontend(nn.Module):
    """Base class of front-ends: ``(batch, samples)`` -> features.

    Subclasses set ``hop_length`` (samples per output frame; 1 for raw waveform) and
    implement ``forward``. ``cache_spec`` returns a JSON-able dict identifying the transform
    (its name and every parameter) when the output may be cached, else ``None``.

    Class attributes:
        name: the registry name; a subclass with a name in a module of
            :mod:`pipeline.models.frontends` is registered by that package's scan.
        learnable: one of the learnable front-ends compared in ``docs/frontends.md`` (the
            report draws its learned filters).
        OPTION_SPEC: the typed, ranged schema of the constructor keywords a user may set through
            ``ModelConfig.options`` (:mod:`pipeline.models.options`).
        OPTIONS: the names of ``OPTION_SPEC``, set on every subclass from its spec.
    """

    name: ClassVar[str] = ""
    learnable: ClassVar[bool] = False
    OPTION_SPEC: ClassVar[type] = NoOptions
    OPTIONS: ClassVar[frozenset[str]] = frozenset()
    hop_length: int = 1

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.OPTIONS = option_names(cls.OPTION_SPEC)

    def cache_spec(self) -> dict[str, Any] | None:
        return None

    def n_frames(self, n_samples: int) -> int:
        """Number of output frames for ``n_samples`` input samples."""
        return n_samples // self.hop_length


@dataclass
class ModelConfig:
    """Everything needed to rebuild a model from a checkpoint.

    Attributes:
        variant: registry name, e.g. ``"fcn"`` or ``"hcnn"``.
        n_classes: number of outputs.
        multilabel: True for sigmoid/BCE tasks, False for softmax/cross-entropy tasks.
        width: channel-width multiplier (1.0 = the paper's widths).
        input_length: samples per training/evaluation chunk at 16 kHz.
        sample_rate: audio sample rate in Hz.
        options: variant-specific overrides (e.g. ``{"n_harmonics": 4}``).
    """

    variant: str
    n_classes: int
    multilabel: bool
    width: float = 1.0
    input_length: int = 59_049
    sample_rate: int = 16_000
    options: dict[str, Any] = field(default_factory=dict)


class AudioModel(nn.Module):
    """Front-end + back-end.

    Args:
        frontend: waveform -> features module.
        backend: features -> logits module. It must also implement ``embed(features)``
            returning the pooled representation before the classifier, ``(batch, dim)``.
        config: the :class:`ModelConfig` the model was built from.
    """

    def __init__(self, frontend: Frontend, backend: nn.Module, config: ModelConfig) -> None:
        super().__init__()
        self.frontend = frontend
        self.backend = backend
        self.config = config

    @property
    def input_length(self) -> int:
        return self.config.input_length

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """``(batch, samples)`` -> logits ``(batch, n_classes)``."""
        return self.backend(self.frontend(wave))

    def forward_features(self, feats: torch.Tensor) -> torch.Tensor:
        """Cached front-end output -> logits ``(batch, n_classes)``."""
        return self.backend(feats)

    def embed(self, wave: torch.Tensor) -> torch.Tensor:
        """``(batch, samples)`` -> pooled back-end feature ``(batch, dim)``."""
        return self.backend.embed(self.frontend(wave))
