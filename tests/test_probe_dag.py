"""The ``probes:`` section of params generates DVC stages whose deps make only the right probes stale."""

from __future__ import annotations

import pytest

from pipeline.config.params import load_params
from pipeline.orchestration.dag import dvc_stages, probe_stage_name
from tests.conftest import REPO


def _params(probes):
    return load_params(REPO / "params.yaml", overrides={"probes": probes})


def test_the_profiles_probe_nothing() -> None:
    assert _params([]).probes == [] and not any(name.startswith("probe-") for name in dvc_stages(_params([])))


def test_probe_stages_depend_on_their_model_package_code_and_segments() -> None:
    params = _params(
        [
            {"model": "synth_keywords/fcn", "datasets": ["synth_tags", "synth_events"], "seeds": [0, 1, 2]},
            {"model": "synth_tags/musicnn", "datasets": ["synth_keywords"], "random_init": False},
        ]
    )
    stages = dvc_stages(params)
    fcn, fcn_random, musicnn = (
        stages[probe_stage_name(*k)]
        for k in (("synth_keywords/fcn", False), ("synth_keywords/fcn", True), ("synth_tags/musicnn", False))
    )
    assert probe_stage_name("synth_tags/musicnn", True) not in stages
    assert fcn["matrix"] == {"dataset": ["synth_tags", "synth_events"], "seed": [0, 1, 2]}
    assert fcn["cmd"] == "musicrep probe ${item.dataset} --model models/synth_keywords/fcn/seed0 --seed ${item.seed}"
    assert fcn_random["cmd"].endswith("--random-init")
    assert "models/synth_keywords/fcn/seed0" in fcn["deps"] and "data/segments/${item.dataset}" in fcn["deps"]
    assert fcn["outs"] == ["metrics/probes/${item.dataset}/synth_keywords__fcn/seed${item.seed}/scores.npz"]
    assert fcn_random["outs"] == ["metrics/probes/${item.dataset}/synth_keywords__fcn__random-init/seed${item.seed}/scores.npz"]

    # which probe stages a changed file makes stale (what `dvc status` reports for a changed dep)
    def stale(path: str) -> set[str]:
        return {name for name, stage in stages.items() if name.startswith("probe-") and path in stage["deps"]}

    assert stale("pipeline/models/backends/fcn.py") == {"probe-synth_keywords_fcn", "probe-synth_keywords_fcn-random"}
    assert stale("pipeline/models/backends/musicnn.py") == {"probe-synth_tags_musicnn"}
    assert stale("pipeline/evaluation/probe.py") == {
        "probe-synth_keywords_fcn",
        "probe-synth_keywords_fcn-random",
        "probe-synth_tags_musicnn",
    }
    assert list(stages)[-1] == "report"


@pytest.mark.parametrize("bad", [{"model": "fcn", "datasets": ["synth_tags"]}, {"model": "synth_keywords/fcn", "datasets": []}])
def test_a_bad_probe_entry_is_refused(bad) -> None:
    from pipeline.core.errors import UserError

    with pytest.raises((UserError, ValueError)):
        _params([bad])
