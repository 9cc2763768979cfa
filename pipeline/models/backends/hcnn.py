"""Harmonic CNN back-end (Won et al., ICASSP 2020), docs/spec.md §2.9.

Stages 1-5 are shared by the three task variants of the reference; only the pools of
stages 6-7 differ (they make the time axis end at 1 for each task's input length):

==========  ==============  ================  =====================
variant     stage 6 pool    stage 7 pool      input (frames)
==========  ==============  ================  =====================
``mtat``    (2, 3)          (2, 3)            80,000 (313)
``dcase``   (2, 2)          (2, 2)            48,000 (188)
``kws``     (2, 2)          (2, 1)            16,384 (65)
==========  ==============  ================  =====================
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal

import torch
from torch import nn
from typing_extensions import TypedDict

from pipeline.models.backends.base import Backend
from pipeline.models.layers import C2, RM, Head, global_max_pool, scale_width
from pipeline.models.spec import Paper, VariantSpec

if TYPE_CHECKING:
    from pipeline.models.base import ModelConfig

HCNN_POOLS = {
    "mtat": ((2, 3), (2, 3)),
    "dcase": ((2, 2), (2, 2)),
    "kws": ((2, 2), (2, 1)),
}
HCNN_CHANNELS = 128


class HCNNOptions(TypedDict, total=False):
    """Options of the ``hcnn`` back-end (``auto``: the pools of the task)."""

    hcnn_pools: Literal["mtat", "dcase", "kws", "auto"]


class HarmonicCNNBackend(Backend):
    """Harmonic CNN (Won et al. 2020): trainable harmonic filterbank (H=6, Q only) + residual 2-D CNN.

    BN(H) -> C2(H->128) -> RM(128) x3 -> C2(128->256) -> RM(256) x2 -> GMP -> Head(256).

    Args:
        in_channels: harmonics H (6 by default; 1 for a mel front-end).
        n_bins: unused (any height works).
        n_classes: outputs.
        width: channel multiplier.
        pools: ``"mtat"`` (default), ``"dcase"`` or ``"kws"`` (stage 6-7 pools, see module doc).

    Shape:
        ``(batch, H, B, T)`` -> logits ``(batch, n_classes)``; ``embed`` -> ``(batch, 256 w)``.

    Notes:
        Fit: pool kernels clipped to the map size, global max pool at the end. Stage 6-7 pools by the hcnn_pools option
        (auto: single-label -> kws, input >= 80,000 -> mtat, else dcase). Paper L per task: tagging 80,000, events 48,000,
        keywords 16,384 (1-s clips zero-padded; 16,000 would give 63 frames, which the reference back-end rejects).
    """

    name: ClassVar[str] = "hcnn"
    OPTION_SPEC: ClassVar[type] = HCNNOptions

    def __init__(self, in_channels: int, n_bins: int, n_classes: int, width: float = 1.0, pools: str = "mtat") -> None:
        super().__init__(n_classes)
        if pools not in HCNN_POOLS:
            raise ValueError(f"hcnn_pools must be one of {sorted(HCNN_POOLS)} or 'auto', got {pools!r}")
        self.pools = pools
        channels = scale_width(HCNN_CHANNELS, width)
        wide = scale_width(2 * HCNN_CHANNELS, width)
        pool6, pool7 = HCNN_POOLS[pools]
        self.input_norm = nn.BatchNorm2d(in_channels)
        self.blocks = nn.Sequential(
            C2(in_channels, channels, 2),
            RM(channels, 2),
            RM(channels, 2),
            RM(channels, 2),
            C2(channels, wide, 2),
            RM(wide, pool6),
            RM(wide, pool7),
        )
        self.embedding_dim = wide
        self.head = Head(wide, n_classes)

    @classmethod
    def resolve_options(cls, options: dict[str, Any], config: ModelConfig) -> dict[str, Any]:
        """``hcnn_pools`` -> ``pools``; ``"auto"`` is ``"kws"`` for single-label, ``"mtat"`` for inputs
        >= 80,000 samples, else ``"dcase"``."""
        options = dict(options)
        pools = options.pop("hcnn_pools", "auto")
        if pools == "auto":
            pools = "kws" if not config.multilabel else "mtat" if config.input_length >= 80_000 else "dcase"
        return {**options, "pools": pools}

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        return global_max_pool(self.blocks(self.input_norm(features)))


VARIANTS = (
    VariantSpec(
        HarmonicCNNBackend,
        Paper(80_000, (3_631_551, 3_627_696, 3_623_070), task_lengths={"tagging": 80_000, "events": 48_000, "keywords": 16_384}),
        frontend="harmonic",
        frontend_kwargs={"n_mels": 128},
        backend_kwargs={"hcnn_pools": "auto"},
        cpu_bf16=True,
    ),
)
"""The registry entries of this module (found by :mod:`pipeline.models.backends`)."""
