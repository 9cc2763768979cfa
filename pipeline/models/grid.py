"""The grid's models and cells: ``grid.models`` with ``all`` read from the registry.

``grid.models: all`` (the profiles' default) means every registry variant, in registry order, so
adding a model to the registry adds it to the grid without editing a list anywhere; ``[all,
mfcc+short_cnn, hcnn_h3]`` adds swaps and aliases to it. Everything that walks the grid calls
:func:`grid_models` or :func:`cell_keys`, never ``params.grid.models`` itself (a test checks).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline.models.zoo import VARIANTS

if TYPE_CHECKING:
    from pipeline.config.params import Params

ALL = "all"
"""The ``grid.models`` entry that stands for every registry variant."""


def expand_models(names: list[str]) -> list[str]:
    """``["all", "mfcc+short_cnn"]`` -> every registry variant, then ``mfcc+short_cnn`` (first mention wins)."""
    out: list[str] = []
    for name in names:
        for model in VARIANTS if name == ALL else (name,):
            if model not in out:
                out.append(model)
    return out


def grid_models(params: Params) -> list[str]:
    """The models of the grid of ``params`` (``all`` expanded), in order."""
    return expand_models(list(params.grid.models))


def cell_keys(params: Params) -> list[tuple[str, str, int]]:
    """Every grid cell ``(task, model, seed)`` in pipeline order (tasks, then models, then seeds)."""
    return [(t, m, s) for t in params.grid.tasks for m in grid_models(params) for s in params.grid.seeds]
