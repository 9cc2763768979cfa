"""CRNN (Choi et al. 2017), docs/spec.md §2.2: four C2 blocks + 2-layer GRU, 96 mel, L = 464,000."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from pipeline.models.backends.base import Backend, collapse_frequency
from pipeline.models.layers import C2, OutputLayer, scale_width, stack
from pipeline.models.spec import Paper, VariantSpec

CRNN_WIDTHS = (64, 128, 128, 128)
CRNN_POOLS = ((2, 2), (3, 3), (4, 4), (4, 4))
CRNN_HIDDEN = 32


class CRNNBackend(Backend):
    """CRNN (Choi et al. 2017): 4 conv blocks + 2-layer GRU(32) on a 96-band log-mel, 29 s chunks.

    BN(in) -> C2 x4 -> sequence (T, C) -> GRU(2 layers, hidden 32) last step -> Dropout -> Linear.

    The output layer has ``n_classes`` outputs (the reference hard-wires 50).

    Shape:
        ``(batch, C, F, T)`` -> logits ``(batch, n_classes)``; ``embed`` -> ``(batch, 32 w)``.

    Notes:
        Output layer has n_classes outputs (the reference hard-wires 50). Fit pools; a frequency axis left > 1 (other
        n_mels) is max-pooled.
    """

    name: ClassVar[str] = "crnn"

    def __init__(self, in_channels: int, n_bins: int, n_classes: int, width: float = 1.0) -> None:
        super().__init__(n_classes)
        self.input_norm = nn.BatchNorm2d(in_channels)
        self.blocks, c_in = stack(C2, in_channels, zip(CRNN_WIDTHS, CRNN_POOLS), width)
        hidden = scale_width(CRNN_HIDDEN, width)
        self.gru = nn.GRU(c_in, hidden, num_layers=2, batch_first=True)
        self.embedding_dim = hidden
        self.head = OutputLayer(hidden, n_classes)

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        x = collapse_frequency(self.blocks(self.input_norm(features)))  # (batch, C, T)
        out, _ = self.gru(x.transpose(1, 2))
        return out[:, -1]


VARIANTS = (VariantSpec(CRNNBackend, Paper(464_000, (394_100, 393_605, 393_011)), frontend_kwargs={"n_mels": 96}, cpu_bf16=True),)
"""The registry entries of this module (found by :mod:`pipeline.models.backends`)."""
