"""The project's own source files as a graph: the files a module runs (its import closure) and their hash.

A cell's DVC dependencies (``pipeline.orchestration.dag``) and its checkpoint fingerprint
(``pipeline.training.train``) both come from :func:`pipeline.training.code.cell_sources`, built on
:func:`import_closure`; so what re-runs a cell in DVC is exactly what keeps its checkpoint from resuming.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Callable, Iterable
from pathlib import Path

from pipeline.core.io_utils import sha256_file, stable_hash

PACKAGE = Path(__file__).resolve().parents[1]
REPO = PACKAGE.parent
"""The repository root (the folder above the ``pipeline`` package)."""


def module_file(module: str) -> Path | None:
    """``pipeline.data.shards`` -> its source file (module or package), or None when it is not ours."""
    rel = Path(*module.split("."))
    for cand in (REPO / rel.with_suffix(".py"), REPO / rel / "__init__.py"):
        if cand.exists():
            return cand
    return None


def imported_modules(path: Path) -> set[str]:
    """Every absolute ``pipeline`` module name ``path`` imports anywhere (function-local imports included)."""
    st = path.stat()
    return set(_parsed_imports(path, st.st_mtime_ns, st.st_size))


@functools.lru_cache(maxsize=4096)
def _parsed_imports(path: Path, mtime_ns: int, size: int) -> frozenset[str]:
    """:func:`imported_modules` of one version of a file (keyed by mtime and size: an edited file is parsed
    again), so generating ``dvc.yaml`` parses each module once however many cells import it."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return frozenset(m for m in found if m == "pipeline" or m.startswith("pipeline."))


def _package_inits(module: str) -> list[str]:
    """``pipeline.data.shards`` -> ``pipeline``, ``pipeline.data``: importing it runs them."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def import_closure(
    entries: Iterable[str],
    keep: Callable[[str], bool] = lambda rel: True,
    packages: bool = True,
) -> list[str]:
    """Repository-relative source files of ``entries`` and every ``pipeline`` module they import, transitively.

    Args:
        entries: dotted module names to start from.
        keep: which repository-relative files belong to the closure; a file it refuses is
            neither listed nor followed.
        packages: follow the packages above each module (importing a module runs them).
    """
    seen: set[Path] = set()
    todo = list(entries)
    while todo:
        name = todo.pop()
        path = module_file(name)
        if path is None or path in seen or not keep(path.relative_to(REPO).as_posix()):
            continue
        seen.add(path)
        if packages:
            todo.extend(_package_inits(name))
        todo.extend(imported_modules(path))
    return sorted(p.relative_to(REPO).as_posix() for p in seen)


def sources_hash(files: Iterable[str]) -> str:
    """Hash of the names and contents of repository-relative ``files``."""
    return stable_hash([(rel, sha256_file(REPO / rel)) for rel in sorted(files)])
