"""Build a grid model for a task: the model name of ``params.yaml`` plus the task's shape.

Used by ``train`` and by the feature cache (which builds the grid's front-ends to know what
to cache); it lives with the models so that neither stage imports the other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline.config.params import resolve_variant
from pipeline.core.errors import UserError
from pipeline.core.task_kinds import kind_of
from pipeline.models.base import AudioModel, ModelConfig
from pipeline.models.zoo import build_model, input_length_for

if TYPE_CHECKING:
    from pipeline.config.params import Params


def build_for_task(name: str, dataset: str, params: Params, *, n_classes: int, multilabel: bool, clip_samples: int) -> AudioModel:
    """Build grid model ``name`` (registry name, ``front+back`` or alias) for a task."""

    variant, options, width = resolve_variant(params, name)
    kind = kind_of(multilabel)
    try:
        crop = params.train.input_seconds
        cap = None if crop is None else round(crop * params.segment.sample_rate)
        length = input_length_for(variant, params.profile, clip_samples, kind, max_samples=cap)
        config = ModelConfig(
            variant=variant, n_classes=n_classes, multilabel=multilabel, width=width, input_length=length, options=options
        )
        return build_model(config)
    except (KeyError, ValueError) as exc:
        raise UserError(f"model {name!r} cannot be built for {dataset}: {exc}; see `musicrep models`.") from exc
