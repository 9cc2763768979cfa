"""Mirrors as users have them (issue 27, deliverable 7): a mirror folder may keep the publisher's sub-folders."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from pipeline.core.paths import Layout
from pipeline.data.download import publisher_paths
from pipeline.data.miniature import dcase_metadata
from pipeline.data.registry import get_source
from pipeline.data.sources import dcase2017_task4
from tests.conftest_data import params


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
