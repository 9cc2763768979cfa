"""Back-ends: features -> logits (and ``embed`` -> pooled representation).

Every module here that declares a ``VARIANTS`` tuple of
:class:`~pipeline.models.spec.VariantSpec` is a registry entry: it is found by a scan of this
package (:func:`pipeline.models.spec.discover`), as the dataset sources are
(``pipeline.data.registry``). ``docs/contributing.md`` gives the recipe.
"""

import sys
from types import MappingProxyType

from pipeline.models.backends.base import Backend
from pipeline.models.spec import VariantSpec, discover

VARIANTS: dict[str, VariantSpec] = discover(sys.modules[__name__])
"""Every registered variant by name, in module order (treat as read-only)."""

BACKENDS = MappingProxyType({spec.backend_name: spec.backend for spec in VARIANTS.values()})
"""Back-end classes by name (read-only)."""

__all__ = ["BACKENDS", "VARIANTS", "Backend"]
