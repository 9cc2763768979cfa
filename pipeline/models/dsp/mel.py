"""The mel scale in one place: the HTK scale, mel-spaced band layouts (the initialisation of the learnable
filterbanks), the triangular mel filterbank of the fixed and trainable mel front-ends and their settings
(:class:`MelSettings`)."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch
import torchaudio.functional as AF

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MelSettings:
    """The settings of a log-mel spectrogram, the one type every front-end that builds a mel filterbank takes.

    The ``mel``, ``mfcc``, ``pcen`` and ``trainable_mel`` front-ends are built from keyword
    options (``MelFrontend(n_mels=128)``); they collect these into a ``MelSettings`` and hand it
    to :class:`pipeline.models.dsp.transforms.LogMelSpectrogram`, which validates it.

    Attributes:
        sample_rate: Hz (default 16,000).
        n_mels: bands (default 96).
        n_fft: FFT size (default 512). hop_length: hop in samples (default 256).
        f_min, f_max: band edges in Hz (default 0 and ``sample_rate / 2``: ``None``).
        power: 2.0 = mel of the power spectrum (default), 1.0 = of the magnitude.
    """

    sample_rate: int = 16_000
    n_mels: int = 96
    n_fft: int = 512
    hop_length: int = 256
    f_min: float = 0.0
    f_max: float | None = None
    power: float = 2.0

    @classmethod
    def take(cls, options: Mapping[str, Any]) -> tuple[MelSettings, dict[str, Any]]:
        """``(the settings named in options, the other options)``."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in options.items() if k in names}), {k: v for k, v in options.items() if k not in names}


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """HTK mel: ``2595 log10(1 + f / 700)``."""
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    """Inverse of :func:`hz_to_mel`."""
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


def mel_points(f_min: float, f_max: float, n_points: int) -> np.ndarray:
    """``n_points`` frequencies (Hz) equally spaced in mel from ``f_min`` to ``f_max`` (both included)."""
    if not 0.0 <= f_min < f_max:
        raise ValueError(f"need 0 <= f_min < f_max, got f_min={f_min}, f_max={f_max}")
    return mel_to_hz(np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_points))


def mel_triangles(n_filters: int, f_min: float, f_max: float) -> tuple[np.ndarray, np.ndarray]:
    """Centres and full widths at half maximum (Hz) of ``n_filters`` triangular mel filters.

    Filter ``i`` rises from edge ``i`` to its centre ``i + 1`` and falls to edge ``i + 2`` of the
    ``n_filters + 2`` mel-spaced edges; its half-maximum width is half the distance between
    its outer edges.
    """
    edges = mel_points(f_min, f_max, n_filters + 2)
    return edges[1:-1], (edges[2:] - edges[:-2]) / 2.0


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, f_min: float, f_max: float) -> torch.Tensor:
    """HTK-scale triangular mel filterbank without area normalisation, ``(n_fft//2+1, n_mels)``.

    Delegates to :func:`torchaudio.functional.melscale_fbanks`. With 128 bands on 257 bins
    the lowest filter is empty (as in the reference code); torchaudio's warning about it is
    turned into a debug log message.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fb = AF.melscale_fbanks(
            n_freqs=n_fft // 2 + 1,
            f_min=float(f_min),
            f_max=float(f_max),
            n_mels=n_mels,
            sample_rate=sample_rate,
            norm=None,
            mel_scale="htk",
        )
    for warning in caught:
        logger.debug("mel filterbank (n_mels=%d, n_fft=%d): %s", n_mels, n_fft, warning.message)
    return fb
