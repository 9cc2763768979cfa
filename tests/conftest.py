"""Test isolation: a temporary MLflow store, Prefect home and DVC settings per session.

Nothing a test does touches the developer's ``mlflow.db``, ``~/.prefect`` or the network.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def pytest_configure(config: pytest.Config) -> None:
    base = Path(os.environ.get("MUSICREP_TEST_TMP") or __import__("tempfile").mkdtemp(prefix="musicrep-tests-"))
    base.mkdir(parents=True, exist_ok=True)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{base / 'mlflow.db'}"
    os.environ["MUSICREP_ARTIFACT_ROOT"] = (base / "mlartifacts").as_uri()
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    os.environ["DO_NOT_TRACK"] = "true"
    os.environ["PREFECT_HOME"] = str(base / "prefect")
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"
    os.environ["PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW"] = "ignore"
    os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "120"
    os.environ["DVC_NO_ANALYTICS"] = "1"
    os.environ["MUSICREP_TEST_BASE"] = str(base)
    bin_dir = str(Path(sys.executable).parent)
    if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")


@contextmanager
def kept_root_logging() -> Iterator[None]:
    """Put the root logger's handlers and level back as they were on leaving."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


@pytest.fixture(autouse=True)
def _restore_root_logging():
    """The CLI callback reconfigures root logging; put its handlers and level back after each test."""
    with kept_root_logging():
        yield


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def fsdd_dir() -> Path:
    path = SHARED / "data" / "fsdd"
    if not (path / "recordings").is_dir():
        pytest.skip(f"no FSDD mirror (recordings/*.wav) at {path}")
    return path


def full_repo_params() -> dict:
    """The repo's ``params.yaml`` with its profile's defaults filled in: every section present.

    ``params.yaml`` holds only what the project changes; tests that edit a section of a copy
    start from this (written out, it resolves to the same parameters as the repo's file).
    """
    import yaml

    from pipeline.config.profiles import profile_defaults
    from pipeline.core.io_utils import deep_merge

    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    return deep_merge(profile_defaults(raw.get("profile", "smoke")), raw)


def tiny_overrides(models: list[str] | None = None, tasks: list[str] | None = None, n_clips: int = 48, epochs: int = 1) -> dict:
    """Params overrides for a pipeline that runs in seconds."""
    return {
        "grid": {"tasks": tasks or ["synth_tags", "synth_keywords", "synth_events"], "models": models or ["fcn", "samplecnn"]},
        "datasets": {
            "synth_tags": {"n_clips": n_clips, "clip_seconds": 2.0},
            "synth_keywords": {"n_clips": n_clips, "clip_seconds": 1.0},
            "synth_events": {"n_clips": n_clips, "clip_seconds": 2.0},
            "corpus_tags": {"n_clips": n_clips, "clip_seconds": 2.0, "n_pieces": 10},
        },
        "train": {"epochs": epochs, "batch_size": 8, "width": 0.125, "steps_per_epoch": 3},
        "evaluate": {"n_chunks": 2},
        "runtime": {"eval_batch_size": 16},
        "robustness": {"grid": {"white_noise": [10.0], "background_noise": [0.0]}, "max_clips": 8},
    }


@pytest.fixture()
def tiny_params():
    from pipeline.config.params import load_params

    def make(**kw):
        return load_params(REPO / "params.yaml", overrides=tiny_overrides(**kw))

    return make
