"""The code one grid cell runs: what its DVC stage depends on and what its checkpoint fingerprint hashes.

:func:`cell_sources` is the one answer to "which files does the cell of this model run"; the DAG
lists them as the cell's ``deps`` and training hashes them into the checkpoint fingerprint, so a
change re-runs exactly the cells DVC re-runs, and a new model leaves the others fresh and resumable.
"""

from __future__ import annotations

from functools import cache

from pipeline.core.codebase import import_closure, sources_hash
from pipeline.models.sources import per_model, variant_sources

CELL_ENTRY_MODULES = ("pipeline.orchestration.cell",)
"""Where a cell's code starts: the ``cell`` stage (its lock, the three steps it runs, the registration)."""


@cache
def cell_code() -> tuple[str, ...]:
    """Code every cell runs (the stage function, training, evaluation, robustness, what they import), besides its model's code."""
    return tuple(import_closure(CELL_ENTRY_MODULES, keep=lambda rel: not per_model(rel)))


def cell_sources(variant: str) -> list[str]:
    """Repository-relative files a cell of ``variant`` runs: :func:`cell_code` and the variant's own files."""
    return sorted({*cell_code(), *variant_sources(variant)})


def cell_code_hash(variant: str) -> str:
    """Hash of :func:`cell_sources`: the code part of the checkpoint fingerprint."""
    return sources_hash(cell_sources(variant))
