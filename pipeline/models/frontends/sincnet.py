"""SincNet front-end (Ravanelli & Bengio, "Speaker recognition from raw waveform with SincNet",
SLT 2018): band-pass filters parametrised by a learnable low cut-off and band width.

Filter ``k`` is the difference of two windowed sinc low-passes, ``2 f2 sinc(2 pi f2 t) - 2 f1
sinc(2 pi f1 t)``, Hamming-windowed and divided by ``2 (f2 - f1)`` (the centre tap is 1, the
pass-band gain ``sr / (2 (f2 - f1))``), with ``f1 = min_low_hz + |low_k|`` and
``f2 = min(f1 + min_band_hz + |band_k|, sr/2)`` (the reference ``SincConv_fast`` of mravanelli/SincNet). ``low, band`` start at mel-spaced edges
from 30 Hz to ``sr/2 - (min_low_hz + min_band_hz)``; defaults 50 and 50 Hz, 251 taps, 80 filters
(the paper's TIMIT/LibriSpeech setting).

The SincNet paper's first block is ``|conv| -> max-pool -> LayerNorm -> LeakyReLU(0.2)``; to
make a time-frequency map for 2-D back-ends the max-pool spans 25 ms with a 10-ms stride, as
leaf-audio's ``SincNet`` front-end (the configuration compared in the LEAF paper), and the
LayerNorm normalises each frame over the filters (learnable gain and bias per filter).
Trainable parameters: ``2 n_filters`` (filters) + ``2 n_filters`` (LayerNorm) = 320 for 80
filters, the count of leaf-audio's ``SincNet(n_filters=80)``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn
from typing_extensions import TypedDict

from pipeline.models.dsp.sinc import SincFilterbank
from pipeline.models.frontends.base import FilterbankFrontend
from pipeline.models.options import Count, Frequency, FrequencyFloor, OddKernel, Positive

LEAKY_SLOPE = 0.2


class SincNetOptions(TypedDict, total=False):
    """Options of the ``sincnet`` front-end."""

    n_filters: Count
    kernel_size: OddKernel
    window_ms: Positive
    hop_ms: Positive
    min_low_hz: FrequencyFloor
    min_band_hz: Frequency


class SincNetFrontend(FilterbankFrontend):
    """SincNet filters -> ``|.|`` -> max-pool (25 ms, stride 10 ms) -> LayerNorm over filters -> LeakyReLU(0.2).

    Args:
        window_ms: pooling window (25). hop_ms: pooling stride (10).
        **filterbank: the arguments of :class:`~pipeline.models.dsp.sinc.SincFilterbank`
            (``sample_rate``; ``n_filters`` 80, ``kernel_size`` 251, ``min_low_hz`` and
            ``min_band_hz`` 50 Hz by default).

    Shape:
        ``(batch, samples)`` -> ``(batch, 1, n_filters, 1 + samples // hop)`` (hop 160).
    """

    name: ClassVar[str] = "sincnet"
    OPTION_SPEC: ClassVar[type] = SincNetOptions

    def __init__(self, window_ms: float = 25.0, hop_ms: float = 10.0, **filterbank: Any) -> None:
        super().__init__(filterbank, window_ms, hop_ms)
        self.filters = SincFilterbank(**filterbank)
        self.norm = nn.LayerNorm(self.filters.n_filters)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """``(batch, samples)`` -> ``(batch, 1, n_filters, frames)``."""
        envelope = self.filters(wave).abs()
        pad = self.window_length // 2
        pooled = nn.functional.max_pool1d(
            nn.functional.pad(envelope, (pad, pad + 1)), kernel_size=self.window_length, stride=self.hop_length
        )
        normed = self.norm(pooled.transpose(1, 2)).transpose(1, 2)
        return nn.functional.leaky_relu(normed, LEAKY_SLOPE).unsqueeze(1)
