"""No function in ``pipeline/`` is longer than :data:`MAX_FUNCTION_LINES` (issue 19: a function
that does one job fits on a screen or two; ``train_model`` was 254 lines doing nine)."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MAX_FUNCTION_LINES = 120


def long_functions(root: Path, limit: int = MAX_FUNCTION_LINES) -> list[str]:
    """``"path:line name (n lines)"`` for every function or method under ``root`` longer than ``limit``
    lines, counted from its first decorator (or ``def``) to its last line, nested functions included."""
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                lines = node.end_lineno - first + 1
                if lines > limit:
                    found.append(f"{path.relative_to(root.parent)}:{node.lineno} {node.name} ({lines} lines)")
    return found


def test_no_function_in_pipeline_over_the_limit() -> None:
    long = long_functions(REPO / "pipeline")
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines (split them into parts):\n" + "\n".join(long)


def test_the_check_sees_a_long_function(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    (pkg / "m.py").write_text(f"def short():\n    return 1\n\n\n@staticmethod\ndef long():\n{body}\n")
    assert long_functions(pkg) == [f"pkg/m.py:6 long ({MAX_FUNCTION_LINES + 2} lines)"]
