"""Per-channel energy normalisation (PCEN; Wang et al., ICASSP 2017), learnable per channel.

    M(t, f) = (1 - s_f) M(t - 1, f) + s_f E(t, f),      M(-1, f) = E(0, f)
    PCEN(t, f) = (E / (eps + M)^alpha_f + delta_f)^(1 / root_f) - delta_f^(1 / root_f)

The recursion ``M`` is computed in blocks of frames: one matrix product per block (vectorised
over filters and within the block) and a carry from block to block. The smoother starts at
``M(-1) = E(0)`` (leaf-audio's choice); parity with ``librosa.pcen`` given that initial state is
tested in ``tests/test_frontends_learnable.py``. The ``pcen`` front-end applies it to mel
energies; LEAF uses it as its sPCEN compression.
"""

from __future__ import annotations

import torch
from torch import nn

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
