"""Gated CRNN with attention pooling for weakly labelled sound events (Xu et al. 2017,
arXiv 1710.00343; DCASE 2017 task 4), docs/spec.md §2.11.

Not in the reference repositories; built from the paper and the authors' public Keras code
(``yongxuUSTC/dcase2017_task4_cvssp``). Front-end (registry default): log-mel of the
magnitude STFT, 64 bands, n_fft 1,024, hop 664 (~240 frames per 10 s, as the code).
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.models.backends.base import Backend, collapse_frequency
from pipeline.models.layers import FitMaxPool2d, scale_width
from pipeline.models.spec import Paper, VariantSpec

GATED_CHANNELS = 64
GATED_STAGES = 4
LAYERS_PER_STAGE = 2
CONV_CHANNELS = 256
GRU_HIDDEN = 128


class GatedConv(nn.Module):
    """Gated linear unit conv: Conv3x3(->2c, no bias) -> BN -> first half * sigmoid(second half).

    Shape: ``(batch, C_in, F, T)`` -> ``(batch, c, F, T)``.
    """

    def __init__(self, in_channels: int, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 2 * channels, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(2 * channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.glu(self.bn(self.conv(x)), dim=1)


class GatedCRNNBackend(Backend):
    """Gated CRNN (Xu et al. 2017, DCASE 2017 T4 winner): 8 GLU convs + BiGRU(128) + attention pooling, 10 s.

    BN(in) -> 4 x [GatedConv x2 -> MaxPool(2, 1) over frequency] -> Conv3x3(->256) ReLU ->
    max over the remaining frequency -> BiGRU(128) -> frame-wise classification (sigmoid) and
    attention (softmax over time) -> clip probability ``sum_t att * cla``.

    The model is a probability model; ``forward`` returns the matching **logits**
    ``log p - log(1 - p)`` computed stably in log space, so BCE-with-logits on them equals
    the reference's BCE on ``p``.

    Frame-level outputs: ``forward(x, return_frames=True)`` returns ``(logits, frames)``
    with ``frames = {"probabilities": (batch, T, n), "attention": (batch, T, n)}``.

    Shape:
        ``(batch, C, F, T)`` -> logits ``(batch, n_classes)``; ``embed`` -> mean over time of
        the BiGRU states ``(batch, 256 w)``.

    Notes:
        Returns log p - log(1-p) of the attention-pooled clip probability. Mel of the magnitude STFT, 64 bands, n_fft
        1024, hop 664 (Keras code), Hann instead of Hamming, in dB; BatchNorm input norm instead of a per-band scaler;
        plain BiGRU (tanh) instead of the code's gated BiGRU; all 8 gated layers used; attention softmax over time.
    """

    name: ClassVar[str] = "gated_crnn"

    def __init__(self, in_channels: int, n_bins: int, n_classes: int, width: float = 1.0) -> None:
        super().__init__(n_classes)
        gated = scale_width(GATED_CHANNELS, width)
        layers: list[nn.Module] = []
        c_in = in_channels
        for _ in range(GATED_STAGES):
            for _ in range(LAYERS_PER_STAGE):
                layers.append(GatedConv(c_in, gated))
                c_in = gated
            layers.append(FitMaxPool2d((2, 1)))
        conv = scale_width(CONV_CHANNELS, width)
        layers += [nn.Conv2d(gated, conv, 3, padding=1), nn.ReLU()]
        self.input_norm = nn.BatchNorm2d(in_channels)
        self.blocks = nn.Sequential(*layers)
        hidden = scale_width(GRU_HIDDEN, width)
        self.gru = nn.GRU(conv, hidden, batch_first=True, bidirectional=True)
        self.classifier = nn.Linear(2 * hidden, n_classes)
        self.attention = nn.Linear(2 * hidden, n_classes)
        self.embedding_dim = 2 * hidden

    def sequence(self, features: torch.Tensor) -> torch.Tensor:
        """Features -> BiGRU states ``(batch, T, 2h)``."""
        x = collapse_frequency(self.blocks(self.input_norm(features)))  # (batch, C, T)
        states, _ = self.gru(x.transpose(1, 2))
        return states

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        return self.sequence(features).mean(dim=1)

    def classify(self, embedding: torch.Tensor) -> torch.Tensor:
        """Not defined: the clip score pools frame-wise scores, not the embedding."""
        raise TypeError("gated_crnn classifies frame by frame; call the back-end on features instead")

    def forward(
        self, features: torch.Tensor, return_frames: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]:
        states = self.sequence(features)
        frame_logits = self.classifier(states)  # (batch, T, n)
        log_attention = torch.log_softmax(self.attention(states), dim=1)
        log_p = torch.logsumexp(log_attention + F.logsigmoid(frame_logits), dim=1)
        log_not_p = torch.logsumexp(log_attention + F.logsigmoid(-frame_logits), dim=1)
        logits = log_p - log_not_p
        if not return_frames:
            return logits
        frames = {"probabilities": torch.sigmoid(frame_logits), "attention": log_attention.exp()}
        return logits, frames


VARIANTS = (
    VariantSpec(
        GatedCRNNBackend,
        Paper(160_000, task_lengths={"keywords": 16_000}),
        frontend_kwargs={"n_mels": 64, "n_fft": 1_024, "hop_length": 664, "power": 1.0},
        min_input_length=2_048,
    ),
)
"""The registry entries of this module (found by :mod:`pipeline.models.backends`)."""
