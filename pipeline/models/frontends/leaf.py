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

from typing import Any, ClassVar

import torch
from typing_extensions import TypedDict

from pipeline.models.dsp.gabor import GaborFilterbank, GaussianLowpass
from pipeline.models.dsp.pcen import PCEN
from pipeline.models.frontends.base import FilterbankFrontend
from pipeline.models.options import Count, Frequency, FrequencyFloor, Positive

ENERGY_FLOOR = 1e-5
"""Floor of the pooled energies before sPCEN (leaf-audio)."""


class LeafOptions(TypedDict, total=False):
    """Options of the ``leaf`` front-end."""

    n_filters: Count
    window_ms: Positive
    hop_ms: Positive
    f_min: FrequencyFloor
    f_max: Frequency


class LeafFrontend(FilterbankFrontend):
    """LEAF (Zeghidour et al. 2021): Gabor filters, Gaussian pooling and sPCEN, all learnable.

    Defaults of leaf-audio's ``Leaf()``: 40 filters, 25-ms windows (401 taps), 10-ms stride
    (160 samples), Gabor init on the mel scale 60-7800 Hz, pooling width 0.4, sPCEN alpha 0.96,
    delta 2, root 2, smooth 0.04 per channel, floor 1e-12; no pre-emphasis, no
    mean-variance norm (the back-end's input BatchNorm normalises). Not cacheable.

    Args:
        window_ms: filter and pooling length (default 25). hop_ms: default 10.
        **filterbank: the arguments of :class:`~pipeline.models.dsp.gabor.GaborFilterbank` but the
            kernel size (``sample_rate``; ``n_filters`` 40 and the init range ``f_min``, ``f_max``
            60 and 7800 Hz by default).

    Shape:
        ``(batch, samples)`` -> ``(batch, 1, n_filters, 1 + samples // hop)`` (hop 160).
    """

    name: ClassVar[str] = "leaf"
    OPTION_SPEC: ClassVar[type] = LeafOptions

    def __init__(self, window_ms: float = 25.0, hop_ms: float = 10.0, **filterbank: Any) -> None:
        super().__init__(filterbank, window_ms, hop_ms)
        self.filters = GaborFilterbank(kernel_size=self.window_length, **filterbank)
        n_filters = self.filters.n_filters
        self.pooling = GaussianLowpass(n_filters, self.window_length, self.hop_length)
        self.compression = PCEN(n_filters, alpha=0.96, delta=2.0, root=2.0, smooth=0.04, floor=1e-12)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """``(batch, samples)`` -> ``(batch, 1, n_filters, frames)``."""
        pooled = torch.clamp(self.pooling(self.filters(wave)), min=ENERGY_FLOOR)
        return self.compression(pooled).unsqueeze(1)
