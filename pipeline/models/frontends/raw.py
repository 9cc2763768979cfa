"""Raw-waveform front-end of the sample-level models: no transform, just a channel axis."""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from pipeline.models.base import Frontend
from pipeline.models.options import NoOptions


class RawFrontend(Frontend):
    """``(batch, samples)`` -> ``(batch, 1, samples)``.

    The learnable "front-end" of Sample-CNN is its first strided convolution, which lives
    in the back-end; there is nothing worth caching (``cache_spec()`` is ``None``).
    """

    name: ClassVar[str] = "raw"
    OPTION_SPEC: ClassVar[type] = NoOptions
    output_kind: ClassVar[str] = "waveform"
    hop_length = 1
    out_channels = 1
    n_bins = None

    def __init__(self, sample_rate: int = 16_000) -> None:
        super().__init__()
        self.sample_rate = int(sample_rate)

    def cache_spec(self) -> dict[str, Any] | None:
        return None

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return wave.unsqueeze(1)
