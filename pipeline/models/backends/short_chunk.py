"""Short-chunk CNN and ResNet (Won et al., SMC 2020), docs/spec.md §2.7 and §2.8: 128 mel, L = 59,049."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from pipeline.models.backends.base import Backend
from pipeline.models.layers import C2, R2, Head, global_max_pool, stack
from pipeline.models.spec import Paper, VariantSpec

SHORT_CHUNK_WIDTHS = (128, 128, 256, 256, 256, 256, 512)


class _ShortChunkBackend(Backend):
    """BN(in) -> 7 blocks (C2 with pool 2, or R2 with stride 2) -> GMP -> Head(512 w)."""

    block: type[nn.Module]

    def __init__(self, in_channels: int, n_bins: int, n_classes: int, width: float = 1.0) -> None:
        super().__init__(n_classes)
        self.input_norm = nn.BatchNorm2d(in_channels)
        self.blocks, c_in = stack(self.block, in_channels, ((c_out, 2) for c_out in SHORT_CHUNK_WIDTHS), width)
        self.embedding_dim = c_in
        self.head = Head(c_in, n_classes)

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        return global_max_pool(self.blocks(self.input_norm(features)))


class ShortChunkCNNBackend(_ShortChunkBackend):
    """Short-chunk CNN (Won et al. 2020): 7 conv blocks (pool 2) + GMP + dense head on a 128-band log-mel, 3.7 s.

    BN(in) -> 7 C2 blocks (pool 2) -> GMP -> Head(512).

    Shape:
        ``(batch, C, F, T)`` -> logits ``(batch, n_classes)``; ``embed`` -> ``(batch, 512 w)``.

    Notes:
        Fit: pool kernels clipped to the map size, global max pool at the end.
    """

    name: ClassVar[str] = "short_cnn"
    block = C2


class ShortChunkResNetBackend(_ShortChunkBackend):
    """Short-chunk ResNet (Won et al. 2020): 7 residual blocks (stride 2) + GMP + dense head, 3.7 s.

    BN(in) -> 7 R2 blocks (stride 2) -> GMP -> Head(512).

    Shape:
        ``(batch, C, F, T)`` -> logits ``(batch, n_classes)``; ``embed`` -> ``(batch, 512 w)``.

    Notes:
        As the reference.
    """

    name: ClassVar[str] = "short_res"
    block = R2


VARIANTS = (
    VariantSpec(
        ShortChunkCNNBackend, Paper(59_049, (3_687_348, 3_679_653, 3_670_419)), frontend_kwargs={"n_mels": 128}, cpu_bf16=True
    ),
    VariantSpec(ShortChunkResNetBackend, Paper(59_049, (12_104_244, 12_096_549, 12_087_315)), frontend_kwargs={"n_mels": 128}),
)
"""The registry entries of this module (found by :mod:`pipeline.models.backends`)."""
