"""Learning-rate schedules: shape, bounds, and that training applies them (resume-safe, stateless)."""

from __future__ import annotations

import math

import pytest

from pipeline.config.params import load_params
from pipeline.core.errors import UserError
from pipeline.training.schedules import lr_at, paper_phase
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


def test_paper_phases_switch_where_the_spec_says() -> None:
    """docs/spec.md §4: SGD from 40 %, 50 % and 60 % of the epochs (80, 100, 120 of 200)."""
    starts = load_params(REPO / "params.yaml", overrides={"profile": "paper"}).train.paper_schedule.phase_starts
    phases = [paper_phase(e, 200, starts) for e in range(200)]
    assert [phases.index(k) for k in (1, 2, 3)] == [80, 100, 120] and phases[0] == 0 and phases[-1] == 3
    assert [paper_phase(e, 8, starts) for e in range(8)] == [0, 0, 0, 0, 2, 3, 3, 3]  # 4/8 = 0.5 skips phase 1


def test_paper_optimizer_takes_its_rates_from_the_params() -> None:
    import torch

    from pipeline.training.train import make_optimizer

    train = load_params(REPO / "params.yaml", overrides={"profile": "paper"}).train
    model = torch.nn.Linear(2, 1)
    assert isinstance(make_optimizer(model, train, 0), torch.optim.Adam)
    rates = [make_optimizer(model, train, k).param_groups[0]["lr"] for k in (0, 1, 2, 3)]
    assert rates == [train.lr, *train.paper_schedule.sgd_lrs] == [1e-4, 1e-3, 1e-4, 1e-5]


@pytest.mark.parametrize(
    ("schedule", "needle"),
    [
        ({"phase_starts": [0.4, 0.5], "sgd_lrs": [1e-3]}, "one rate per phase"),
        ({"phase_starts": [0.5, 0.4], "sgd_lrs": [1e-3, 1e-4]}, "strictly increasing"),
        ({"phase_starts": [0.4], "sgd_lrs": [2.0]}, "sgd_lrs"),
    ],
)
def test_a_bad_paper_schedule_is_one_clear_error(schedule, needle) -> None:
    with pytest.raises(UserError, match=needle):
        load_params(REPO / "params.yaml", overrides={"train": {"paper_schedule": schedule}})


def test_training_sets_the_scheduled_rate(tiny_params, tmp_path) -> None:
    """One real epoch with cosine: the optimizer's last rate is the schedule's last step."""
    import torch

    from pipeline.core.paths import Layout
    from pipeline.orchestration import stages

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
