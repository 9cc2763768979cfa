"""Shared building blocks of the back-ends (spec section 1.4), one implementation each.

Block names follow the spec:

- :class:`C2`  Conv2d 3x3 -> BN -> ReLU -> MaxPool2d(p)
- :class:`C1`  Conv1d(k, s) -> BN -> ReLU -> MaxPool1d(p)
- :class:`R2`  residual block with strided 3x3 convs and a 3x3 projection shortcut
- :class:`RM`  residual block (identity shortcut) followed by MaxPool2d(p)
- :class:`SE1` 1-D residual block with full-width squeeze-excitation, then MaxPool1d(p)
- :class:`Head` Linear -> BN1d -> ReLU -> Dropout -> Linear
- :func:`global_max_pool` (GMP) max over every remaining axis after the channels
- :func:`stack` a chain of blocks, each taking the previous one's channels

**Fit adaptation.** Every max-pool here is a :class:`FitMaxPool2d` / :class:`FitMaxPool1d`:
its kernel (and stride) is clipped to the current size of the map, so a stack designed for
29-s inputs still runs on a 1-s clip instead of crashing when a dimension would shrink below
1. When the map is at least as large as the kernel (the spec's input lengths) the pool is
exactly ``nn.MaxPool2d(kernel)``; the pools carry no parameters, so state dicts and
parameter counts are unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "C1",
    "C2",
    "R2",
    "RM",
    "SE1",
    "FitMaxPool1d",
    "FitMaxPool2d",
    "Head",
    "OutputLayer",
    "global_max_pool",
    "scale_width",
    "stack",
]


def scale_width(channels: int, width: float, multiple_of: int = 1) -> int:
    """Scale a channel count by ``width``; at least ``multiple_of`` (and >= 1).

    Args:
        channels: channel count at width 1.0.
        width: multiplier (> 0).
        multiple_of: round to a multiple of this (e.g. the head count of an attention layer).

    Returns:
        ``max(multiple_of, round(channels * width / multiple_of) * multiple_of)``.
    """
    if width <= 0:
        raise ValueError(f"width must be > 0, got {width}")
    scaled = int(round(channels * width / multiple_of)) * multiple_of
    return max(multiple_of, scaled, 1)


def stack(
    block: Callable[..., nn.Module], in_channels: int, layout: Iterable[tuple[Any, ...]], width: float = 1.0
) -> tuple[nn.Sequential, int]:
    """Chain ``block(c_in, scale_width(c_out, width), *args)`` for each ``(c_out, *args)`` of ``layout``.

    Returns:
        ``(the blocks as one nn.Sequential, the channels of the last block)``.
    """
    blocks, c_in = [], in_channels
    for c_out, *args in layout:
        c_out = scale_width(c_out, width)
        blocks.append(block(c_in, c_out, *args))
        c_in = c_out
    return nn.Sequential(*blocks), c_in


def _pair(value: int | tuple[int, int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


class FitMaxPool2d(nn.Module):
    """``MaxPool2d(kernel)`` (stride = kernel) whose kernel is clipped to the input size.

    Args:
        kernel_size: int or (freq, time) pooling factors.

    Shape:
        ``(batch, C, H, W)`` -> ``(batch, C, H // min(kh, H), W // min(kw, W))``.
    """

    def __init__(self, kernel_size: int | tuple[int, int]) -> None:
        super().__init__()
        self.kernel_size = _pair(kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kernel = (min(self.kernel_size[0], x.shape[-2]), min(self.kernel_size[1], x.shape[-1]))
        if kernel == (1, 1):
            return x
        return F.max_pool2d(x, kernel)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, fit=True"


class FitMaxPool1d(nn.Module):
    """``MaxPool1d(kernel)`` (stride = kernel) whose kernel is clipped to the input length.

    Shape:
        ``(batch, C, T)`` -> ``(batch, C, T // min(k, T))``.
    """

    def __init__(self, kernel_size: int) -> None:
        super().__init__()
        self.kernel_size = int(kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kernel = min(self.kernel_size, x.shape[-1])
        if kernel == 1:
            return x
        return F.max_pool1d(x, kernel)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, fit=True"


def global_max_pool(x: torch.Tensor) -> torch.Tensor:
    """GMP: max over every axis after the channel axis.

    ``(batch, C, ...)`` -> ``(batch, C)``. A map that is already ``1x1`` is just reshaped,
    so the spec's "if time length > 1, max over time" is a special case.
    """
    return x.flatten(2).amax(dim=2)


class C2(nn.Module):
    """Conv2d 3x3 (stride 1, pad 1, bias) -> BN -> ReLU -> MaxPool2d(pool).

    Args:
        in_channels: input channels.
        out_channels: output channels.
        pool: pooling factor, int or (freq, time); clipped to the map size (fit).

    Shape:
        ``(batch, in, F, T)`` -> ``(batch, out, F // pf, T // pt)``.
    """

    def __init__(self, in_channels: int, out_channels: int, pool: int | tuple[int, int] = 2) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.bn = nn.BatchNorm2d(out_channels)
        self.pool = FitMaxPool2d(pool)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(F.relu(self.bn(self.conv(x))))


class C1(nn.Module):
    """Conv1d(kernel, stride, pad kernel//2) -> BN -> ReLU -> MaxPool1d(pool).

    Shape:
        ``(batch, in, T)`` -> ``(batch, out, T' // pool)`` with ``T'`` the conv output length.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1, pool: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2)
        self.bn = nn.BatchNorm1d(out_channels)
        self.pool = FitMaxPool1d(pool)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(F.relu(self.bn(self.conv(x))))


class R2(nn.Module):
    """Residual block without pooling (short-chunk ResNet, CNN-SA).

    Main path Conv3x3(stride) -> BN -> ReLU -> Conv3x3 -> BN; the shortcut is the identity
    when ``stride == 1`` and the widths match, else a **3x3** Conv(stride) -> BN projection.
    Output ``ReLU(main + shortcut)``.

    Shape:
        ``(batch, in, F, T)`` -> ``(batch, out, ceil(F / sf), ceil(T / st))``.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int | tuple[int, int] = 2) -> None:
        super().__init__()
        stride = _pair(stride)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module
        if stride != (1, 1) or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1), nn.BatchNorm2d(out_channels)
            )
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(out + self.shortcut(x))


class RM(nn.Module):
    """Residual block with identity shortcut, then MaxPool2d(pool) (HCNN back-end).

    Conv3x3 -> BN -> ReLU -> Conv3x3 -> BN, + input, ReLU, MaxPool2d(pool).

    Shape:
        ``(batch, C, F, T)`` -> ``(batch, C, F // pf, T // pt)``.
    """

    def __init__(self, channels: int, pool: int | tuple[int, int] = 2) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(channels)
        self.pool = FitMaxPool2d(pool)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return self.pool(F.relu(out + x))


class SE1(nn.Module):
    """1-D residual block with squeeze-excitation (Sample-CNN+SE).

    Main path Conv1d(k, stride) -> BN -> ReLU -> Conv1d(k) -> BN, rescaled per channel by
    ``sigmoid(Linear(ReLU(Linear(mean_t(main)))))`` (full-width C->C layers, no reduction).
    Shortcut: identity, or Conv1d(k, stride) -> BN when the stride or width changes.
    Output ``MaxPool1d(pool)(ReLU(main + shortcut))``.

    Shape:
        ``(batch, in, T)`` -> ``(batch, out, T' // pool)``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1, pool: int = 3) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.conv1 = nn.Conv1d(in_channels, out_channels, kernel_size, stride=stride, padding=pad)
        self.bn1 = nn.BatchNorm1d(out_channels)
        self.conv2 = nn.Conv1d(out_channels, out_channels, kernel_size, padding=pad)
        self.bn2 = nn.BatchNorm1d(out_channels)
        self.excite1 = nn.Linear(out_channels, out_channels)
        self.excite2 = nn.Linear(out_channels, out_channels)
        self.shortcut: nn.Module
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv1d(in_channels, out_channels, kernel_size, stride=stride, padding=pad),
                nn.BatchNorm1d(out_channels),
            )
        else:
            self.shortcut = nn.Identity()
        self.pool = FitMaxPool1d(pool)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        gate = torch.sigmoid(self.excite2(F.relu(self.excite1(out.mean(dim=-1)))))
        out = out * gate.unsqueeze(-1)
        return self.pool(F.relu(out + self.shortcut(x)))


class Head(nn.Module):
    """Classifier head: Linear(in->hidden) -> BN1d -> ReLU -> Dropout -> Linear(hidden->n).

    ``Head(C)`` of the spec is ``Head(C, n_classes)`` (hidden = in); Musicnn's dense part is
    ``Head(1506, n_classes, hidden=200)``.

    Shape:
        ``(batch, in)`` -> logits ``(batch, n_classes)``.
    """

    def __init__(self, in_features: int, n_classes: int, hidden: int | None = None, dropout: float = 0.5) -> None:
        super().__init__()
        hidden = in_features if hidden is None else hidden
        self.fc1 = nn.Linear(in_features, hidden)
        self.bn = nn.BatchNorm1d(hidden)
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.dropout(F.relu(self.bn(self.fc1(x)))))


class OutputLayer(nn.Module):
    """Dropout -> Linear(in->n): the plain output layer of FCN, CRNN, Sample-CNN and CNN-SA.

    Shape:
        ``(batch, in)`` -> logits ``(batch, n_classes)``.
    """

    def __init__(self, in_features: int, n_classes: int, dropout: float = 0.5) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(in_features, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(x))
