"""Learning-rate schedules: shape, bounds, and that training applies them (resume-safe, stateless)."""

from __future__ import annotations

import math

import pytest

from pipeline.config import load_params
from pipeline.errors import UserError
from pipeline.schedules import lr_at
from tests.conftest import REPO


@pytest.mark.fast
def test_constant_is_the_base_rate() -> None:
    assert {lr_at("constant", 0.01, k, 100) for k in range(100)} == {0.01}


@pytest.mark.fast
def test_cosine_warms_up_peaks_and_decays_to_near_zero() -> None:
    rates = [lr_at("cosine", 0.002, k, 200) for k in range(200)]
    peak = rates.index(max(rates))
    assert 0 < peak <= 10  # warm-up: 5 % of the steps
    assert all(a < b for a, b in zip(rates[:peak], rates[1 : peak + 1]))  # rises
    assert all(a >= b for a, b in zip(rates[peak:], rates[peak + 1 :]))  # then never rises
    assert math.isclose(max(rates), 0.002) and 0 < rates[-1] <= 0.002 * 1e-2
    assert rates[100] == pytest.approx(0.002 * 0.5 * (1 + math.cos(math.pi * 91 / 190)), rel=1e-9)


@pytest.mark.fast
def test_cosine_is_a_function_of_the_step_alone() -> None:
    """Resuming at step k gives the rate an uninterrupted run had at step k (no schedule state)."""
    assert lr_at("cosine", 1e-3, 57, 120) == lr_at("cosine", 1e-3, 57, 120)


@pytest.mark.fast
def test_unknown_schedule_is_refused() -> None:
    with pytest.raises(ValueError, match="cosine"):
        lr_at("step", 1e-3, 1, 10)


@pytest.mark.fast
def test_paper_optimizer_keeps_its_own_schedule() -> None:
    with pytest.raises(UserError, match="lr_schedule"):
        load_params(REPO / "params.yaml", overrides={"train": {"optimizer": "paper", "lr_schedule": "cosine"}})


def test_training_sets_the_scheduled_rate(tiny_params, tmp_path) -> None:
    """One real epoch with cosine: the optimizer's last rate is the schedule's last step."""
    import torch

    from pipeline import stages
    from pipeline.paths import Layout

    seen: list[float] = []
    original = torch.optim.Adam.step

    def spy(self, *a, **k):
        seen.append(self.param_groups[0]["lr"])
        return original(self, *a, **k)

    p = tiny_params(models=["fcn"], tasks=["synth_keywords"], epochs=2)
    p.train.lr_schedule = "cosine"
    layout = Layout(tmp_path)
    for name in ("download", "segment", "features"):
        stages.STAGES[name]("synth_keywords", p, layout)
    torch.optim.Adam.step = spy
    try:
        stages.train("synth_keywords", "fcn", p, layout)
    finally:
        torch.optim.Adam.step = original
    total = len(seen)
    assert total >= 4
    assert seen == pytest.approx([lr_at("cosine", p.train.lr, k, total) for k in range(total)])
