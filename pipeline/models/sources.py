"""The source files that define one model variant: its front-end's and back-end's import closures.

The registries (the package scans and the zoo's machinery) are shared by every variant but
name none of them, so adding a back-end module changes no file another variant depends on.
"""

from __future__ import annotations

from pipeline.core.codebase import import_closure
from pipeline.models.zoo import FRONTENDS, resolve_variant

MODEL_SHARED = (
    "pipeline/models/base.py",
    "pipeline/models/layers.py",
    "pipeline/models/spec.py",
    "pipeline/models/zoo.py",
    "pipeline/models/frontends/base.py",
    "pipeline/models/backends/base.py",
)
"""Model code shared by every variant (the machinery, base classes, layers)."""

REGISTRIES = (
    "pipeline/models/__init__.py",
    "pipeline/models/frontends/__init__.py",
    "pipeline/models/backends/__init__.py",
    "pipeline/models/zoo.py",
)
"""The package scans and the zoo: they import every variant, so a variant's closure stops at them."""

PER_MODEL_CODE = (
    "pipeline/models/backends/",
    "pipeline/models/frontends/",
    "pipeline/models/dsp/",
    "pipeline/models/__init__.py",
)
"""Model definitions: tracked per variant by :func:`variant_sources` (with :data:`MODEL_SHARED`)."""


def per_model(rel: str) -> bool:
    """Whether repository-relative ``rel`` is model code tracked per variant rather than by every cell."""
    return rel.startswith(PER_MODEL_CODE) or rel in MODEL_SHARED


def _model_file(rel: str) -> bool:
    return rel.startswith("pipeline/models/") and rel not in REGISTRIES


def variant_sources(variant: str) -> list[str]:
    """Repository-relative source files of ``variant`` (``"fcn"`` or ``"mfcc+short_cnn"``).

    Raises:
        ValueError: unknown variant or front-end.
    """
    frontend, spec = resolve_variant(variant)
    modules = (FRONTENDS[frontend].__module__, spec.backend.__module__)
    return sorted(set(import_closure(modules, keep=_model_file, packages=False)) | set(MODEL_SHARED))
