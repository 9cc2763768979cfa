"""What a model variant is, and how the registry finds them.

A back-end module of :mod:`pipeline.models.backends` declares its variants in a module-level
``VARIANTS`` tuple of :class:`VariantSpec`; :func:`discover` imports every module of the package
and collects them, so adding a model is one new file (and its row in ``docs/models.md``), and
no registry file changes (the DVC cells of the other models stay fresh).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipeline.models.backends.base import Backend

__all__ = ["FIT_NOTE", "LOGITS_NOTE", "VariantSpec", "discover"]

LOGITS_NOTE = "Returns logits (no sigmoid in forward)."
FIT_NOTE = "Fit: pool kernels clipped to the map size, global max pool at the end."


@dataclass(frozen=True)
class VariantSpec:
    """One registry entry.

    Attributes:
        name: registry name.
        frontend: front-end name (key of ``pipeline.models.frontends.FRONTENDS``).
        backend: the back-end class (its ``name`` keys ``pipeline.models.backends.BACKENDS``).
        paper_input_length: the spec's chunk length L in samples at 16 kHz (home task).
        reference_params: trainable parameters at width 1.0 with 50 outputs (docs/spec.md §2.10), or
            None for the task baselines that are not in the reference code.
        min_input_length: shortest input (samples) the model accepts.
        description: one line: paper and architecture.
        notes: adaptations relative to the reference.
        frontend_kwargs: front-end settings of this variant (e.g. ``{"n_mels": 128}``).
        backend_kwargs: back-end settings of this variant.
        reference_params_by_classes: docs/spec.md §2.10 counts by number of outputs (50, 35, 17).
        task_input_lengths: paper L per task (``"tagging"``, ``"events"``, ``"keywords"``)
            where it differs from ``paper_input_length``.
        smoke_rule: how ``input_length_for(..., "smoke", ...)`` picks L (for the docs).
        frame_samples: the smoke L is rounded up to a multiple of this (3 for the sample-level
            CNNs, whose first convolution has stride 3).
    """

    name: str
    frontend: str
    backend: type[Backend]
    paper_input_length: int
    reference_params: int | None
    min_input_length: int
    description: str
    notes: str
    frontend_kwargs: Mapping[str, Any] = field(default_factory=dict)
    backend_kwargs: Mapping[str, Any] = field(default_factory=dict)
    reference_params_by_classes: Mapping[int, int] = field(default_factory=dict)
    task_input_lengths: Mapping[str, int] = field(default_factory=dict)
    smoke_rule: str = "min(paper L, clip), at least min_input_length"
    frame_samples: int = 1
    cpu_mkldnn: bool = True
    """Train with oneDNN (mkldnn) convolutions on CPU. False where PyTorch's native kernels were
    measured faster (``benchmarks/models.py``, ``docs/benchmarks.md``): musicnn's tall
    one-channel front filters backpropagate about 2x faster without oneDNN on our CPUs."""
    cpu_bf16: bool = False
    """``train.bf16: auto`` trains and infers in bf16 autocast on a CPU with native bf16
    (``pipeline.models.inference.use_bf16``). True where a smoke training step was measured at least 1.2x
    faster in bf16 than in fp32 on such a CPU (``benchmarks/bf16.py``, docs/benchmarks.md: 1.34-2.40x);
    False for samplecnn (1.03x) and gated_crnn (1.11x), for short_res (1.24x, but its synth_tags
    cell diverged to NaN in bf16, docs/results.md), and for any variant not measured."""

    @property
    def backend_name(self) -> str:
        """The back-end's registry name (``spec.backend.name``)."""
        return self.backend.name


def discover(package: ModuleType) -> dict[str, VariantSpec]:
    """Every ``VARIANTS`` entry of the modules of ``package``, by name (module order, then declaration order).

    Raises:
        ValueError: two modules declare the same variant name.
    """
    found: dict[str, VariantSpec] = {}
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        for spec in getattr(module, "VARIANTS", ()):
            if spec.name in found:
                raise ValueError(f"variant {spec.name!r} is declared twice (second time in {module.__name__})")
            found[spec.name] = spec
    return found
