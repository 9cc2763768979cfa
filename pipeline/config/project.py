"""The project a command works on: found once, then passed explicitly as a :class:`Layout`.

A project is a folder holding ``params.yaml`` (and ``dvc.yaml``, ``data/``, ``models/``...).
``musicrep --project DIR`` names it; otherwise it is the nearest folder at or above the
current directory that holds ``params.yaml``; otherwise the current directory (commands that
need params then say so). The CLI resolves it once per command into a :class:`Project` (root + ``--set`` overrides), which it
hands to every command; the stages only ever see the :class:`~pipeline.core.paths.Layout` and the
parameters they are passed. There is no process-wide state.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from pipeline.config.params import AliasBombError, load_params, load_yaml
from pipeline.core.errors import UserError
from pipeline.core.io_utils import deep_merge
from pipeline.core.paths import Layout
from pipeline.core.settings import settings

PARAMS = "params.yaml"


def find_root(explicit: str | os.PathLike | None = None, start: str | os.PathLike | None = None) -> Path:
    """The project root: ``explicit`` (must hold ``params.yaml``), else the nearest ancestor of ``start`` that does.

    Raises:
        UserError: ``explicit`` is not a folder with a ``params.yaml``.
    """
    if explicit is not None:
        root = Path(explicit).expanduser().resolve()
        if not (root / PARAMS).is_file():
            raise UserError(
                f"--project {explicit} has no {PARAMS}; pass the folder of a musicrep project (where dvc.yaml "
                "and params.yaml live)."
            )
        return root
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / PARAMS).is_file():
            return folder
    return here


def params_path(root: Path, given: str | os.PathLike | None) -> Path:
    """Where a ``--params`` value points: as given when it exists from here or is absolute, else inside ``root``."""
    if given is None:
        return root / PARAMS
    given = Path(given).expanduser()
    if given.is_absolute() or given.exists():
        return given
    return root / given


def tracking_uri(root: Path) -> str:
    """The project's MLflow store: ``$MLFLOW_TRACKING_URI`` when the user sets it (an override, for a
    tracking server), else ``sqlite:///<root>/mlflow.db``; never the current directory."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path(root).resolve() / 'mlflow.db'}"


def layout(root: Path) -> Layout:
    return Layout(root)


@dataclass(frozen=True)
class Project:
    """What one ``musicrep`` command runs on, resolved once in the CLI callback and passed on.

    Args:
        root: the project folder (``--project`` or the nearest folder with ``params.yaml``).
        overrides: the command's ``--set`` values as a nested dict (``{"train": {"epochs": 1}}``);
            every params file the command loads gets them, and the Prefect flow receives them as
            a flow parameter, so ``musicrep --set train.epochs=1 flow`` trains one epoch.
    """

    root: Path
    overrides: dict = field(default_factory=dict)

    @property
    def layout(self) -> Layout:
        return Layout(self.root)

    @property
    def tracking_uri(self) -> str:
        """The MLflow store this project's runs go to (:func:`tracking_uri`), handed to every MLflow client."""
        return tracking_uri(self.root)

    def params_file(self, given: str | os.PathLike | None = None) -> Path:
        """Where a ``--params`` value points (:func:`params_path`)."""
        return params_path(self.root, given)

    def params(self, given: str | os.PathLike | None = None, extra: dict | None = None):
        """The resolved parameters: the params file over its profile, then ``--set``, then ``extra``."""

        merged = deep_merge(self.overrides, extra or {})
        return load_params(self.params_file(given), merged or None)

    def pretrained_mirror(self, flag: str | os.PathLike | None = None) -> str | None:
        """:func:`pretrained_mirror` with this project's params (with ``--set``), when it has a params file."""
        return pretrained_mirror(flag, self.params() if self.params_file().exists() else None)


def pretrained_mirror(flag: str | os.PathLike | None = None, params=None) -> str | None:
    """The one resolution of where ``sota:`` weights come from, for every command: ``flag`` (``--mirror``),
    else ``params.pretrained.mirror``, else ``$MUSICREP_PRETRAINED_MIRROR``, else ``None`` (the upstream URLs)."""

    if flag not in (None, ""):
        return str(flag)
    from_params = getattr(getattr(params, "pretrained", None), "mirror", None)
    return from_params or settings().pretrained_mirror or None


