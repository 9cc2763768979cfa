"""The command line's import budget: ``musicrep --help`` loads no torch, MLflow, Prefect or DVC.

The commands name their working modules through :func:`pipeline.cli.lazy.lazy`; these tests read
the module list of ``python -X importtime`` (never a wall time), so a module-level import that pulls
in a heavy library anywhere under ``pipeline.cli`` fails here with the chain that brought it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.cli.lazy import LazyModule, lazy

HEAVY = ("torch", "mlflow", "prefect", "dvc")
ROOT = Path(__file__).resolve().parents[1]


def _imported_modules(*args: str) -> list[str]:
    """The dotted names ``python -X importtime ARGS`` imports, in import order."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *args], capture_output=True, text=True, cwd=ROOT, env=env, check=True
    )
    lines = [line.split("|") for line in done.stderr.splitlines() if line.startswith("import time:")]
    return [parts[-1].strip() for parts in lines[1:]]  # the first line is the header


@pytest.mark.fast
@pytest.mark.parametrize(
    "args", [("-c", "import pipeline.cli.main"), ("-m", "pipeline", "--help"), ("-m", "pipeline", "train", "--help")]
)
def test_the_command_line_loads_no_heavy_library(args: tuple[str, ...]) -> None:
    modules = _imported_modules(*args)
    assert "pipeline.cli.main" in modules  # the listing is read right
    heavy = [m for m in modules if m.split(".")[0] in HEAVY]
    assert not heavy, f"`python {' '.join(args)}` imports {heavy[:5]}; import them through pipeline.cli.lazy.lazy"


@pytest.mark.fast
def test_a_lazy_module_imports_at_the_first_attribute_access(monkeypatch) -> None:
    monkeypatch.delitem(sys.modules, "colorsys", raising=False)
    colorsys = lazy("colorsys")
    assert isinstance(colorsys, LazyModule) and "colorsys" not in sys.modules
    assert colorsys.rgb_to_hsv(1.0, 0.0, 0.0) == (0.0, 1.0, 1.0)
    assert "colorsys" in sys.modules
    monkeypatch.setattr(sys.modules["colorsys"], "rgb_to_hsv", lambda *rgb: "patched")
    assert colorsys.rgb_to_hsv(1.0, 0.0, 0.0) == "patched"  # every access goes through sys.modules
