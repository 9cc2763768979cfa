"""The HTK mel scale and mel-spaced band layouts, the initialisation of the learnable filterbanks."""

from __future__ import annotations

import numpy as np


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
