"""Attention-RNN for keyword spotting (de Andrade et al. 2018, arXiv 1808.08929), docs/spec.md §2.11.

Not in the reference repositories; built from the paper and its public Keras code
(``douglas125/SpeechCmdRecognition``). Front-end (registry default): log-mel of the
magnitude STFT, 80 bands 40-8,000 Hz, n_fft 1024, hop 128 (as the Keras code).
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.models.backends.base import Backend
from pipeline.models.layers import scale_width
from pipeline.models.spec import Paper, VariantSpec

CONV_CHANNELS = 10
CONV_KERNEL = 5
LSTM_HIDDEN = 64
DENSE_UNITS = (64, 32)


class TimeConv(nn.Module):
    """Conv2d over time only (kernel 1 x 5, same pad) -> ReLU -> BN.

    The order of the public Keras code (``Conv2D(..., activation='relu')`` then
    ``BatchNormalization``). The spec's Conv -> BN -> ReLU zeroes half of the single-channel
    map that feeds the LSTM; on ``synth_events`` it reached 0.573 test ROC-AUC against 0.672
    for this order (same seed and schedule, docs/models.md).

    Shape: ``(batch, C_in, F, T)`` -> ``(batch, C_out, F, T)``.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, (1, CONV_KERNEL), padding=(0, CONV_KERNEL // 2))
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(F.relu(self.conv(x)))


class AttentionRNNBackend(Backend):
    """Attention-RNN for keywords (de Andrade et al. 2018): time convs + 2 BiLSTM(64) + dot attention, 1 s.

    BN(in) -> TimeConv(->10) -> TimeConv(->1) -> 2 x BiLSTM(64) -> dot-product attention
    with the middle step as query -> Linear(128->64) ReLU -> Linear(64->32) -> Linear(32->n).

    Attention over time: ``forward(x, return_attention=True)`` returns ``(logits, maps)`` in
    the same format as CNN-SA - one map per attention layer, ``(batch, heads, queries,
    keys)`` - here a single map ``(batch, 1, 1, frames)``: the middle-step query's softmax
    weights over the frames.

    Shape:
        ``(batch, C, F, T)`` -> logits ``(batch, n_classes)``; ``embed`` -> the attention
        context ``(batch, 128 w)``.

    Notes:
        Mel of the magnitude STFT, 80 bands 40-8000 Hz, n_fft 1024, hop 128 (Keras code), in dB; BatchNorm input norm
        instead of per-batch standardisation; middle time step as query (paper); Conv->ReLU->BN (Keras code; the spec's
        Conv->BN->ReLU learnt much less on multi-label tasks).
    """

    name: ClassVar[str] = "attention_rnn"

    def __init__(self, in_channels: int, n_bins: int, n_classes: int, width: float = 1.0) -> None:
        super().__init__(n_classes)
        hidden = scale_width(LSTM_HIDDEN, width)
        self.input_norm = nn.BatchNorm2d(in_channels)
        self.conv1 = TimeConv(in_channels, scale_width(CONV_CHANNELS, width))
        self.conv2 = TimeConv(scale_width(CONV_CHANNELS, width), 1)
        self.lstm = nn.LSTM(n_bins, hidden, num_layers=2, bidirectional=True, batch_first=True)
        self.query = nn.Linear(2 * hidden, 2 * hidden)
        dense1, dense2 = (scale_width(units, width) for units in DENSE_UNITS)
        self.embedding_dim = 2 * hidden
        self.head = nn.Sequential(
            nn.Linear(2 * hidden, dense1), nn.ReLU(), nn.Linear(dense1, dense2), nn.Linear(dense2, n_classes)
        )

    def attend(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Features -> (context ``(batch, 2h)``, attention weights ``(batch, T)``)."""
        x = self.conv2(self.conv1(self.input_norm(features))).squeeze(1)  # (batch, F, T)
        states, _ = self.lstm(x.transpose(1, 2))  # (batch, T, 2h)
        query = self.query(states[:, states.shape[1] // 2])  # (batch, 2h)
        weights = torch.softmax(torch.bmm(states, query.unsqueeze(2)).squeeze(2), dim=1)
        context = torch.bmm(weights.unsqueeze(1), states).squeeze(1)
        return context, weights

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        return self.attend(features)[0]

    def forward(
        self, features: torch.Tensor, return_attention: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        context, weights = self.attend(features)
        logits = self.classify(context)
        return (logits, [weights[:, None, None, :]]) if return_attention else logits


VARIANTS = (
    VariantSpec(
        AttentionRNNBackend,
        Paper(16_000),
        frontend_kwargs={"n_mels": 80, "n_fft": 1_024, "hop_length": 128, "f_min": 40.0, "power": 1.0},
        min_input_length=2_048,
        cpu_bf16=True,
    ),
)
"""The registry entries of this module (found by :mod:`pipeline.models.backends`)."""
