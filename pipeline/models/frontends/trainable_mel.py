"""``trainable_mel``: the log-mel front-end with its filterbank matrix learnt, the simplest
learnable baseline (as nnAudio's ``MelSpectrogram(trainable_mel=True)``, whose mel basis is one
``n_mels x (n_fft / 2 + 1)`` parameter: 32,896 at 128 bands and n_fft 512, 24,672 at 96).

The matrix starts at the HTK mel filterbank of the ``mel`` front-end, so at initialisation
the output equals ``mel``'s exactly. It is kept non-negative by a straight-through clamp:
the forward pass uses ``max(W, 0)``, the gradient is that of ``W``, so the zeros of the mel
initialisation (most of the matrix) can grow and a weight pushed below zero can come back
(``learn_support=True``, the default). With ``learn_support=False`` the clamp is a plain
ReLU: the zeros get no gradient, so each filter stays within its mel triangle's support and
only the weights inside it learn (the same parameter count).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from pipeline.models.dsp.mel import MelSettings
from pipeline.models.dsp.transforms import stft_bin_frequencies
from pipeline.models.frontends.base import MelEnergyFrontend
from pipeline.models.options import MelOptions


def straight_through_relu(weight: torch.Tensor) -> torch.Tensor:
    """Value ``max(weight, 0)``, gradient of the identity."""
    return weight + (torch.relu(weight) - weight).detach()


class TrainableMelOptions(MelOptions, total=False):
    """Options of the ``trainable_mel`` front-end."""

    learn_support: bool


class TrainableMelFrontend(MelEnergyFrontend):
    """Log-mel in dB with a learnable, non-negative ``(n_fft // 2 + 1, n_mels)`` filterbank.

    Args:
        learn_support: True (default): every entry of the matrix learns; False: only the
            entries inside the mel triangles (see the module docstring).
        **mel: the mel settings, as the ``mel`` front-end (the variant's settings carry over:
            128 bands for short_cnn, 96 for fcn).

    Shape:
        ``(batch, samples)`` -> ``(batch, 1, n_mels, 1 + samples // hop_length)``.
    """

    name: ClassVar[str] = "trainable_mel"
    OPTION_SPEC: ClassVar[type] = TrainableMelOptions

    def __init__(self, learn_support: bool = True, **mel: Any) -> None:
        if not isinstance(learn_support, bool):
            raise ValueError(f"learn_support must be a boolean, got {learn_support!r}")
        settings = MelSettings(**mel)
        super().__init__(settings)
        self.learn_support = learn_support
        self.sample_rate = int(settings.sample_rate)
        self.filterbank = nn.Parameter(self.mel.mel_fb.clone())

    def weights(self) -> torch.Tensor:
        """The effective (non-negative) filterbank ``(n_fft // 2 + 1, n_mels)``."""
        return straight_through_relu(self.filterbank) if self.learn_support else torch.relu(self.filterbank)

    def frequency_response(self, n_freqs: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(STFT bin frequencies Hz (K,), filter weights (n_mels, K))`` (``n_freqs`` is ignored)."""
        with torch.no_grad():
            weights = self.weights().T.double().numpy()
        return stft_bin_frequencies(self.sample_rate, self.mel.spectrogram.n_fft).numpy(), weights

    def center_frequencies(self) -> torch.Tensor:
        """Weighted mean frequency of each filter in Hz, ``(n_mels,)`` (0 for an all-zero filter)."""
        freqs = stft_bin_frequencies(self.sample_rate, self.mel.spectrogram.n_fft).to(self.filterbank)
        w = self.weights()
        return (freqs[:, None] * w).sum(0) / w.sum(0).clamp(min=1e-12)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """``(batch, samples)`` -> ``(batch, 1, n_mels, frames)``."""
        spec = self.mel.spectrogram(wave)
        mel = torch.matmul(spec.transpose(-1, -2), self.weights().to(spec.dtype)).transpose(-1, -2)
        return self.mel.to_db(mel).unsqueeze(1)