RUN_TIME_SECTIONS = ("runtime", "flow")
"""``--set`` sections that change how a command runs, never a result: allowed everywhere."""

WRITING_COMMANDS = frozenset(
    {"download", "segment", "features", "train", "evaluate", "robustness", "cell", "summary", "flow", "report", "serve"}
)
"""Commands that write the outputs ``dvc.yaml`` tracks (and ``params --resolve``, checked where it runs)."""


def without_run_time(overrides: dict | None) -> dict:
    """``overrides`` less :data:`RUN_TIME_SECTIONS`: what may reach ``params.resolved.yaml`` (a run-time
    ``--set`` changes how this command runs, not the values ``dvc.yaml``'s stages track)."""
    return {k: v for k, v in (overrides or {}).items() if k not in RUN_TIME_SECTIONS}


def result_keys(overrides: dict, prefix: str = "") -> list[str]:
    """Dotted keys of ``overrides`` outside :data:`RUN_TIME_SECTIONS` (``["train.epochs"]``)."""
    keys: list[str] = []
    for key, value in overrides.items():
        if not prefix and key in RUN_TIME_SECTIONS:
            continue
        dotted = f"{prefix}{key}"
        keys.extend(result_keys(value, dotted + ".") if isinstance(value, dict) and value else [dotted])
    return keys


def refuse_tracked_tryout(project: Project, command: str) -> None:
    """Refuse a ``--set`` that changes results when ``command`` would write them over the project's tracked outputs.

    A try-out belongs in a DVC experiment (``dvc exp run -S``: its own workspace, results kept
    apart and compared by ``dvc exp show``); a folder without ``dvc.yaml`` tracks nothing, and
    ``runtime.*``/``flow.*`` change no result, so both stay allowed (docs/decisions.md).

    Raises:
        UserError: the one sentence naming the key and ``dvc exp run -S``.
    """
    keys = result_keys(project.overrides)
    if not keys or not (project.root / "dvc.yaml").is_file():
        return
    sets = " ".join("-S " + shlex.quote(f"++{k}={_leaf(project.overrides, k)}") for k in keys)
    raise UserError(
        f"--set {keys[0]} changes results and `musicrep {command}` would write them over the outputs dvc.yaml tracks in "
        f"{project.root}; try it as an experiment instead, `dvc exp run {sets}` (results kept apart, compared by "
        "`dvc exp show`), or put the change in params.yaml (only runtime.* and flow.* may be --set here)."
    )


def _leaf(overrides: dict, dotted: str) -> str:
    """The value at ``dotted`` as ``-S`` takes it (YAML flow style: ``[fcn]``, ``1``, ``null``)."""

    node = overrides
    for part in dotted.split("."):
        node = node[part]
    return yaml.safe_dump(node, default_flow_style=True, width=1000).strip().removesuffix("...").strip()


def parse_overrides(items: list[str]) -> dict:
    """``["train.epochs=2", "grid.models=[fcn]"]`` -> ``{"train": {"epochs": 2}, "grid": {"models": ["fcn"]}}``.

    Values are parsed as YAML (numbers, booleans, null, lists); keys are dotted paths.

    Raises:
        UserError: an item without ``=`` or with an empty key, or a value that is not YAML.
    """

    out: dict = {}
    for item in items:
        key, sep, value = item.partition("=")
        parts = [p for p in key.strip().split(".")]
        if not sep or not all(parts):
            raise UserError(f"--set {item!r} is not KEY=VALUE with a dotted key; write e.g. --set train.epochs=2.")
        try:
            parsed = load_yaml(value) if value.strip() else ""
        except AliasBombError as exc:
            raise UserError(f"--set {key.strip()} is refused: {exc}; write the values out.") from None
        except yaml.YAMLError:
            raise UserError(f"--set {item!r}: the value is not valid YAML; quote it or write e.g. [fcn, hcnn].") from None
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise UserError(f"--set {item!r} conflicts with another --set of {part}.")
        node[parts[-1]] = parsed
    return out


def project_of(ctx) -> Project:
    """The :class:`Project` the ``musicrep`` callback stored on a click/typer context ``ctx``;
    for a command invoked without the callback, the nearest project with no overrides."""
    return ctx.find_object(Project) or Project(find_root(None))
