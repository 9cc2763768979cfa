"""Shared plumbing of the front-ends: fixed transforms (:class:`TransformFrontend`), learnable layers on the mel
energies (:class:`MelEnergyFrontend`) and learnable filterbanks (:class:`FilterbankFrontend`).

A front-end wraps one transform of :mod:`pipeline.models.dsp.transforms` and adds what the
zoo needs to wire it to a back-end: ``out_channels`` and ``n_bins`` (the ``C`` and ``F`` of
its ``(batch, C, F, frames)`` output), ``output_kind`` (``"spectrogram"`` or
``"waveform"``), ``hop_length``, ``n_frames`` and ``cache_spec``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from pipeline import SAMPLE_RATE
from pipeline.models.base import Frontend
from pipeline.models.dsp.convolution import samples_of_ms
from pipeline.models.dsp.mel import MelSettings
from pipeline.models.dsp.transforms import LogMelSpectrogram
from pipeline.models.options import NoOptions

CACHE_SPEC_VERSION = 1


class TransformFrontend(Frontend):
    """A deterministic transform ``(batch, samples) -> (batch, bins, frames)`` as a
    one-channel image ``(batch, 1, bins, frames)``.

    Subclasses set ``name`` and ``OPTION_SPEC`` (the constructor keywords a user may override
    through ``ModelConfig.options``) and hand their transform (a module with ``n_bins``,
    ``n_frames(samples)`` and ``params()``) and its hop to this constructor.
    """

    OPTION_SPEC: ClassVar[type] = NoOptions
    output_kind: ClassVar[str] = "spectrogram"
    out_channels: int = 1
    transform: nn.Module

    def __init__(self, transform: nn.Module, hop_length: int) -> None:
        super().__init__()
        self.transform = transform
        self.hop_length = int(hop_length)

    @property
    def n_bins(self) -> int:
        """Size of the frequency axis of the output."""
        return int(self.transform.n_bins)

    def n_frames(self, n_samples: int) -> int:
        """Frames for ``n_samples`` samples (centred analysis: ``1 + n_samples // hop``)."""
        return int(self.transform.n_frames(n_samples))

    def cache_spec(self) -> dict[str, Any] | None:
        """``{"frontend": name, "version": ..., **every transform parameter}`` (JSON-able)."""
        return {"frontend": self.name, "version": CACHE_SPEC_VERSION, **self.transform.params()}

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """``(batch, samples)`` -> ``(batch, 1, n_bins, frames)``."""
        return self.transform(wave).unsqueeze(1)


class MelEnergyFrontend(Frontend):
    """A learnable layer on the energies of the ``mel`` front-end's STFT and filterbank (``pcen``, ``trainable_mel``).

    Subclasses hand the mel settings to this constructor and implement ``forward``.
    Never cacheable: the output moves with training.
    """

    learnable: ClassVar[bool] = True
    output_kind: ClassVar[str] = "spectrogram"
    out_channels = 1
    mel: LogMelSpectrogram

    def __init__(self, settings: MelSettings) -> None:
        super().__init__()
        self.hop_length = int(settings.hop_length)
        self.mel = LogMelSpectrogram(settings)

    @property
    def n_bins(self) -> int:
        return self.mel.n_bins

    def n_frames(self, n_samples: int) -> int:
        return self.mel.n_frames(n_samples)

    def cache_spec(self) -> dict[str, Any] | None:
        return None


class FilterbankFrontend(Frontend):
    """A learnable filterbank on the waveform, pooled to frames every ``hop_ms`` (LEAF, SincNet).

    Subclasses hand their filterbank's arguments, window and hop to this constructor, then build
    ``self.filters`` (a module of :mod:`pipeline.models.dsp` with ``n_filters``, ``center_frequencies()``
    and ``frequency_response(n_freqs)``) and implement ``forward``. Never cacheable: the filters move
    with training.
    """

    learnable: ClassVar[bool] = True
    output_kind: ClassVar[str] = "spectrogram"
    out_channels = 1
    filters: nn.Module

    def __init__(self, filterbank: dict[str, Any], window_ms: float, hop_ms: float) -> None:
        """Set ``hop_length`` from ``hop_ms`` and ``window_length``, ``window_ms`` in samples (odd).

        ``filterbank`` holds the filterbank's arguments (its ``sample_rate``, 16 kHz if absent).
        """
        super().__init__()
        sample_rate = filterbank.get("sample_rate", SAMPLE_RATE)
        self.hop_length = samples_of_ms(sample_rate, hop_ms)
        if self.hop_length < 1:
            raise ValueError(f"hop_ms={hop_ms} is shorter than one sample at {sample_rate} Hz")
        self.window_length = samples_of_ms(sample_rate, window_ms, odd=True)

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
        """Magnitude responses of the filters (see the filterbank's ``frequency_response``)."""
        return self.filters.frequency_response(n_freqs)
