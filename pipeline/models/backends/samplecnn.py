"""Sample-level CNN (Lee et al. 2017) and its SE variant (Kim et al. 2018), docs/spec.md §2.4 and §2.5.

Raw waveform, L = 59,049 = 3^10. At that length the time axis ends at exactly 1; other
lengths rely on the fit pools and a final global max over time.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from pipeline.models.backends.base import Backend
from pipeline.models.layers import C1, SE1, Head, OutputLayer, global_max_pool, scale_width

# (out channels, kernel, stride, pool) of the 11 stages
SAMPLE_CNN_STAGES = (
    (128, 3, 3, 1),
    (128, 3, 1, 3),
    (128, 3, 1, 3),
    (256, 3, 1, 3),
    (256, 3, 1, 3),
    (256, 3, 1, 3),
    (256, 3, 1, 3),
    (256, 3, 1, 3),
    (256, 3, 1, 3),
    (512, 3, 1, 3),
    (512, 1, 1, 1),
)


def _stages(block: type[nn.Module], width: float) -> tuple[nn.Sequential, int]:
    layers, c_in = [], 1
    for c_out, kernel, stride, pool in SAMPLE_CNN_STAGES:
        c_out = scale_width(c_out, width)
        layers.append(block(c_in, c_out, kernel, stride, pool))
        c_in = c_out
    return nn.Sequential(*layers), c_in


class SampleCNNBackend(Backend):
    """11 C1 stages (stride-3 first stage, pools of 3) -> GMP -> Dropout -> Linear.

    Shape:
        ``(batch, 1, samples)`` -> logits ``(batch, n_classes)``; ``embed`` -> ``(batch, 512 w)``.
    """

    input_kind: ClassVar[str] = "waveform"

    def __init__(self, in_channels: int, n_bins: int | None, n_classes: int, width: float = 1.0) -> None:
        super().__init__(n_classes)
        self.stages, self.embedding_dim = _stages(C1, width)
        self.head = OutputLayer(self.embedding_dim, n_classes)

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        return global_max_pool(self.stages(features))


class SampleCNNSEBackend(Backend):
    """11 SE1 stages (same layout) -> GMP -> Head(512).

    Shape:
        ``(batch, 1, samples)`` -> logits ``(batch, n_classes)``; ``embed`` -> ``(batch, 512 w)``.
    """

    input_kind: ClassVar[str] = "waveform"

    def __init__(self, in_channels: int, n_bins: int | None, n_classes: int, width: float = 1.0) -> None:
        super().__init__(n_classes)
        self.stages, self.embedding_dim = _stages(SE1, width)
        self.head = Head(self.embedding_dim, n_classes)

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        return global_max_pool(self.stages(features))
