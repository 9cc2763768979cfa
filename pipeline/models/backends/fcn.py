"""FCN (Choi et al. 2016), docs/spec.md §2.1: five C2 blocks, 96 mel, L = 464,000."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from pipeline.models.backends.base import Backend
from pipeline.models.layers import C2, OutputLayer, global_max_pool, stack
from pipeline.models.spec import Paper, VariantSpec

FCN_WIDTHS = (64, 128, 128, 128, 64)
FCN_POOLS = ((2, 4), (2, 4), (2, 4), (3, 5), (4, 4))


class FCNBackend(Backend):
    """FCN (Choi et al. 2016): 5 conv-BN-ReLU-maxpool blocks on a 96-band log-mel, 29 s chunks.

    BN(in) -> C2 x5 (pools (2,4),(2,4),(2,4),(3,5),(4,4)) -> GMP -> Dropout -> Linear.

    At 96 x 1813 (the spec input) the map ends at 1 x 1 and GMP is the spec's flatten;
    other sizes are handled by the fit pools and GMP.

    Shape:
        ``(batch, C, F, T)`` -> logits ``(batch, n_classes)``; ``embed`` -> ``(batch, 64 w)``.

    Notes:
        Fit: pool kernels clipped to the map size, global max pool at the end. The spec's flatten needs a 1x1 map
        (1280-2559 frames); elsewhere GMP summarises the map (identical at 1x1).
    """

    name: ClassVar[str] = "fcn"

    def __init__(self, in_channels: int, n_bins: int, n_classes: int, width: float = 1.0) -> None:
        super().__init__(n_classes)
        self.input_norm = nn.BatchNorm2d(in_channels)
        self.blocks, c_in = stack(C2, in_channels, zip(FCN_WIDTHS, FCN_POOLS), width)
        self.embedding_dim = c_in
        self.head = OutputLayer(c_in, n_classes)

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        return global_max_pool(self.blocks(self.input_norm(features)))


VARIANTS = (VariantSpec(FCNBackend, Paper(464_000, (447_732, 446_757, 445_587)), frontend_kwargs={"n_mels": 96}, cpu_bf16=True),)
"""The registry entries of this module (found by :mod:`pipeline.models.backends`)."""
