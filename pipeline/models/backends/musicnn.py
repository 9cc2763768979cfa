"""Musicnn (Pons et al. 2018, "mtat" configuration), docs/spec.md §2.3: 96 mel, L = 48,000."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.models.backends.base import Backend
from pipeline.models.layers import C1, Head, scale_width
from pipeline.models.spec import Paper, VariantSpec

TIMBRAL_FILTERS = 204
TIMBRAL_HEIGHTS = (0.7, 0.4)  # fractions of the input height (67 and 38 bins at 96 mel)
TEMPORAL_FILTERS = 51
TEMPORAL_KERNELS = (129, 65, 33)
BACKEND_CHANNELS = 64
DENSE_UNITS = 200
TIME_KERNEL = 7


class TimbralConv(nn.Module):
    """Vertical filter: Conv2d (h x 7, pad (0, 3)) -> BN -> ReLU -> max over frequency.

    Shape: ``(batch, C, F, T)`` -> ``(batch, filters, T)``.
    """

    def __init__(self, in_channels: int, filters: int, height: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, filters, (height, TIME_KERNEL), padding=(0, TIME_KERNEL // 2))
        self.bn = nn.BatchNorm2d(filters)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x))).amax(dim=2)


class TemporalConv(nn.Module):
    """Horizontal filter: mean over frequency -> Conv1d(k, same pad) -> BN -> ReLU.

    Shape: ``(batch, C, F, T)`` -> ``(batch, filters, T)``.
    """

    def __init__(self, in_channels: int, filters: int, kernel: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(in_channels, filters, kernel, padding=kernel // 2)
        self.bn = nn.BatchNorm1d(filters)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x.mean(dim=2))))


class MusicnnBackend(Backend):
    """Musicnn (Pons et al. 2018, 'mtat' configuration): timbral/temporal filters + 1-D residual back-end, 3 s.

    Musicnn: timbral + temporal filters -> 3 C1 blocks with residuals -> max||mean pool -> Head.

    Vertical kernel heights are ``int(0.7 F)`` and ``int(0.4 F)`` of the input height F
    (67 and 38 at 96 mel, as the reference).

    Shape:
        ``(batch, C, F, T)`` -> logits ``(batch, n_classes)``; ``embed`` -> ``(batch, 1506)``
        at width 1 (max and mean over time of the 753-channel concatenation).

    Notes:
        Vertical kernel heights are int(0.7 F), int(0.4 F) of the input height F (67/38 at 96 mel, as the reference).
    """

    name: ClassVar[str] = "musicnn"

    def __init__(self, in_channels: int, n_bins: int, n_classes: int, width: float = 1.0) -> None:
        super().__init__(n_classes)
        self.input_norm = nn.BatchNorm2d(in_channels)
        timbral = scale_width(TIMBRAL_FILTERS, width)
        temporal = scale_width(TEMPORAL_FILTERS, width)
        self.front = nn.ModuleList(
            [TimbralConv(in_channels, timbral, max(1, int(fraction * n_bins))) for fraction in TIMBRAL_HEIGHTS]
            + [TemporalConv(in_channels, temporal, kernel) for kernel in TEMPORAL_KERNELS]
        )
        front_channels = len(TIMBRAL_HEIGHTS) * timbral + len(TEMPORAL_KERNELS) * temporal
        channels = scale_width(BACKEND_CHANNELS, width)
        self.block1 = C1(front_channels, channels, TIME_KERNEL)
        self.block2 = C1(channels, channels, TIME_KERNEL)
        self.block3 = C1(channels, channels, TIME_KERNEL)
        self.embedding_dim = 2 * (front_channels + 3 * channels)
        self.head = Head(self.embedding_dim, n_classes, hidden=scale_width(DENSE_UNITS, width))

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        x = self.input_norm(features)
        front = torch.cat([layer(x) for layer in self.front], dim=1)  # (batch, 561, T)
        res1 = self.block1(front)
        res2 = self.block2(res1) + res1
        res3 = self.block3(res2) + res2
        stacked = torch.cat([front, res1, res2, res3], dim=1)  # (batch, 753, T)
        return torch.cat([stacked.amax(dim=-1), stacked.mean(dim=-1)], dim=1)


VARIANTS = (
    VariantSpec(
        MusicnnBackend,
        Paper(48_000, (784_300, 781_285, 777_667)),
        frontend_kwargs={"n_mels": 96},
        cpu_mkldnn=False,
        cpu_bf16=True,
    ),
)
"""The registry entries of this module (found by :mod:`pipeline.models.backends`)."""
