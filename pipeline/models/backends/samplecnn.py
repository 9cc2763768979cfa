"""Sample-level CNN (Lee et al. 2017) and its SE variant (Kim et al. 2018), docs/spec.md §2.4 and §2.5.

Raw waveform, L = 59,049 = 3^10. At that length the time axis ends at exactly 1; other
lengths rely on the fit pools and a final global max over time.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from pipeline.models.backends.base import Backend
from pipeline.models.layers import C1, SE1, Head, OutputLayer, global_max_pool, stack
from pipeline.models.spec import Paper, VariantSpec

SAMPLE_FRAME = 3
"""Samples per frame: the first convolution has stride 3."""

# (out channels, kernel, stride, pool) of the 11 stages
SAMPLE_CNN_STAGES = (
    (128, 3, 3, 1),
    (128, 3, 1, 3),
    (128, 3, 1, 3),
    (256, 3, 1, 3),
    (256, 3, 1, 3),
    (256, 3, 1, 3),
    (256, 3, 1, 3),
    (256, 3, 1, 3),
    (256, 3, 1, 3),
    (512, 3, 1, 3),
    (512, 1, 1, 1),
)


class _SampleLevelBackend(Backend):
    """11 ``block`` stages of :data:`SAMPLE_CNN_STAGES` -> GMP -> ``head``."""

    input_kind: ClassVar[str] = "waveform"
    block: type[nn.Module]
    head_type: type[nn.Module]

    def __init__(self, in_channels: int, n_bins: int | None, n_classes: int, width: float = 1.0) -> None:
        super().__init__(n_classes)
        self.stages, self.embedding_dim = stack(self.block, 1, SAMPLE_CNN_STAGES, width)
        self.head = self.head_type(self.embedding_dim, n_classes)

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        return global_max_pool(self.stages(features))


class SampleCNNBackend(_SampleLevelBackend):
    """Sample-level CNN (Lee et al. 2017): 11 conv stages on the raw waveform, 3^10 samples.

    11 C1 stages (stride-3 first stage, pools of 3) -> GMP -> Dropout -> Linear.

    Shape:
        ``(batch, 1, samples)`` -> logits ``(batch, n_classes)``; ``embed`` -> ``(batch, 512 w)``.

    Notes:
        Fit: pool kernels clipped to the map size, global max pool at the end. The reference needs exactly 3^10 samples;
        other lengths end with a global max over time.
    """

    name: ClassVar[str] = "samplecnn"
    block = C1
    head_type = OutputLayer


class SampleCNNSEBackend(_SampleLevelBackend):
    """Sample-level CNN + residual squeeze-excitation blocks (Kim et al. 2018), 3^10 samples.

    11 SE1 stages (same layout) -> GMP -> Head(512).

    Shape:
        ``(batch, 1, samples)`` -> logits ``(batch, n_classes)``; ``embed`` -> ``(batch, 512 w)``.

    Notes:
        Fit: pool kernels clipped to the map size, global max pool at the end. Same length handling as samplecnn.
    """

    name: ClassVar[str] = "samplecnn_se"
    block = SE1
    head_type = Head


VARIANTS = (
    VariantSpec(SampleCNNBackend, Paper(59_049, (1_869_874, 1_862_179, 1_852_945)), frontend="raw", frame_samples=SAMPLE_FRAME),
    VariantSpec(
        SampleCNNSEBackend,
        Paper(59_049, (6_951_858, 6_944_163, 6_934_929)),
        frontend="raw",
        frame_samples=SAMPLE_FRAME,
        cpu_bf16=True,
    ),
)
"""The registry entries of this module (found by :mod:`pipeline.models.backends`)."""
