"""Short-chunk CNN and ResNet (Won et al., SMC 2020), docs/spec.md §2.7 and §2.8: 128 mel, L = 59,049."""

from __future__ import annotations

import torch
from torch import nn

from pipeline.models.backends.base import Backend
from pipeline.models.layers import C2, R2, Head, global_max_pool, scale_width

SHORT_CHUNK_WIDTHS = (128, 128, 256, 256, 256, 256, 512)


class _ShortChunkBackend(Backend):
    """BN(in) -> 7 blocks (C2 with pool 2, or R2 with stride 2) -> GMP -> Head(512 w)."""

    block: type[nn.Module]

    def __init__(self, in_channels: int, n_bins: int, n_classes: int, width: float = 1.0) -> None:
        super().__init__(n_classes)
        self.input_norm = nn.BatchNorm2d(in_channels)
        blocks, c_in = [], in_channels
        for c_out in SHORT_CHUNK_WIDTHS:
            c_out = scale_width(c_out, width)
            blocks.append(self.block(c_in, c_out, 2))
            c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.embedding_dim = c_in
        self.head = Head(c_in, n_classes)

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        return global_max_pool(self.blocks(self.input_norm(features)))


class ShortChunkCNNBackend(_ShortChunkBackend):
    """BN(in) -> 7 C2 blocks (pool 2) -> GMP -> Head(512).

    Shape:
        ``(batch, C, F, T)`` -> logits ``(batch, n_classes)``; ``embed`` -> ``(batch, 512 w)``.
    """

    block = C2


class ShortChunkResNetBackend(_ShortChunkBackend):
    """BN(in) -> 7 R2 blocks (stride 2) -> GMP -> Head(512).

    Shape:
        ``(batch, C, F, T)`` -> logits ``(batch, n_classes)``; ``embed`` -> ``(batch, 512 w)``.
    """

    block = R2
