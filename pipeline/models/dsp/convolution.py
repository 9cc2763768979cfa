"""Filtering plumbing shared by the learnable filterbanks: window lengths in samples, centred padding, FFT convolution."""

from __future__ import annotations

import torch
from torch import nn


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
