"""Everything a cell reads is a DVC dependency (issue 27, deliverable 5): noise bank, user audio, init."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config.params import load_params
from pipeline.core.paths import Layout
from pipeline.data.user_audio import write_audio_manifest
from pipeline.orchestration.dag import dvc_stages
from tests.conftest import REPO


def _stages(**overrides) -> dict:
    """dvc.yaml's stages for the paper profile alone (its grid, noise source and datasets) plus ``overrides``."""
    return dvc_stages(load_params(REPO / "pipeline/config/profiles/paper.yaml", overrides=overrides))


def _cells(stages: dict) -> list[dict]:
    return [stage for name, stage in stages.items() if name.startswith("cell-")]


@pytest.mark.fast
def test_paper_cells_depend_on_the_speech_commands_noise() -> None:
    cells = _cells(_stages())
    assert len(cells) == 11 and all("data/raw/speech_commands" in c["deps"] for c in cells)


@pytest.mark.fast
@pytest.mark.parametrize(
    "robustness,expected",
    [
        ({"noise_source": "synthetic"}, None),
        ({"noise_source": "noises/cafe"}, "noises/cafe"),
        ({"noise_source": "noises/cafe", "enabled": False}, None),
        ({"noise_source": "noises/cafe", "grid": {"background_noise": []}}, None),  # no level reads the noise
    ],
)
def test_the_noise_dependency_follows_the_source(robustness: dict, expected: str | None) -> None:
    deps = _cells(_stages(grid={"models": ["fcn"]}, robustness=robustness))[0]["deps"]
    assert "data/raw/speech_commands" not in deps
    assert (expected in deps) if expected else "noises/cafe" not in deps


@pytest.mark.fast
def test_a_user_audio_folder_is_tracked_by_its_content_manifest() -> None:
    plain = _stages(grid={"models": ["fcn"]})
    assert "audio-manifest" not in plain and "data/manifests/${item.dataset}.tsv" not in plain["segment"]["deps"]
    stages = _stages(grid={"models": ["fcn"]}, datasets={"dcase2017_task4": {"audio_dir": "/srv/dcase/audio"}})
    manifest = stages["audio-manifest"]
    assert manifest["always_changed"] and manifest["cmd"] == "musicrep download ${item.dataset} --manifest"
    assert "data/manifests/${item.dataset}.tsv" in stages["segment"]["deps"]


@pytest.mark.fast
def test_the_manifest_changes_with_the_folder_content_only(tmp_path: Path) -> None:
    audio = tmp_path / "clips"
    audio.mkdir()
    (audio / "Yabc_0.000_10.000.wav").write_bytes(b"one")
    (audio / "notes.txt").write_text("not audio")
    params = load_params(REPO / "params.yaml", overrides={"datasets": {"dcase2017_task4": {"audio_dir": str(audio)}}})
    layout = Layout(tmp_path / "proj")
    out = write_audio_manifest("dcase2017_task4", params, layout)
    first = out.read_text()
    assert "Yabc_0.000_10.000.wav\t3\t" in first and "notes.txt" not in first
    stamp = out.stat().st_mtime_ns
    write_audio_manifest("dcase2017_task4", params, layout)
    assert out.stat().st_mtime_ns == stamp  # unchanged folder: the file is left alone, DVC sees no change
    (audio / "Yabc_0.000_10.000.wav").write_bytes(b"two")
    assert write_audio_manifest("dcase2017_task4", params, layout).read_text() != first
    assert "no user-supplied audio folder" in write_audio_manifest("mtat", params, layout).read_text()


@pytest.mark.fast
def test_a_cell_without_its_noise_bank_stops_before_training(tmp_path: Path) -> None:
    from pipeline.core.errors import UserError
    from pipeline.orchestration.stages import cell

    params = load_params(REPO / "params.yaml", overrides={"robustness": {"noise_source": "speech_commands"}})
    with pytest.raises(UserError, match="no Speech Commands background noises"):
        cell("synth_tags", "fcn", params, Layout(tmp_path))  # no data at all: the noise check comes first
    assert not (tmp_path / "models").exists()
