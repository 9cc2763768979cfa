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

import math
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from typing_extensions import TypedDict

from pipeline.models.base import Frontend
from pipeline.models.frontends.leaf import centred_pad, fft_filter, samples_of_ms
from pipeline.models.frontends.mel_scale import mel_points
from pipeline.models.options import Count, Frequency, FrequencyFloor, OddKernel, Positive, option_names

LEAKY_SLOPE = 0.2


class SincFilterbank(nn.Module):
    """Learnable sinc band-pass filters (see the module docstring).

    Args:
        n_filters: default 80. sample_rate: Hz. kernel_size: taps (251, odd).
        min_low_hz, min_band_hz: floors of the low cut-off and the band width (50, 50 Hz).
        init_low_hz: lowest mel edge of the initialisation (30 Hz).

    Shape:
        ``(batch, samples)`` -> ``(batch, n_filters, samples)`` (centred, zero padding).
    """

    def __init__(
        self,
        n_filters: int = 80,
        sample_rate: int = 16_000,
        kernel_size: int = 251,
        min_low_hz: float = 50.0,
        min_band_hz: float = 50.0,
        init_low_hz: float = 30.0,
    ) -> None:
        super().__init__()
        if kernel_size % 2 == 0 or kernel_size < 3:
            raise ValueError(f"kernel_size must be odd and >= 3, got {kernel_size}")
        self.sample_rate = int(sample_rate)
        self.kernel_size = int(kernel_size)
        self.min_low_hz = float(min_low_hz)
        self.min_band_hz = float(min_band_hz)
        edges = mel_points(init_low_hz, sample_rate / 2.0 - (min_low_hz + min_band_hz), int(n_filters) + 1)
        self.low_hz = nn.Parameter(torch.from_numpy(edges[:-1]).float())
        self.band_hz = nn.Parameter(torch.from_numpy(np.diff(edges)).float())
        n = torch.arange(kernel_size, dtype=torch.float32)
        self.register_buffer("times", (n - kernel_size // 2) / sample_rate, persistent=False)
        self.register_buffer("window", torch.hamming_window(kernel_size, periodic=False), persistent=False)

    @property
    def n_filters(self) -> int:
        return int(self.low_hz.numel())

    def cutoffs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Current ``(f1, f2)`` in Hz, each ``(n_filters,)``."""
        low = self.min_low_hz + self.low_hz.abs()
        high = torch.clamp(low + self.min_band_hz + self.band_hz.abs(), self.min_low_hz, self.sample_rate / 2.0)
        return low, high

    def center_frequencies(self) -> torch.Tensor:
        """Band centres ``(f1 + f2) / 2`` in Hz, ``(n_filters,)``."""
        low, high = self.cutoffs()
        return (low + high) / 2.0

    def kernels(self) -> torch.Tensor:
        """Impulse responses ``(n_filters, 1, kernel_size)``."""
        low, high = (f[:, None] for f in self.cutoffs())
        t = self.times
        centre = t == 0
        safe_t = torch.where(centre, torch.ones_like(t), t)
        band_pass = (torch.sin(2.0 * math.pi * high * safe_t) - torch.sin(2.0 * math.pi * low * safe_t)) / (math.pi * safe_t)
        band_pass = torch.where(centre, 2.0 * (high - low), band_pass)
        return (band_pass * self.window / (2.0 * (high - low))).unsqueeze(1)

    def frequency_response(self, n_freqs: int = 257) -> tuple[np.ndarray, np.ndarray]:
        """``(frequencies Hz (F,), |H(f)| (n_filters, F))`` of the current filters."""
        with torch.no_grad():
            spectrum = torch.fft.rfft(self.kernels()[:, 0].double(), n=2 * (n_freqs - 1)).abs()
        return np.linspace(0.0, self.sample_rate / 2.0, n_freqs), spectrum.numpy()

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """Filter responses by FFT convolution (:func:`~pipeline.models.frontends.leaf.fft_filter`)."""
        return fft_filter(wave, self.kernels()[:, 0])

    def forward_direct(self, wave: torch.Tensor) -> torch.Tensor:
        """The same by direct convolution (``conv1d``): the reference of the tests."""
        return nn.functional.conv1d(centred_pad(wave.unsqueeze(1), self.kernel_size, 1), self.kernels().to(wave.dtype))


class SincNetOptions(TypedDict, total=False):
    """Options of the ``sincnet`` front-end."""

    n_filters: Count
    kernel_size: OddKernel
    window_ms: Positive
    hop_ms: Positive
    min_low_hz: FrequencyFloor
    min_band_hz: Frequency


class SincNetFrontend(Frontend):
    """SincNet filters -> ``|.|`` -> max-pool (25 ms, stride 10 ms) -> LayerNorm over filters -> LeakyReLU(0.2).

    Args:
        sample_rate: Hz. n_filters: default 80. kernel_size: default 251.
        window_ms: pooling window (25). hop_ms: pooling stride (10).
        min_low_hz, min_band_hz: default 50 and 50 Hz.

    Shape:
        ``(batch, samples)`` -> ``(batch, 1, n_filters, 1 + samples // hop)`` (hop 160).
    """

    name: ClassVar[str] = "sincnet"
    OPTION_SPEC: ClassVar[type] = SincNetOptions
    OPTIONS: ClassVar[frozenset[str]] = option_names(SincNetOptions)
    output_kind: ClassVar[str] = "spectrogram"
    out_channels = 1

    def __init__(
        self,
        sample_rate: int = 16_000,
        n_filters: int = 80,
        kernel_size: int = 251,
        window_ms: float = 25.0,
        hop_ms: float = 10.0,
        min_low_hz: float = 50.0,
        min_band_hz: float = 50.0,
    ) -> None:
        super().__init__()
        self.hop_length = samples_of_ms(sample_rate, hop_ms)
        self.pool_size = samples_of_ms(sample_rate, window_ms, odd=True)
        if self.hop_length < 1:
            raise ValueError(f"hop_ms={hop_ms} is shorter than one sample at {sample_rate} Hz")
        self.filters = SincFilterbank(int(n_filters), sample_rate, int(kernel_size), min_low_hz, min_band_hz)
        self.norm = nn.LayerNorm(int(n_filters))

    @property
    def n_bins(self) -> int:
        return self.filters.n_filters

    def n_frames(self, n_samples: int) -> int:
        return 1 + n_samples // self.hop_length

    def cache_spec(self) -> dict[str, Any] | None:
        return None

    def center_frequencies(self) -> torch.Tensor:
        """Current band centres in Hz, ``(n_filters,)``."""
        return self.filters.center_frequencies()

    def frequency_response(self, n_freqs: int = 257) -> tuple[np.ndarray, np.ndarray]:
        """Magnitude responses of the sinc filters."""
        return self.filters.frequency_response(n_freqs)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """``(batch, samples)`` -> ``(batch, 1, n_filters, frames)``."""
        envelope = self.filters(wave).abs()
        pad = self.pool_size // 2
        pooled = nn.functional.max_pool1d(
            nn.functional.pad(envelope, (pad, pad + 1)), kernel_size=self.pool_size, stride=self.hop_length
        )
        normed = self.norm(pooled.transpose(1, 2)).transpose(1, 2)
        return nn.functional.leaky_relu(normed, LEAKY_SLOPE).unsqueeze(1)
