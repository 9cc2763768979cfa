"""LEAF, the learnable audio front-end (Zeghidour et al., "LEAF: A learnable frontend for audio
classification", ICLR 2021), with the defaults of its reference code, google-research/leaf-audio.

waveform -> complex Gabor filterbank (stride 1) -> squared modulus -> per-filter Gaussian
low-pass pooling (stride = hop) -> floor 1e-5 -> sPCEN. Everything is learnable:

========================  =======================================  ==========
part                      parameters (per filter)                  init
========================  =======================================  ==========
Gabor filters             centre frequency, Gaussian width sigma   mel, 60-7800 Hz
Gaussian low-pass         window width (fraction of the window)    0.4
sPCEN                     alpha, delta, root (r = 1/root), smooth  0.96, 2, 2, 0.04
========================  =======================================  ==========

7 parameters per filter: 280 for the default 40 filters, the count of leaf-audio's ``Leaf()``
(Gabor kernel 40 x 2, pooling 40, PCEN 4 x 40). The Gabor initialisation is the analytic
one (centres and half-maximum widths of the HTK mel triangles); leaf-audio reads them off a
512-point mel matrix, i.e. rounds the centres to FFT bins (31.25 Hz at 16 kHz).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from typing_extensions import TypedDict

from pipeline.models.base import Frontend
from pipeline.models.frontends.mel_scale import mel_triangles
from pipeline.models.frontends.pcen import PCEN
from pipeline.models.options import Count, Frequency, FrequencyFloor, Positive, option_names

SQRT_2LN2 = math.sqrt(2.0 * math.log(2.0))
ENERGY_FLOOR = 1e-5
"""Floor of the pooled energies before sPCEN (leaf-audio)."""


def samples_of_ms(sample_rate: int, ms: float, odd: bool = False) -> int:
    """``ms`` milliseconds in samples (leaf-audio's rule: ``int(sr * ms // 1000)``, ``+ 1`` if ``odd``)."""
    return int(sample_rate * ms // 1000) + (1 if odd else 0)


def centred_pad(signal: torch.Tensor, kernel_size: int, stride: int) -> torch.Tensor:
    """Zero-pad ``(..., n)`` so a ``kernel_size`` (odd) convolution with ``stride`` gives
    ``1 + n // stride`` outputs, output ``t`` centred on input sample ``t * stride``."""
    half = kernel_size // 2
    return nn.functional.pad(signal, (half, half + (1 if stride > 1 else 0)))


def fft_filter(signal: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Centred ("same") convolution of ``(batch, n)`` with every kernel of ``(F, K)`` (K odd) by FFT.

    One FFT of the clip and one inverse FFT per filter instead of a K-tap product per output
    sample (several times faster than ``conv1d`` on a CPU for K in the hundreds). Real kernels
    use ``rfft``; complex ones (Gabor) the full FFT. Equals ``conv1d`` with ``K // 2`` zeros
    of padding for time-symmetric kernels (and, in modulus, for Hermitian-symmetric ones:
    convolution and correlation are then conjugates). Runs in float32 with autocast off:
    ``torch.fft`` has no bfloat16 kernels.

    Returns:
        ``(batch, F, n)``, complex if ``kernels`` is.
    """
    with torch.autocast(device_type=signal.device.type, enabled=False):
        signal = signal.float()
        n, k = signal.shape[-1], kernels.shape[-1]
        size = -(-(n + k - 1) // 512) * 512  # >= n + k - 1, a multiple of 512 (fast FFT sizes)
        if kernels.is_complex():
            spectrum = torch.fft.fft(signal, n=size).unsqueeze(-2) * torch.fft.fft(kernels, n=size)
            full = torch.fft.ifft(spectrum)
        else:
            spectrum = torch.fft.rfft(signal, n=size).unsqueeze(-2) * torch.fft.rfft(kernels.float(), n=size)
            full = torch.fft.irfft(spectrum, n=size)
        return full[..., k // 2 : k // 2 + n]


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


class LeafOptions(TypedDict, total=False):
    """Options of the ``leaf`` front-end."""

    n_filters: Count
    window_ms: Positive
    hop_ms: Positive
    f_min: FrequencyFloor
    f_max: Frequency


class LeafFrontend(Frontend):
    """LEAF (Zeghidour et al. 2021): Gabor filters, Gaussian pooling and sPCEN, all learnable.

    Defaults of leaf-audio's ``Leaf()``: 40 filters, 25-ms windows (401 taps), 10-ms stride
    (160 samples), Gabor init on the mel scale 60-7800 Hz, pooling width 0.4, sPCEN alpha 0.96,
    delta 2, root 2, smooth 0.04 per channel, floor 1e-12; no pre-emphasis, no
    mean-variance norm (the back-end's input BatchNorm normalises). Not cacheable.

    Args:
        sample_rate: Hz. n_filters: default 40. window_ms: default 25. hop_ms: default 10.
        f_min, f_max: Gabor init range in Hz (60, 7800).

    Shape:
        ``(batch, samples)`` -> ``(batch, 1, n_filters, 1 + samples // hop)`` (hop 160).
    """

    name: ClassVar[str] = "leaf"
    OPTION_SPEC: ClassVar[type] = LeafOptions
    OPTIONS: ClassVar[frozenset[str]] = option_names(LeafOptions)
    output_kind: ClassVar[str] = "spectrogram"
    out_channels = 1

    def __init__(
        self,
        sample_rate: int = 16_000,
        n_filters: int = 40,
        window_ms: float = 25.0,
        hop_ms: float = 10.0,
        f_min: float = 60.0,
        f_max: float = 7_800.0,
    ) -> None:
        super().__init__()
        kernel = samples_of_ms(sample_rate, window_ms, odd=True)
        self.hop_length = samples_of_ms(sample_rate, hop_ms)
        if self.hop_length < 1:
            raise ValueError(f"hop_ms={hop_ms} is shorter than one sample at {sample_rate} Hz")
        self.filters = GaborFilterbank(int(n_filters), sample_rate, kernel, f_min, f_max)
        self.pooling = GaussianLowpass(int(n_filters), kernel, self.hop_length)
        self.compression = PCEN(int(n_filters), alpha=0.96, delta=2.0, root=2.0, smooth=0.04, floor=1e-12)

    @property
    def n_bins(self) -> int:
        return self.filters.n_filters

    def n_frames(self, n_samples: int) -> int:
        return 1 + n_samples // self.hop_length

    def cache_spec(self) -> dict[str, Any] | None:
        return None

    def center_frequencies(self) -> torch.Tensor:
        """Current filter centres in Hz, ``(n_filters,)``."""
        return self.filters.center_frequencies()

    def frequency_response(self, n_freqs: int = 257) -> tuple[np.ndarray, np.ndarray]:
        """Magnitude responses of the Gabor filters (see :meth:`GaborFilterbank.frequency_response`)."""
        return self.filters.frequency_response(n_freqs)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """``(batch, samples)`` -> ``(batch, 1, n_filters, frames)``."""
        pooled = torch.clamp(self.pooling(self.filters(wave)), min=ENERGY_FLOOR)
        return self.compression(pooled).unsqueeze(1)
