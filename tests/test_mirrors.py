"""Mirrors as users have them (issue 27, deliverable 7): a mirror folder may keep the publisher's sub-folders;
an extracted Speech Commands folder stands in for its tarball after its file manifest is checked."""

from __future__ import annotations

import io
import json
import tarfile
from dataclasses import replace
from pathlib import Path

import pytest

from pipeline.core.errors import UserError
from pipeline.core.paths import Layout
from pipeline.data.download import publisher_paths
from pipeline.data.miniature import dcase_metadata, speech_commands_archive
from pipeline.data.registry import get_source
from pipeline.data.sources import dcase2017_task4, speech_commands
from tests.conftest_data import closed_port, params


@pytest.mark.fast
def test_publisher_paths_follow_the_url() -> None:
    paths = publisher_paths(dcase2017_task4.WEAK_EVAL)
    assert paths[:2] == [
        "groundtruth_weak_label_evaluation_set.csv",
        "groundtruth_release/groundtruth_weak_label_evaluation_set.csv",
    ]
    assert publisher_paths(dcase2017_task4.WEAK_TRAIN)[0] == "groundtruth_weak_label_training_set.csv"


@pytest.mark.fast
def test_dcase_mirror_laid_out_like_the_publisher(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dcase2017_task4, "FILES", [replace(f, md5=None, size=None) for f in dcase2017_task4.FILES])
    mirror = tmp_path / "Task-4-clone"
    files, _ = dcase_metadata()
    for name, blob in files.items():
        sub = "groundtruth_release/" if "evaluation" in name else ""  # as in the publisher's repository
        (mirror / sub).mkdir(parents=True, exist_ok=True)
        (mirror / sub / name).write_bytes(blob)
    p = params({"datasets": {"dcase2017_task4": {"mirror": str(mirror)}}})
    layout = Layout(tmp_path / "proj")
    get_source("dcase2017_task4", p).fetch(layout.raw("dcase2017_task4"), p)
    assert (layout.raw("dcase2017_task4") / "groundtruth_weak_label_evaluation_set.csv").read_bytes() == files[
        "groundtruth_weak_label_evaluation_set.csv"
    ]


def _extracted_speech_commands(folder: Path) -> dict:
    """The miniature publisher tarball extracted into ``folder``, as a user would have it."""
    blob, info = speech_commands_archive()
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        tar.extractall(folder, filter="data")
    return info


@pytest.mark.fast
def test_speech_commands_extracted_folder_checked_then_linked(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    mirror = tmp_path / "sc_extracted"
    info = _extracted_speech_commands(mirror)
    p = params({"datasets": {"speech_commands": {"mirror": str(mirror)}}})
    layout = Layout(tmp_path / "proj")
    raw = layout.raw("speech_commands")
    source = get_source("speech_commands", p)
    with pytest.raises(UserError, match=r"lacks 1 of the publisher's files \(no/0badbad0_nohash_0\.wav\); extract") as err:
        source.fetch(raw, p)  # the miniature lists a file its tarball lacks: the manifest check names it
    assert str(err.value).count(". ") == 0 and "tar -xzf speech_commands_v0.02.tar.gz" in str(err.value)
    (mirror / "no" / "0badbad0_nohash_0.wav").write_bytes((mirror / info["files"][0]).read_bytes())
    source.fetch(raw, p)
    linked = raw / speech_commands.EXTRACTED / info["files"][0]
    assert linked.stat().st_ino == (mirror / info["files"][0]).stat().st_ino  # hard-linked, not copied
    assert [f.name for f in speech_commands.background_noise_files(raw)] == ["white_noise.wav"]
    catalog = source.catalog(raw, p)
    split = dict(zip(catalog.clips["clip_id"], catalog.clips["split"]))
    assert [split[f.removesuffix(".wav")] for f in info["val"] + info["test"]] == ["val", "val", "test", "test", "test"]
    with caplog.at_level("INFO", logger=speech_commands.__name__):
        source.fetch(raw, p)
    assert "already fetched from the extracted copy" in caplog.text


@pytest.mark.fast
def test_speech_commands_folder_placed_by_hand_needs_no_network(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "proj")
    raw = layout.raw("speech_commands")
    info = _extracted_speech_commands(raw / speech_commands.EXTRACTED)
    (raw / speech_commands.EXTRACTED / "testing_list.txt").write_text("\n".join(info["test"][:2]) + "\n")
    p = params({"datasets": {"speech_commands": {"mirror": f"http://127.0.0.1:{closed_port()}"}}})
    get_source("speech_commands", p).fetch(raw, p)
    assert json.loads((raw / "COMPLETE.json").read_text())["n_clips"] == 21  # 18 words + 3 unusable, no tarball fetched
    (raw / speech_commands.EXTRACTED / "validation_list.txt").unlink()
    with pytest.raises(UserError, match=r"lacks 1 of the publisher's files \(validation_list\.txt\)"):
        get_source("speech_commands", p).fetch(raw, p)
