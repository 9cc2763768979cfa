"""Name checks for ``musicrep params --check``: what pydantic cannot know from types alone.

:func:`check_names` returns one sentence per problem (the model, task, perturbation or noise
source that does not exist, with the allowed names), so ``params --check`` fails before a
long ``dvc repro`` would, instead of saying OK.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.data.registry import available, own_datasets
from pipeline.models.grid import grid_models
from pipeline.models.options import check_options
from pipeline.models.zoo import FRONTENDS, resolve_variant, variant_option_specs
from pipeline.robustness.perturb import PERTURBATIONS, check_level

if TYPE_CHECKING:
    from pipeline.config.params import Params


def _model_problem(name: str, params: Params) -> str | None:
    alias = params.variants.get(name)
    variant, options = (alias.model, dict(alias.options)) if alias is not None else (name, {})
    where = f"variants.{name}.model" if alias is not None else "grid.models"
    try:
        frontend, spec = resolve_variant(variant)
    except ValueError as exc:
        hint = f"; or define it under variants (aliases: {', '.join(sorted(params.variants)) or 'none'})" if alias is None else ""
        return (
            f"{where}: {exc} (or FRONTEND+MODEL with a front-end of {sorted(FRONTENDS)}){hint}"
            if "unknown model" in str(exc)
            else f"{where}: {exc}"
        )
    try:
        check_options(variant_option_specs(variant), options, params.segment.sample_rate)
    except ValueError as exc:
        return f"variants.{name}.options ({variant}): {exc}"
    return None


def check_names(params: Params, base_dir: str | Path = ".") -> list[str]:
    """Problems with the names in ``params`` (empty when every name is known).

    Args:
        params: validated params.
        base_dir: folder relative ``robustness.noise_source`` paths are tried under (the
            project root), besides the working directory.
    """

    problems: list[str] = []
    known = available() + own_datasets(params)
    for task in params.grid.tasks:
        if task not in known:
            problems.append(
                f"grid.tasks: unknown dataset {task!r}; known: {', '.join(known)} "
                f"(or add datasets.{task}: {{kind: folder, path: DIR}} for your own audio)"
            )
    for name in grid_models(params):
        problem = _model_problem(name, params)
        if problem:
            problems.append(problem)
    for name in params.variants:
        if name not in grid_models(params):
            problem = _model_problem(name, params)
            if problem:
                problems.append(problem)
    for name, levels in params.robustness.grid.items():
        if name not in PERTURBATIONS:
            problems.append(f"robustness.grid: unknown perturbation {name!r}; allowed: {', '.join(PERTURBATIONS)}")
            continue
        for level in levels:
            try:
                check_level(name, level)
            except ValueError as exc:
                problems.append(f"robustness.grid.{name}: {exc}")
                break
    source = params.robustness.noise_source
    if source not in ("synthetic", "speech_commands"):
        path = Path(source).expanduser()
        if not (path.is_dir() or (not path.is_absolute() and (Path(base_dir) / path).is_dir())):
            problems.append(
                f"robustness.noise_source {source!r} is neither 'synthetic', 'speech_commands' nor an existing folder of audio files"
            )
    return problems
