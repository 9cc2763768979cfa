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
from torch import nn

from pipeline.models.base import Frontend
from pipeline.models.frontends.transforms import LogMelSpectrogram
from pipeline.models.options import Fraction, MelOptions, NonNegative, Positive, UnitInterval, option_names

EMA_BLOCK = 64
"""Frames per block of the blocked exponential moving average."""


def exponential_moving_average(x: torch.Tensor, smooth: torch.Tensor, block: int = EMA_BLOCK) -> torch.Tensor:
    """First-order IIR smoother ``M_t = (1 - s) M_{t-1} + s x_t`` with ``M_{-1} = x_0``.

    Args:
        x: ``(..., C, T)`` energies.
        smooth: ``(C,)`` coefficients ``s`` in ``(0, 1]`` (per channel).
        block: frames per block (default 64).

    Returns:
        ``(..., C, T)`` smoothed energies, same dtype as ``x``.
    """
    n_frames = x.shape[-1]
    k = min(block, n_frames)
    n_blocks = -(-n_frames // k)
    padded = nn.functional.pad(x, (0, n_blocks * k - n_frames))
    blocks = padded.reshape(*x.shape[:-1], n_blocks, k)  # (..., C, nB, K)
    log_keep = torch.log(torch.clamp(1.0 - smooth, min=1e-12)).to(x.dtype)[:, None, None]  # (C, 1, 1)
    steps = torch.arange(k, device=x.device, dtype=x.dtype)
    lag = steps[None, :] - steps[:, None]  # lag[i, j] = j - i
    causal = lag >= 0
    weights = torch.where(causal, smooth.to(x.dtype)[:, None, None] * torch.exp(lag.clamp(min=0) * log_keep), 0.0)  # (C, K, K)
    within = torch.einsum("...cbi,cij->...cbj", blocks, weights)  # block responses from a zero state
    decay = torch.exp((steps + 1.0) * log_keep[:, 0, :])  # (C, K): (1 - s)^(j + 1)
    state = x[..., 0]  # M_{-1} = x_0
    out = []
    for b in range(n_blocks):  # carry between blocks (T / block steps)
        current = within[..., b, :] + decay * state.unsqueeze(-1)
        out.append(current)
        state = current[..., -1]
    return torch.cat(out, dim=-1)[..., :n_frames]


class PCEN(nn.Module):
    """Per-channel energy normalisation with learnable ``alpha, delta, root, smooth`` (4 per channel).

    Values are kept in range in the forward pass, as leaf-audio's ``PCENLayer`` does:
    ``alpha <= 1``, ``root >= 1``, ``smooth`` in ``[0, 1]``, ``delta >= 1e-6`` (the stored
    parameters are left as the optimiser moves them). Computed in float32 with autocast off.

    Args:
        n_channels: channels C (filters).
        alpha: gain normalisation exponent (default 0.98, Wang et al. 2017; LEAF: 0.96).
        delta: bias (default 2.0). root: 1 / r (default 2.0, i.e. r = 0.5).
        smooth: EMA coefficient s (default 0.025, Wang et al.; LEAF: 0.04).
        floor: eps added to the smoother (default 1e-6; LEAF: 1e-12).
        learnable: False keeps every value fixed (buffers; no trainable parameter).

    Shape:
        ``(..., C, T)`` non-negative energies -> ``(..., C, T)``.
    """

    def __init__(
        self,
        n_channels: int,
        alpha: float = 0.98,
        delta: float = 2.0,
        root: float = 2.0,
        smooth: float = 0.025,
        floor: float = 1e-6,
        learnable: bool = True,
    ) -> None:
        super().__init__()
        if not isinstance(n_channels, int) or n_channels < 1:
            raise ValueError(f"n_channels must be a positive integer, got {n_channels!r}")
        if not (0.0 < smooth <= 1.0 and 0.0 <= alpha <= 1.0 and root >= 1.0 and delta >= 0.0 and floor > 0.0):
            raise ValueError(
                f"PCEN needs 0 < smooth <= 1, 0 <= alpha <= 1, root >= 1, delta >= 0, floor > 0; got "
                f"smooth={smooth}, alpha={alpha}, root={root}, delta={delta}, floor={floor}"
            )
        self.floor = float(floor)
        self.learnable = bool(learnable)
        self.initial = {"alpha": float(alpha), "delta": float(delta), "root": float(root), "smooth": float(smooth)}
        for name, value in self.initial.items():
            tensor = torch.full((n_channels,), value)
            if learnable:
                self.register_parameter(name, nn.Parameter(tensor))
            else:
                self.register_buffer(name, tensor, persistent=False)

    def values(self) -> dict[str, torch.Tensor]:
        """The effective (clamped) per-channel values ``alpha, delta, root, smooth``, each ``(C,)``."""
        return {
            "alpha": torch.clamp(self.alpha, max=1.0),
            "delta": torch.clamp(self.delta, min=1e-6),
            "root": torch.clamp(self.root, min=1.0),
            "smooth": torch.clamp(self.smooth, min=0.0, max=1.0),
        }

    def forward(self, energy: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=energy.device.type, enabled=False):
            energy = energy.float()
            v = {k: t.float() for k, t in self.values().items()}
            smoother = exponential_moving_average(energy, v["smooth"])
            expo = (1.0 / v["root"])[:, None]
            delta = v["delta"][:, None]
            gain = torch.exp(-v["alpha"][:, None] * torch.log(self.floor + smoother))
            return (energy * gain + delta) ** expo - delta**expo

    def extra_repr(self) -> str:
        return f"n_channels={self.alpha.numel()}, learnable={self.learnable}, floor={self.floor:g}, init={self.initial}"


class PCENOptions(MelOptions, total=False):
    """Options of the ``pcen`` front-end."""

    alpha: UnitInterval
    delta: NonNegative
    root: Positive
    smooth: Fraction
    floor: Positive


class PCENFrontend(Frontend):
    """PCEN of the mel energies instead of their log (Wang et al. 2017), all of PCEN learnable.

    The mel energies are exactly those of the ``mel`` front-end (same STFT and filterbank;
    its settings carry over from the variant: 128 bands for short_cnn, 96 for fcn). PCEN
    starts at Wang et al.'s values (alpha 0.98, delta 2, r 0.5, s 0.025, eps 1e-6) and learns
    ``alpha, delta, r, s`` per band: ``4 * n_mels`` trainable parameters, as leaf-audio's
    ``PCENLayer(trainable=True, learn_smooth_coef=True, per_channel_smooth_coef=True)``.
    Not cacheable: the output moves with training (the input energies could be cached, but
    the feature cache stores front-end outputs only).

    Args:
        sample_rate, n_mels, n_fft, hop_length, f_min, f_max, power: as the ``mel`` front-end.
        alpha, delta, root, smooth, floor: initial PCEN values (see :class:`PCEN`).

    Shape:
        ``(batch, samples)`` -> ``(batch, 1, n_mels, 1 + samples // hop_length)``.
    """

    name: ClassVar[str] = "pcen"
    OPTION_SPEC: ClassVar[type] = PCENOptions
    OPTIONS: ClassVar[frozenset[str]] = option_names(PCENOptions)
    output_kind: ClassVar[str] = "spectrogram"
    out_channels = 1

    def __init__(
        self,
        sample_rate: int = 16_000,
        n_mels: int = 96,
        n_fft: int = 512,
        hop_length: int = 256,
        f_min: float = 0.0,
        f_max: float | None = None,
        power: float = 2.0,
        alpha: float = 0.98,
        delta: float = 2.0,
        root: float = 2.0,
        smooth: float = 0.025,
        floor: float = 1e-6,
    ) -> None:
        super().__init__()
        self.hop_length = int(hop_length)
        self.mel = LogMelSpectrogram(sample_rate, n_fft, hop_length, n_mels, f_min, f_max, power)
        self.pcen = PCEN(int(n_mels), alpha, delta, root, smooth, floor, learnable=True)

    @property
    def n_bins(self) -> int:
        return self.mel.n_bins

    def n_frames(self, n_samples: int) -> int:
        return self.mel.n_frames(n_samples)

    def cache_spec(self) -> dict[str, Any] | None:
        return None

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """``(batch, samples)`` -> ``(batch, 1, n_mels, frames)``."""
        return self.pcen(self.mel.mel(wave)).unsqueeze(1)
