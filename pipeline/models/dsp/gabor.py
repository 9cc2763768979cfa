"""LEAF's learnable primitives (Zeghidour et al. 2021, leaf-audio): complex Gabor filters and Gaussian low-pass pooling.

The Gabor filters are initialised on the mel scale (centres and half-maximum widths of the HTK
mel triangles, :func:`pipeline.models.dsp.mel.mel_triangles`).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from pipeline.models.dsp.convolution import centred_pad, fft_filter
from pipeline.models.dsp.mel import mel_triangles

SQRT_2LN2 = math.sqrt(2.0 * math.log(2.0))


class GaborFilterbank(nn.Module):
    """Complex Gabor filters ``exp(-t^2 / (2 sigma^2)) / (sqrt(2 pi) sigma) * exp(i mu t)``.

    Learnable ``mu`` (centre, rad/sample, kept in ``[0, pi]``) and ``sigma`` (samples, kept so
    the half-maximum bandwidth ``2 sqrt(2 ln 2) / sigma`` lies between ``2 pi / kernel_size``
    and ``pi / 2``, leaf-audio's ``GaborConstraint``). Initialised on the mel scale:
    ``mu = 2 pi f_c / sr``, ``sigma = sqrt(2 ln 2) sr / (pi FWHM)`` with the centre ``f_c`` and
    half-maximum width FWHM (Hz) of each HTK mel triangle.

    Args:
        n_filters: default 40. sample_rate: Hz (16,000). kernel_size: taps (401 = 25 ms + 1).
        f_min, f_max: mel range of the initialisation (60 and 7800 Hz).

    Shape:
        ``(batch, samples)`` -> squared modulus ``(batch, n_filters, samples)``.
    """

    def __init__(
        self, n_filters: int = 40, sample_rate: int = 16_000, kernel_size: int = 401, f_min: float = 60.0, f_max: float = 7_800.0
    ) -> None:
        super().__init__()
        if kernel_size % 2 == 0 or kernel_size < 3:
            raise ValueError(f"kernel_size must be odd and >= 3, got {kernel_size}")
        if not f_max <= sample_rate / 2.0:
            raise ValueError(f"f_max ({f_max}) must not exceed the Nyquist frequency {sample_rate / 2}")
        self.sample_rate = int(sample_rate)
        self.kernel_size = int(kernel_size)
        centres, fwhm = mel_triangles(int(n_filters), float(f_min), float(f_max))
        self.center = nn.Parameter(torch.from_numpy(2.0 * np.pi * centres / sample_rate).float())
        self.sigma = nn.Parameter(torch.from_numpy(SQRT_2LN2 * sample_rate / (np.pi * fwhm)).float())
        self.register_buffer("taps", torch.arange(kernel_size, dtype=torch.float32) - kernel_size // 2, persistent=False)

    @property
    def n_filters(self) -> int:
        return int(self.center.numel())

    def constrained(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mu, sigma)`` clipped to their ranges, each ``(n_filters,)``."""
        mu = torch.clamp(self.center, 0.0, math.pi)
        sigma = torch.clamp(self.sigma, 4.0 * SQRT_2LN2 / math.pi, self.kernel_size * SQRT_2LN2 / math.pi)
        return mu, sigma

    def center_frequencies(self) -> torch.Tensor:
        """Current centre frequencies in Hz, ``(n_filters,)``."""
        return self.constrained()[0] * self.sample_rate / (2.0 * math.pi)

    def kernels(self) -> torch.Tensor:
        """Real and imaginary impulse responses ``(2 * n_filters, 1, kernel_size)`` (real ones first)."""
        mu, sigma = (p[:, None] for p in self.constrained())
        envelope = torch.exp(-0.5 * (self.taps / sigma) ** 2) / (math.sqrt(2.0 * math.pi) * sigma)
        phase = mu * self.taps
        return torch.cat([envelope * torch.cos(phase), envelope * torch.sin(phase)]).unsqueeze(1)

    def frequency_response(self, n_freqs: int = 257) -> tuple[np.ndarray, np.ndarray]:
        """``(frequencies Hz (F,), |H(f)| (n_filters, F))`` of the current filters."""
        with torch.no_grad():
            k = self.kernels()[:, 0].double()
            complex_k = torch.complex(k[: self.n_filters], k[self.n_filters :])
            spectrum = torch.fft.fft(complex_k, n=2 * (n_freqs - 1)).abs()[:, :n_freqs]
        return np.linspace(0.0, self.sample_rate / 2.0, n_freqs), spectrum.numpy()

    def complex_kernels(self) -> torch.Tensor:
        """Complex impulse responses ``(n_filters, kernel_size)``, tap ``kernel_size // 2`` at t = 0."""
        real, imag = self.kernels()[:, 0].chunk(2)
        return torch.complex(real, imag)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """Squared modulus of the filter responses (FFT convolution, :func:`fft_filter`)."""
        response = fft_filter(wave, self.complex_kernels())
        return response.real.square() + response.imag.square()

    def forward_direct(self, wave: torch.Tensor) -> torch.Tensor:
        """The same as :meth:`forward` by direct (time-domain) convolution: the reference of the tests."""
        response = nn.functional.conv1d(centred_pad(wave.unsqueeze(1), self.kernel_size, 1), self.kernels().to(wave.dtype))
        real, imag = response.chunk(2, dim=1)
        return real.square() + imag.square()


class GaussianLowpass(nn.Module):
    """Per-filter Gaussian low-pass pooling (a depthwise strided convolution).

    Window ``w[n] = exp(-((n - (K-1)/2) / (width (K-1)/2))^2 / 2)`` with one learnable
    ``width`` per filter, kept in ``[2 / K, 0.5]``; 0.4 approximates a Hann window.

    Args:
        n_filters: channels. kernel_size: K (401). stride: hop (160). width: initial width (0.4).

    Shape:
        ``(batch, n_filters, samples)`` -> ``(batch, n_filters, 1 + samples // stride)``.
    """

    def __init__(self, n_filters: int = 40, kernel_size: int = 401, stride: int = 160, width: float = 0.4) -> None:
        super().__init__()
        self.kernel_size = int(kernel_size)
        self.stride = int(stride)
        self.width = nn.Parameter(torch.full((int(n_filters),), float(width)))
        half = (kernel_size - 1) / 2.0
        self.register_buffer("offsets", (torch.arange(kernel_size, dtype=torch.float32) - half) / half, persistent=False)

    def windows(self) -> torch.Tensor:
        """Current pooling windows ``(n_filters, kernel_size)``."""
        width = torch.clamp(self.width, 2.0 / self.kernel_size, 0.5)[:, None]
        return torch.exp(-0.5 * (self.offsets / width) ** 2)

    def forward(self, energy: torch.Tensor) -> torch.Tensor:
        kernel = self.windows().to(energy.dtype).unsqueeze(1)
        padded = centred_pad(energy, self.kernel_size, self.stride)
        return nn.functional.conv1d(padded, kernel, stride=self.stride, groups=kernel.shape[0])
