"""Name checks: what pydantic cannot know from types alone.

:func:`check_names` returns one sentence per problem (the model, task, perturbation or noise
source that does not exist, with the allowed names), so ``params --check`` fails before a
long ``dvc repro`` would, instead of saying OK. :func:`check_model` refuses the model name of
one command, with a "did you mean", before the command reads any data.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.core.errors import UserError, closest
from pipeline.data.registry import dataset_problem
from pipeline.models.grid import grid_models
from pipeline.models.options import check_options
from pipeline.models.pretrained_catalog import CATALOG, PREFIX, sota_help
from pipeline.models.zoo import FRONTENDS, VARIANTS, resolve_variant, variant_option_specs
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
        if "unknown model" not in str(exc):
            return f"{where}: {exc}"
        hint = f"; or define it under variants (aliases: {', '.join(sorted(params.variants)) or 'none'})" if alias is None else ""
        guess = closest(variant, _known_models(params, published=False))
        return f"{where}: {exc} (or FRONTEND+MODEL with a front-end of {sorted(FRONTENDS)}){hint}" + (
            f"; did you mean {guess!r}?" if guess else ""
        )
    try:
        check_options(variant_option_specs(variant), options, params.segment.sample_rate)
    except ValueError as exc:
        return f"variants.{name}.options ({variant}): {exc}"
    return None


def _known_models(params: Params, published: bool) -> dict[str, str]:
    """Spellings of the known model names -> the name to suggest (``mtat/fcn`` -> ``sota:mtat/fcn``)."""
    names = {name: name for name in [*VARIANTS, *params.variants]}
    if published:
        names |= {name.removeprefix(PREFIX): name for name in CATALOG} | {name: name for name in CATALOG}
    return names


def check_model(name: str, params: Params, *, published: bool = False) -> None:
    """Refuse an unknown model name of a command before it reads any data.

    Args:
        name: a grid model (a variant, ``FRONTEND+VARIANT`` or an alias under ``variants``), or
            with ``published`` also a published tagger (``sota:mtat/musicnn``).
        params: the project's params (their ``variants`` aliases count as known).
        published: whether the command takes published taggers (evaluate, robustness).

    Raises:
        UserError: the name is unknown (with the closest known name), or a published one where
            only a grid model can go.
    """
    if published and name in CATALOG:
        return
    if name in CATALOG or name.startswith(PREFIX):
        if name in CATALOG:
            raise UserError(f"{name} is a published model: it is evaluated (`musicrep evaluate TASK {name}`), not trained.")
    else:
        problem = _model_problem(name, params)
        if problem is None:
            return
        if "+" in name or "unknown model" not in problem:  # a front-end swap or an alias's options: the specific message
            raise UserError(f"model {name!r}: {problem.split(': ', 1)[-1]}.")
    guess = closest(name, _known_models(params, published))
    hint = f"did you mean {guess!r}? Known: " if guess else "known: "
    if name.startswith(PREFIX):  # a published name: list the published ones, the forms that work
        raise UserError(f"unknown published model {name!r}; {hint}{', '.join(sorted(CATALOG))} (`musicrep pretrained list`).")
    raise UserError(
        f"unknown model {name!r}; {hint}{', '.join(sorted(VARIANTS))}"
        f"{', a published ' + sota_help() if published else ''} "
        "(or FRONTEND+MODEL, or an alias under variants in params.yaml)."
    )


def check_names(params: Params, base_dir: str | Path = ".") -> list[str]:
    """Problems with the names in ``params`` (empty when every name is known).

    Args:
        params: validated params.
        base_dir: folder relative ``robustness.noise_source`` paths are tried under (the
            project root), besides the working directory.
    """

    problems: list[str] = []
    problems += [f"grid.tasks: {problem}" for task in params.grid.tasks if (problem := dataset_problem(task, params))]
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
