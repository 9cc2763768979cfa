"""SincNet's learnable band-pass filters (Ravanelli & Bengio 2018, ``SincConv_fast`` of mravanelli/SincNet).

Filter ``k`` is the difference of two windowed sinc low-passes, ``2 f2 sinc(2 pi f2 t) - 2 f1
sinc(2 pi f1 t)``, Hamming-windowed and divided by ``2 (f2 - f1)``, with ``f1 = min_low_hz + |low_k|``
and ``f2 = min(f1 + min_band_hz + |band_k|, sr/2)``; ``low, band`` start at mel-spaced edges.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from pipeline.models.dsp.convolution import centred_pad, fft_filter
from pipeline.models.dsp.mel import mel_points


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
