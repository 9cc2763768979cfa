"""Per-channel energy normalisation (PCEN) and the ``pcen`` front-end.

PCEN (Wang et al., "Trainable frontend for robust and far-field keyword spotting", ICASSP
2017) replaces the log of a filterbank energy ``E(t, f)`` by

    M(t, f) = (1 - s_f) M(t - 1, f) + s_f E(t, f),      M(-1, f) = E(0, f)
    PCEN(t, f) = (E / (eps + M)^alpha_f + delta_f)^(1 / root_f) - delta_f^(1 / root_f)

with per-channel ``alpha, delta, root, s`` (``r = 1 / root`` in the paper). The same layer,
with LEAF's initial values, is LEAF's sPCEN compression (:mod:`pipeline.models.frontends.leaf`).
The recursion ``M`` is computed in blocks of frames: one matrix product per block (vectorised
over filters and within the block) and a carry from block to block, so the cost is a few
batched matmuls, not a Python loop over frames or filters. The smoother starts at
``M(-1) = E(0)`` (leaf-audio's choice; ``librosa.pcen`` starts at ``M(-1) = 1`` unless given
``zi``); parity with ``librosa.pcen`` given that initial state is tested in
``tests/test_frontends_learnable.py``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from pipeline.models.dsp.mel import MelSettings
from pipeline.models.dsp.pcen import PCEN
from pipeline.models.frontends.base import MelEnergyFrontend
from pipeline.models.options import Fraction, MelOptions, NonNegative, Positive, UnitInterval


class PCENOptions(MelOptions, total=False):
    """Options of the ``pcen`` front-end."""

    alpha: UnitInterval
    delta: NonNegative
    root: Positive
    smooth: Fraction
    floor: Positive


class PCENFrontend(MelEnergyFrontend):
    """PCEN of the mel energies instead of their log (Wang et al. 2017), all of PCEN learnable.

    The mel energies are exactly those of the ``mel`` front-end (same STFT and filterbank;
    its settings carry over from the variant: 128 bands for short_cnn, 96 for fcn). PCEN
    starts at Wang et al.'s values (alpha 0.98, delta 2, r 0.5, s 0.025, eps 1e-6) and learns
    ``alpha, delta, r, s`` per band: ``4 * n_mels`` trainable parameters, as leaf-audio's
    ``PCENLayer(trainable=True, learn_smooth_coef=True, per_channel_smooth_coef=True)``.
    Not cacheable: the output moves with training (the input energies could be cached, but
    the feature cache stores front-end outputs only).

    Args:
        **options: the mel settings, as the ``mel`` front-end (:class:`~pipeline.models.dsp.mel.MelSettings`),
            and the initial PCEN values ``alpha, delta, root, smooth, floor`` (see :class:`PCEN`).

    Shape:
        ``(batch, samples)`` -> ``(batch, 1, n_mels, 1 + samples // hop_length)``.
    """

    name: ClassVar[str] = "pcen"
    OPTION_SPEC: ClassVar[type] = PCENOptions

    def __init__(self, **options: Any) -> None:
        settings, initial = MelSettings.take(options)
        super().__init__(settings)
        self.pcen = PCEN(int(settings.n_mels), **initial, learnable=True)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """``(batch, samples)`` -> ``(batch, 1, n_mels, frames)``."""
        return self.pcen(self.mel.mel(wave)).unsqueeze(1)
