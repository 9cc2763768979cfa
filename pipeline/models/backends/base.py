"""Back-end base class: features -> logits, plus ``embed`` (pooled feature before the head)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from pipeline.models.options import NoOptions, option_names

if TYPE_CHECKING:
    from pipeline.models.base import ModelConfig


class Backend(nn.Module):
    """Base of every back-end.

    Subclasses build their layers in ``__init__(in_channels, n_bins, n_classes, width,
    **options)``, set ``embedding_dim`` and ``head`` and implement :meth:`embed`.
    ``forward`` returns **logits** ``(batch, n_classes)`` (no sigmoid/softmax).

    Class attributes:
        name: the back-end's registry name (a variant's ``backend`` names the class).
        input_kind: ``"spectrogram"`` (expects ``(batch, C, F, T)``) or ``"waveform"``
            (expects ``(batch, 1, samples)``); the zoo only pairs matching front-ends.
        OPTION_SPEC: the typed, ranged schema of those options (:mod:`pipeline.models.options`).
        OPTIONS: keyword options a user may set through ``ModelConfig.options`` (the spec's names, set
            on every subclass from its spec).
    """

    name: ClassVar[str] = ""
    input_kind: ClassVar[str] = "spectrogram"
    OPTION_SPEC: ClassVar[type] = NoOptions
    OPTIONS: ClassVar[frozenset[str]] = frozenset()
    embedding_dim: int
    head: nn.Module

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.OPTIONS = option_names(cls.OPTION_SPEC)

    def __init__(self, n_classes: int) -> None:
        super().__init__()
        if not isinstance(n_classes, int) or n_classes < 1:
            raise ValueError(f"n_classes must be a positive integer, got {n_classes!r}")
        self.n_classes = n_classes

    @classmethod
    def resolve_options(cls, options: dict[str, Any], config: ModelConfig) -> dict[str, Any]:
        """Constructor keywords from the variant's and the user's ``options`` and the model's ``config``.

        The default passes ``options`` on; a back-end whose option depends on the task (HCNN's
        ``hcnn_pools: auto``) resolves it here.
        """
        return options

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        """Features -> pooled representation ``(batch, embedding_dim)``."""
        raise NotImplementedError

    def classify(self, embedding: torch.Tensor) -> torch.Tensor:
        """Pooled representation -> logits ``(batch, n_classes)``."""
        return self.head(embedding)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.classify(self.embed(features))


def collapse_frequency(x: torch.Tensor) -> torch.Tensor:
    """``(batch, C, F, T)`` -> ``(batch, C, T)``: squeeze ``F == 1``, else max over F (fit)."""
    return x.squeeze(2) if x.shape[2] == 1 else x.amax(dim=2)
