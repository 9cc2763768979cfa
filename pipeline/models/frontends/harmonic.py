"""Harmonic front-end: the trainable harmonic filterbank of HCNN (spec section 3)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch

from pipeline.models.dsp.transforms import HarmonicFilterbank
from pipeline.models.frontends.base import TransformFrontend
from pipeline.models.options import Count, StftOptions


class HarmonicOptions(StftOptions, total=False):
    """Options of the ``harmonic`` front-end."""

    n_harmonics: Count
    semitone_scale: Count
    learn_bw: Literal["only_Q", "fix", "full"]
    learn_f0: bool
    bw_floor: bool


class HarmonicFrontend(TransformFrontend):
    """Harmonic tensor in dB, ``(batch, n_harmonics, bands, frames)``.

    Trainable (Q, and the fundamentals with ``learn_f0``), so it is never cached:
    ``cache_spec()`` is ``None`` in every mode, even ``learn_bw="fix"`` (the back-end is
    trained jointly with it and the cost is one matmul on the STFT).

    Args:
        **filterbank: the arguments of :class:`~pipeline.models.dsp.transforms.HarmonicFilterbank`
            (``sample_rate``, ``n_fft``, ``hop_length``, ``n_harmonics`` (default 6),
            ``semitone_scale`` (2), ``learn_bw`` (``"only_Q"``, ``"fix"`` or ``"full"``),
            ``learn_f0`` (False), ``bw_floor`` (False)).

    Shape:
        ``(batch, samples)`` -> ``(batch, H, B, 1 + samples // hop_length)``.
    """

    name: ClassVar[str] = "harmonic"
    OPTION_SPEC: ClassVar[type] = HarmonicOptions

    def __init__(self, **filterbank: Any) -> None:
        transform = HarmonicFilterbank(**filterbank)
        super().__init__(transform, transform.spectrogram.hop_length)
        self.out_channels = transform.n_harmonics

    def cache_spec(self) -> dict[str, Any] | None:
        return None

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """``(batch, samples)`` -> ``(batch, H, B, frames)``."""
        return self.transform(wave)
