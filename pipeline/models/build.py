"""Build a grid model for a task: a resolved grid model (:class:`~pipeline.config.params.GridModel`) plus the task's shape.

Used by ``train`` and by the feature cache (which builds the grid's front-ends to know what
to cache); it lives with the models so that neither stage imports the other. The caller resolves
the grid model from ``params`` (:func:`pipeline.config.params.grid_model`); this module reads no params.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline.core.errors import UserError
from pipeline.core.task_kinds import kind_of
from pipeline.models.base import AudioModel, ModelConfig
from pipeline.models.zoo import build_model, input_length_for

if TYPE_CHECKING:
    from pipeline.config.params import GridModel


def build_for_task(model: GridModel, dataset: str, *, n_classes: int, multilabel: bool, clip_samples: int) -> AudioModel:
    """Build grid model ``model`` for a task of ``dataset`` (named in the error) with ``n_classes`` outputs.

    The input length is the variant's for ``model.profile``, at most ``clip_samples`` and the smoke crop
    ``model.max_samples``.
    """

    kind = kind_of(multilabel)
    try:
        length = input_length_for(model.variant, model.profile, clip_samples, kind, max_samples=model.max_samples)
        config = ModelConfig(
            variant=model.variant,
            n_classes=n_classes,
            multilabel=multilabel,
            width=model.width,
            input_length=length,
            options=dict(model.options),
        )
        return build_model(config)
    except (KeyError, ValueError) as exc:
        raise UserError(f"model {model.name!r} cannot be built for {dataset}: {exc}; see `musicrep models`.") from exc
