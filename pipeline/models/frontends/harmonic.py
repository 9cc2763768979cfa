"""Harmonic front-end: the trainable harmonic filterbank of HCNN (spec section 3)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch

from pipeline.models.dsp.transforms import HarmonicFilterbank
from pipeline.models.frontends.base import TransformFrontend
from pipeline.models.options import Count, StftOptions, option_names


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
        sample_rate: Hz. n_fft: default 512. hop_length: default 256.
        n_harmonics: default 6. semitone_scale: default 2.
        learn_bw: ``"only_Q"`` (default), ``"fix"`` or ``"full"``.
        learn_f0: trainable fundamentals (log-frequency), default False.
        bw_floor: floor bandwidths at one STFT bin (default False).

    Shape:
        ``(batch, samples)`` -> ``(batch, H, B, 1 + samples // hop_length)``.
    """

    name: ClassVar[str] = "harmonic"
    OPTION_SPEC: ClassVar[type] = HarmonicOptions
    OPTIONS: ClassVar[frozenset[str]] = option_names(HarmonicOptions)

    def __init__(
        self,
        sample_rate: int = 16_000,
        n_fft: int = 512,
        hop_length: int = 256,
        n_harmonics: int = 6,
        semitone_scale: int = 2,
        learn_bw: str = "only_Q",
        learn_f0: bool = False,
        bw_floor: bool = False,
    ) -> None:
        super().__init__()
        filterbank = HarmonicFilterbank(
            sample_rate, n_fft, hop_length, n_harmonics, semitone_scale, learn_bw, learn_f0, bw_floor=bw_floor
        )
        self._attach(filterbank, hop_length)
        self.out_channels = filterbank.n_harmonics

    def cache_spec(self) -> dict[str, Any] | None:
        return None

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """``(batch, samples)`` -> ``(batch, H, B, frames)``."""
        return self.transform(wave)
