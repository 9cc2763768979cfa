"""Dataset registry: every dataset (synthetic or real) is a :class:`DatasetSource`.

A source knows how to *fetch* its raw files into ``data/raw/<name>/`` (download, extract,
or generate) and how to *catalog* them: a table of clips with their split and labels that
the ``segment`` stage turns into waveform shards. Sources live one per module in
:mod:`pipeline.data.sources`, each exposing ``SOURCE``; the registry finds them by name.

Catalog contract (``Catalog.clips`` columns):

========== ======= ==========================================================
clip_id    str     unique id
path       str     audio file, absolute or relative to the raw directory
split      str     ``train`` | ``val`` | ``test``
labels     list    class names (one for single-label tasks)
start_s    float   offset into the file in seconds (0 = start)
duration_s float   seconds to read (NaN = to the end of the file)
========== ======= ==========================================================
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import TYPE_CHECKING

import pipeline.data.sources as pkg
from pipeline.core.errors import UserError, closest
from pipeline.data.catalog import CATALOG_COLUMNS, Catalog, DatasetSource, TaskKind
from pipeline.data.sources.folder import make_source

if TYPE_CHECKING:
    from pipeline.config.params import Params
    from pipeline.core.paths import Layout

__all__ = ["CATALOG_COLUMNS", "Catalog", "DatasetSource", "TaskKind", "available", "get_source", "own_datasets"]


def available() -> list[str]:
    """Names of every registered dataset."""

    return sorted(m.name for m in pkgutil.iter_modules(pkg.__path__) if not m.name.startswith("_"))


def own_datasets(params: Params | None) -> list[str]:
    """Names of the named own datasets in ``params`` (``datasets.<name>: {kind: folder}``)."""
    return sorted(params.datasets.own()) if params is not None else []


def dataset_problem(name: str, params: Params | None, what: str = "dataset") -> str | None:
    """The sentence refusing an unknown dataset name (``None`` when ``name`` is known).

    It suggests the closest known name ("did you mean"), lists them all and says how to add one's own audio.

    Args:
        name: a registered source (:func:`available`) or a named own dataset of ``params``.
        params: the project's params (their own datasets count as known).
        what: how the sentence names it (``"task"`` for the task argument of a command).
    """
    known = available() + own_datasets(params)
    if name in known:
        return None
    guess = closest(name, known)
    hint = f"did you mean {guess!r}? Known: " if guess else "available: "
    return (
        f"unknown {what} {name!r}; {hint}{', '.join(known)} "
        f"(or add datasets.{name}: {{kind: folder, path: DIR}} to params.yaml for your own audio)"
    )


def check_dataset(name: str, params: Params | None, what: str = "dataset") -> None:
    """Refuse an unknown dataset name before anything is read or written (:func:`dataset_problem`).

    Raises:
        UserError: ``name`` is unknown; the message suggests the closest known name and lists them all.
    """
    problem = dataset_problem(name, params, what)
    if problem is not None:
        raise UserError(f"{problem}.")


def get_source(name: str, params: Params | None = None, layout: Layout | None = None) -> DatasetSource:
    """Return the source called ``name`` (configured from ``params`` where it needs it).

    ``name`` is a registered source (:func:`available`) or a named own dataset of ``params``,
    which is served by the folder source under its own name. ``layout`` (the project's) lets a
    folder source read the settings its download recorded.
    """
    check_dataset(name, params)
    if name not in available():
        return make_source(params, name, layout)
    module = importlib.import_module(f"pipeline.data.sources.{name}")
    if name == "folder":
        return module.make_source(params, name, layout)
    return module.make_source(params) if hasattr(module, "make_source") else module.SOURCE


def data_origin(name: str) -> str:
    """Where dataset ``name``'s audio comes from (the source's ``origin``): ``"synthetic"`` (the generated
    ``synth_*``), ``"rendered"`` (``corpus_tags``: real scores through a soundfont) or ``"real"`` (recordings;
    also an unknown dataset, or one that needs params to be named, unless it is called ``synth_*``)."""
    try:
        return get_source(name).origin
    except (UserError, AttributeError, KeyError, TypeError):
        return "synthetic" if name.startswith("synth_") else "real"
