"""The run-time settings of a stage, resolved in one place (pipeline/models/runtime.py)."""

from __future__ import annotations

import pytest
import torch

from pipeline.config.params import load_params
from pipeline.core.errors import UserError
from pipeline.models.runtime import Runtime, resolve_runtime
from tests.conftest import REPO


@pytest.mark.fast
def test_the_runtime_of_params_names_device_bf16_and_threads(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    params = load_params(
        REPO / "params.yaml", overrides={"runtime": {"device": "cpu", "num_threads": 3}, "train": {"bf16": "on"}}
    )
    runtime = resolve_runtime(params)
    assert runtime == Runtime(torch.device("cpu"), "on", 3)
    assert runtime.bf16_for("fcn") is True and Runtime(torch.device("cpu"), "off").bf16_for("fcn") is False
    before = torch.get_num_threads()
    try:
        runtime.apply_threads()
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)
    with pytest.raises(UserError, match="runtime.device is cuda"):
        resolve_runtime(load_params(REPO / "params.yaml", overrides={"runtime": {"device": "cuda"}}))
