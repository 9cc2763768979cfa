"""Fixed spectrogram front-ends: ``mel``, ``linear``, ``log``, ``cqt``, ``mfcc``.

Each returns a one-channel map ``(batch, 1, bins, frames)``; all are deterministic, so
their output may be cached (``cache_spec`` is a dict). Input normalisation (the spec's
``BatchNorm2d`` on the dB map) belongs to the back-end.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from typing_extensions import TypedDict

from pipeline.models.dsp.mel import MelSettings
from pipeline.models.dsp.transforms import (
    MFCC,
    ConstantQTransform,
    LogMelSpectrogram,
    LogSpectrogram,
    Spectrogram,
)
from pipeline.models.frontends.base import TransformFrontend
from pipeline.models.options import Count, Frequency, MelOptions, StftOptions


class CQTOptions(TypedDict, total=False):
    """Options of the ``cqt`` front-end."""

    hop_length: Count
    n_bins: Count
    bins_per_octave: Count
    f_min: Frequency


class MFCCOptions(MelOptions, total=False):
    """Options of the ``mfcc`` front-end."""

    n_mfcc: Count


class MelFrontend(TransformFrontend):
    """Log-mel spectrogram in dB (HTK, no area norm, no top-dB).

    Args:
        **mel: the fields of :class:`~pipeline.models.dsp.mel.MelSettings` (``sample_rate``,
            ``n_mels`` (default 96; 128 for the short-chunk models and CNN-SA), ``n_fft``,
            ``hop_length``, ``f_min``, ``f_max``, ``power``).

    Shape:
        ``(batch, samples)`` -> ``(batch, 1, n_mels, 1 + samples // hop_length)``.
    """

    name: ClassVar[str] = "mel"
    OPTION_SPEC: ClassVar[type] = MelOptions

    def __init__(self, **mel: Any) -> None:
        settings = MelSettings(**mel)
        super().__init__(LogMelSpectrogram(settings), settings.hop_length)


class _STFTFrontend(TransformFrontend):
    """Shared constructor of the STFT-bin front-ends (``linear``, ``log``).

    Args:
        sample_rate: Hz (default 16,000; recorded in the cache key only).
        n_fft: default 512. hop_length: default 256.

    Shape:
        ``(batch, samples)`` -> ``(batch, 1, n_fft // 2 + 1, 1 + samples // hop_length)``.
    """

    OPTION_SPEC: ClassVar[type] = StftOptions

    def __init__(self, sample_rate: int = 16_000, n_fft: int = 512, hop_length: int = 256) -> None:
        super().__init__(self._make_transform(n_fft, hop_length), hop_length)
        self.sample_rate = int(sample_rate)

    @staticmethod
    def _make_transform(n_fft: int, hop_length: int) -> torch.nn.Module:
        raise NotImplementedError

    def cache_spec(self) -> dict:
        return {**super().cache_spec(), "sample_rate": self.sample_rate}


class LinearFrontend(_STFTFrontend):
    """Linear-frequency STFT **magnitude** ``|STFT|`` (no log); arguments as :class:`_STFTFrontend`."""

    name: ClassVar[str] = "linear"

    @staticmethod
    def _make_transform(n_fft: int, hop_length: int) -> torch.nn.Module:
        return Spectrogram(n_fft, hop_length, power=1.0)


class LogFrontend(_STFTFrontend):
    """Log-magnitude STFT in dB, ``10 log10(max(|STFT|^2, 1e-10))``; arguments as :class:`_STFTFrontend`."""

    name: ClassVar[str] = "log"

    @staticmethod
    def _make_transform(n_fft: int, hop_length: int) -> torch.nn.Module:
        return LogSpectrogram(n_fft, hop_length)


class CQTFrontend(TransformFrontend):
    """Constant-Q power in dB: ``10 log10(max(|CQT|^2, 1e-10))``.

    Args:
        **transform: the arguments of :class:`~pipeline.models.dsp.transforms.ConstantQTransform`
            (``sample_rate``; ``hop_length`` 256, ``n_bins`` 84 (C1..B7), ``bins_per_octave`` 12
            and ``f_min`` C1 (32.70 Hz) by default).

    Shape:
        ``(batch, samples)`` -> ``(batch, 1, n_bins, 1 + samples // hop_length)``.
    """

    name: ClassVar[str] = "cqt"
    OPTION_SPEC: ClassVar[type] = CQTOptions

    def __init__(self, **transform: Any) -> None:
        cqt = ConstantQTransform(**transform)
        super().__init__(cqt, cqt.hop_length)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        magnitude = self.transform(wave)
        return (20.0 * torch.log10(torch.clamp(magnitude, min=1e-5))).unsqueeze(1)

    def cache_spec(self) -> dict:
        return {**super().cache_spec(), "db": {"multiplier": 10.0, "amin": 1e-10, "top_db": None}}


class MFCCFrontend(TransformFrontend):
    """MFCCs (orthonormal DCT-II of the dB log-mel, no top-dB).

    Args:
        n_mfcc: coefficients (default 40).
        **mel: the mel settings, as :class:`MelFrontend` (default 128 mel bands).

    Shape:
        ``(batch, samples)`` -> ``(batch, 1, n_mfcc, 1 + samples // hop_length)``.
    """

    name: ClassVar[str] = "mfcc"
    OPTION_SPEC: ClassVar[type] = MFCCOptions

    def __init__(self, n_mfcc: int = 40, **mel: Any) -> None:
        settings = MelSettings(**{"n_mels": 128, **mel})
        super().__init__(MFCC(n_mfcc, settings), settings.hop_length)
