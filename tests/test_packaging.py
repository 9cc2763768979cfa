"""Packaging: one version source, the package list matches the folders, no side effects at import."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def _packages_on_disk() -> set[str]:
    found = set()
    for top, name in ((REPO / "pipeline", "pipeline"), (REPO / "flows", "pipeline.flows")):
        for init in top.rglob("__init__.py"):
            rel = init.parent.relative_to(top).parts
            if "__pycache__" not in rel:
                found.add(".".join((name, *rel)))
    return found


def test_setuptools_package_list_matches_the_folders() -> None:
    tool = PYPROJECT["tool"]["setuptools"]
    assert set(tool["packages"]) == _packages_on_disk(), "update [tool.setuptools] packages in pyproject.toml"
    assert tool["package-dir"] == {"pipeline.flows": "flows"}
    assert all(p == "pipeline" or p.startswith("pipeline.") for p in tool["packages"])  # one top-level name


def test_one_version_source_and_ranges_not_pins() -> None:
    project = PYPROJECT["project"]
    assert "version" not in project and project["dynamic"] == ["version"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "pipeline.__version__"}
    pinned = [d for d in project["dependencies"] + project["optional-dependencies"]["test"] if "==" in d]
    assert not pinned, f"exact pins belong in requirements.lock: {pinned}"
    deps = {d.split(">")[0].split("<")[0].split("=")[0].strip(): d for d in project["dependencies"]}
    torch_range, audio_range = deps["torch"].removeprefix("torch"), deps["torchaudio"].removeprefix("torchaudio")
    assert torch_range == audio_range, "torch and torchaudio must be the same release (docs/spec.md §10.1)"


def test_importing_the_package_changes_no_environment_and_no_root_logger() -> None:
    code = """
import json, logging, os
before = dict(os.environ)
import pipeline.cli.main, pipeline.tracking.runs, pipeline.tracking.registry
after = dict(os.environ)
changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
print(json.dumps({"changed": changed, "root_handlers": len(logging.getLogger().handlers)}))
"""
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith(("MLFLOW_", "DO_NOT_TRACK"))}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"changed": [], "root_handlers": 0}


def test_importing_the_flows_changes_no_environment() -> None:
    code = """
import json, os
before = dict(os.environ)
import pipeline.flows.pipeline_flow, pipeline.flows.serve, pipeline.flows.server
after = dict(os.environ)
print(json.dumps(sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))))
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=180, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_cli_logging_configures_its_own_loggers_only() -> None:
    import logging

    from pipeline.cli import main as cli

    root_before = (logging.getLogger().level, list(logging.getLogger().handlers))
    cli._configure_logging(verbose=False)
    cli._configure_logging(verbose=True)  # replaces, never stacks
    try:
        assert (logging.getLogger().level, list(logging.getLogger().handlers)) == root_before
        for name in ("pipeline", "musicrep"):
            logger = logging.getLogger(name)
            assert len([h for h in logger.handlers if getattr(h, "_musicrep", False)]) == 1
            assert logger.level == logging.DEBUG and logger.propagate
    finally:
        for name in ("pipeline", "musicrep"):
            logger = logging.getLogger(name)
            for h in [h for h in logger.handlers if getattr(h, "_musicrep", False)]:
                logger.removeHandler(h)
            logger.setLevel(logging.NOTSET)
