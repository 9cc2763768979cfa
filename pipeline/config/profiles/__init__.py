"""Profiles as data: ``common.yaml`` plus ``smoke.yaml`` or ``paper.yaml``, shipped in the package.

A profile is the full set of default parameters; ``params.yaml`` names one (``profile: smoke``)
and holds only what the user changes. The YAML files beside this module are the one place
where these defaults are written (the pydantic models of :mod:`pipeline.config.params` give the same
keys no default). ``musicrep params --init PROFILE`` prints a merged profile.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

from pipeline.core.choices import PROFILES
from pipeline.core.io_utils import deep_merge
from pipeline.core.lazy import lazy

yaml = lazy("yaml")  # at first use, so that the model zoo (which needs only PROFILES) imports without PyYAML (benchmarks/gpu.py)


@cache
def _load(name: str) -> dict[str, Any]:
    text = resources.files(__name__).joinpath(f"{name}.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text) or {}
    if not isinstance(data, dict):
        raise TypeError(f"profile file {name}.yaml must hold a mapping")
    return data


def profile_defaults(profile: str) -> dict[str, Any]:
    """Full default params of ``profile``: ``common.yaml`` with ``<profile>.yaml`` merged on top.

    Args:
        profile: ``"smoke"`` or ``"paper"``.

    Returns:
        A new nested dict (safe to modify).

    Raises:
        ValueError: ``profile`` is not one of :data:`PROFILES`.
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; allowed: {', '.join(PROFILES)}")
    return deep_merge(_load("common"), _load(profile))
