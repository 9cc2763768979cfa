"""What a model variant is, and how the registry finds them.

A back-end module of :mod:`pipeline.models.backends` declares its variants in a module-level
``VARIANTS`` tuple of :class:`VariantSpec`; :func:`discover` imports every module of the package
and collects them, so adding a model is one new file (and its row in ``docs/models.md``), and
no registry file changes (the DVC cells of the other models stay fresh).

A spec holds what the code needs and nothing twice: the name is the back-end's ``name``, the
one-line description and the notes on what differs from the reference are the back-end class's
docstring (its summary line and its ``Notes:`` section), and the reference's numbers travel
together in a :class:`Paper`.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipeline.models.backends.base import Backend

__all__ = ["REFERENCE_CLASSES", "Paper", "VariantSpec", "discover", "docstring_parts"]

REFERENCE_CLASSES = (50, 35, 17)
"""Output counts of docs/spec.md §2.10's parameter table (MTAT top-50, Speech Commands, DCASE 2017 T4)."""


@dataclass(frozen=True)
class Paper:
    """The reference's numbers for a variant.

    Attributes:
        input_length: the spec's chunk length L in samples at 16 kHz (home task).
        params: trainable parameters at width 1.0 with 50, 35 and 17 outputs (docs/spec.md §2.10,
            in the order of :data:`REFERENCE_CLASSES`), or None for the task baselines that are not
            in the reference code.
        task_lengths: paper L per task (``"tagging"``, ``"events"``, ``"keywords"``) where it
            differs from ``input_length``.
    """

    input_length: int
    params: tuple[int, ...] | None = None
    task_lengths: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.params is not None and len(self.params) != len(REFERENCE_CLASSES):
            raise ValueError(f"Paper.params lists {len(self.params)} counts; give one per output count {REFERENCE_CLASSES}")

    def params_for(self, n_classes: int) -> int | None:
        """The reference's trainable parameter count with ``n_classes`` outputs, or None if it gives none."""
        if self.params is None or n_classes not in REFERENCE_CLASSES:
            return None
        return self.params[REFERENCE_CLASSES.index(n_classes)]


@dataclass(frozen=True)
class VariantSpec:
    """One registry entry.

    Attributes:
        backend: the back-end class; its ``name`` is the variant's registry name (see ``name``), its
            docstring the variant's description and notes (:func:`docstring_parts`).
        paper: the reference's input length(s) and parameter counts.
        frontend: front-end name (key of ``pipeline.models.frontends.FRONTENDS``).
        frontend_kwargs: front-end settings of this variant (e.g. ``{"n_mels": 128}``).
        backend_kwargs: back-end settings of this variant.
        min_input_length: shortest input (samples) the model accepts.
        frame_samples: the smoke L is rounded up to a multiple of this (3 for the sample-level
            CNNs, whose first convolution has stride 3).
        name: registry name where it is not the back-end's (a second variant of one back-end).
    """

    backend: type[Backend]
    paper: Paper
    frontend: str = "mel"
    frontend_kwargs: Mapping[str, Any] = field(default_factory=dict)
    backend_kwargs: Mapping[str, Any] = field(default_factory=dict)
    min_input_length: int = 1_024
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
    name: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", self.backend.name)

    @property
    def backend_name(self) -> str:
        """The back-end's registry name (``spec.backend.name``)."""
        return self.backend.name

    @property
    def description(self) -> str:
        """One line: paper and architecture (the back-end docstring's summary)."""
        return docstring_parts(self.backend)[0]

    @property
    def notes(self) -> str:
        """Adaptations relative to the reference (the back-end docstring's ``Notes:`` section)."""
        return docstring_parts(self.backend)[1]


def docstring_parts(cls: type) -> tuple[str, str]:
    """``(summary, notes)`` of ``cls``'s own docstring: its first paragraph and its ``Notes:`` section, each on one line.

    Either is ``""`` where the docstring lacks it (the base class's docstring is not inherited).
    """
    doc = inspect.cleandoc(cls.__dict__.get("__doc__") or "")
    lines = doc.splitlines()
    summary = " ".join(doc.split("\n\n", 1)[0].split())
    notes: list[str] = []
    if "Notes:" in lines:
        for line in lines[lines.index("Notes:") + 1 :]:
            if line and not line.startswith(" "):
                break
            notes.append(line)
    return summary, " ".join(" ".join(notes).split())


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
