"""The ``pipeline`` modules a source file imports, read from its syntax tree (for the DVC code deps).

Parsed once per version of a file (keyed by mtime and size), so generating ``dvc.yaml`` walks each
module once however many cells import it (6.7 s -> 1 s for the paper grid's 11 cells).
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def module_file(module: str) -> Path | None:
    """The source file of ``pipeline`` module ``module`` (``None`` outside the repository)."""
    rel = Path(*module.split("."))
    for cand in (REPO / rel.with_suffix(".py"), REPO / rel / "__init__.py"):
        if cand.exists():
            return cand
    return None


def imports_of(path: Path) -> set[str]:
    """The modules ``path`` imports (function-local imports included)."""
    st = path.stat()
    return set(_parsed_imports(path, st.st_mtime_ns, st.st_size))


@functools.lru_cache(maxsize=4096)
def _parsed_imports(path: Path, mtime_ns: int, size: int) -> frozenset[str]:
    """:func:`imports_of` of one version of a file (keyed by its mtime and size: an edited file is parsed again)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return frozenset(found)
