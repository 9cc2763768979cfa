"""Own datasets (issue 14, items 1-4 and 8): named datasets, the user's split, task type, no
silent loss of audio, legible ``compare`` tables.

Real recordings: a subset of the Free Spoken Digit Dataset (the ``fsdd_dir`` mirror of conftest.py,
``recordings/<digit>_<speaker>_<take>.wav``, 6 speakers), listed in CSVs built in ``tmp_path``.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import yaml

from pipeline.config.params import load_params
from pipeline.core.errors import UserError
from pipeline.core.paths import Layout
from pipeline.data.registry import get_source
from pipeline.data.segment import segment_dataset
from tests.conftest import full_repo_params

REPO = Path(__file__).resolve().parents[1]
SPEAKER_REGEX = r"_([a-z]+)_\d+\.wav$"  # 0_george_12.wav -> george


def params(datasets: dict, **extra) -> object:
    return load_params(REPO / "params.yaml", overrides={"datasets": datasets, **extra})


def fsdd_files(fsdd_dir: Path, takes: int = 2) -> list[Path]:
    """``takes`` recordings per (digit, speaker): 120 files for 2 takes."""
    return sorted(p for p in (fsdd_dir / "recordings").glob("*.wav") if int(p.stem.split("_")[2]) < takes)


def speaker(clip_id: str) -> str:
    return Path(clip_id.split("#")[0]).stem.split("_")[1]


def write_csv(path: Path, rows: list[dict]) -> Path:
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def segmented(name: str, p, layout: Layout) -> tuple[pd.DataFrame, dict, dict]:
    get_source(name, p).fetch(layout.raw(name), p)
    out = segment_dataset(name, p, layout)
    return (
        pd.read_parquet(out / "manifest.parquet"),
        json.loads((out / "meta.json").read_text()),
        json.loads((out / "report.json").read_text()),
    )


# ============================================================================ item 2: the user's split
def test_fsdd_speaker_split_by_group_regex(tmp_path: Path, fsdd_dir: Path, caplog) -> None:
    files = fsdd_files(fsdd_dir)
    csv_path = write_csv(
        tmp_path / "labels.csv", [{"path": f"recordings/{f.name}", "labels": f.stem.split("_")[0]} for f in files]
    )
    p = params(
        {
            "fsdd_speakers": {
                "kind": "folder",
                "path": str(fsdd_dir),
                "labels_csv": str(csv_path),
                "clip_seconds": 1.0,
                "group_regex": SPEAKER_REGEX,
            }
        }
    )
    layout = Layout(tmp_path / "proj")
    manifest, meta, report = segmented("fsdd_speakers", p, layout)
    splits_of = manifest.assign(speaker=manifest["clip_id"].map(speaker)).groupby("speaker")["split"].nunique()
    assert len(splits_of) == 6 and (splits_of == 1).all(), splits_of  # zero speakers cross splits
    assert set(manifest["split"]) == {"train", "val", "test"}  # 6 speakers: every split non-empty
    assert report["split"]["groups_crossing_splits"] == 0 and meta["split"]["n_groups"] == 6
    assert "group_regex" in report["split"]["split_method"]
    assert meta["kind"] == "single" and meta["task"] == "keywords" and meta["labels"] == [str(d) for d in range(10)]
    assert meta["coverage"]["seconds_fraction"] == pytest.approx(1.0)

    # the same data without a rule: speakers cross splits, and one warning names group_regex
    p2 = params({"fsdd_speakers": {"kind": "folder", "path": str(fsdd_dir), "labels_csv": str(csv_path), "clip_seconds": 1.0}})
    with caplog.at_level(logging.WARNING, logger="pipeline.data.sources.folder"):
        catalog = get_source("fsdd_speakers", p2).catalog(layout.raw("fsdd_speakers"), p2)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and "group_regex" in r.getMessage()]
    assert len(warnings) == 1 and "speaker/source id" in warnings[0], warnings
    assert catalog.info["suspected_group"]["n_ids"] == 6 and catalog.info["suspected_group"]["crossing_splits"] > 0
    assert catalog.info["groups_crossing_splits"] is None and catalog.info["split_method"].startswith("hash of the relative path")
    # the suggested regex does group by speaker
    p3 = params(
        {
            "fsdd_speakers": {
                "kind": "folder",
                "path": str(fsdd_dir),
                "labels_csv": str(csv_path),
                "clip_seconds": 1.0,
                "group_regex": catalog.info["suspected_group"]["group_regex"],
            }
        }
    )
    again = get_source("fsdd_speakers", p3).catalog(layout.raw("fsdd_speakers"), p3).clips
    assert (again.assign(s=again["clip_id"].map(speaker)).groupby("s")["split"].nunique() == 1).all()


def test_speaker_id_heuristic() -> None:
    from pipeline.data.sources.folder import Entry, suspected_group

    def entries(names: list[tuple[str, str]]) -> list:
        return [Entry(Path("/x") / n, n, [label]) for n, label in names]

    speech_commands = [(f"{w}/{spk:08x}_nohash_{i}.wav", w) for w in ("yes", "no", "up") for spk in range(5) for i in range(2)]
    found = suspected_group(entries(speech_commands))
    assert found is not None and found["position"] == 0 and found["n_ids"] == 5
    import re

    assert re.search(found["group_regex"], "yes/00000003_nohash_1.wav").group(1) == "00000003"
    assert (
        suspected_group(entries([(f"{c}/{c}_{i:03d}.wav", c) for c in ("dog", "cat") for i in range(10)])) is None
    )  # label prefix
    assert suspected_group(entries([(f"a/track{i:02d}.wav", "a") for i in range(20)])) is None
    esc50 = [
        (f"{fold}-{clip}-{take}-{cls}.wav", str(cls))
        for fold in range(1, 3)
        for clip in range(100, 106)
        for take in "AB"
        for cls in (clip % 3,)
    ]
    assert suspected_group(entries(esc50))["example_id"] == "100"  # the source clip id, not the fold


def test_group_column_and_folder_per_class_groups(tmp_path: Path, fsdd_dir: Path) -> None:
    files = fsdd_files(fsdd_dir)
    rows = [{"path": str(f), "labels": f.stem.split("_")[0], "speaker": f.stem.split("_")[1]} for f in files]  # absolute paths
    csv_path = write_csv(tmp_path / "labels.csv", rows)
    p = params({"words": {"kind": "folder", "path": str(fsdd_dir), "labels_csv": str(csv_path), "group_column": "speaker"}})
    clips = get_source("words", p).catalog(tmp_path / "raw", p).clips
    assert (clips.assign(s=clips["clip_id"].map(speaker)).groupby("s")["split"].nunique() == 1).all()
    assert set(clips["split"]) == {"train", "val", "test"}
    # folder per class: the group regex runs over the path relative to the root, class folder included
    root = tmp_path / "by_class"
    for f in files:
        (root / f"digit_{f.stem[0]}").mkdir(parents=True, exist_ok=True)
        shutil.copy(f, root / f"digit_{f.stem[0]}" / f.name)
    p2 = params({"classes": {"kind": "folder", "path": str(root), "group_regex": SPEAKER_REGEX}})
    source = get_source("classes", p2)
    catalog = source.catalog(tmp_path / "raw2", p2)
    assert source.kind == "single" and catalog.kind == "single"
    by_speaker = catalog.clips.assign(s=catalog.clips["clip_id"].map(speaker)).groupby("s")["split"].nunique()
    assert len(by_speaker) == 6 and (by_speaker == 1).all() and catalog.info["groups_crossing_splits"] == 0


def test_split_column_is_honoured_clip_for_clip(tmp_path: Path, fsdd_dir: Path) -> None:
    files = fsdd_files(fsdd_dir)
    given = {"jackson": "Test", "nicolas": "valid", "theo": "VAL"}  # case-insensitive; valid = val
    rows = [
        {"path": f"recordings/{f.name}", "labels": f.stem.split("_")[0], "split": given.get(f.stem.split("_")[1], "train")}
        for f in files
    ]
    csv_path = write_csv(tmp_path / "labels.csv", rows)
    p = params({"words": {"kind": "folder", "path": str(fsdd_dir), "labels_csv": str(csv_path), "clip_seconds": 1.0}})
    layout = Layout(tmp_path / "proj")
    manifest, meta, report = segmented("words", p, layout)
    expected = {
        f"recordings/{f.name}": {"test": "test", "valid": "val", "val": "val"}.get(
            given.get(f.stem.split("_")[1], "train").lower(), "train"
        )
        for f in files
    }
    got = {cid.split("#")[0]: s for cid, s in zip(manifest["clip_id"], manifest["split"])}
    assert got == expected  # every clip, including the extra clips of files longer than 1 s
    assert meta["split"]["split_method"] == "column 'split'" and report["split"]["split_method"] == "column 'split'"
    # with a group rule, the report counts the groups the given split puts in several splits
    mixed = [{**r, "split": "test" if r["path"].endswith("_george_0.wav") else r["split"]} for r in rows]
    p_mixed = params(
        {
            "words": {
                "kind": "folder",
                "path": str(fsdd_dir),
                "labels_csv": str(write_csv(tmp_path / "mixed.csv", mixed)),
                "group_regex": SPEAKER_REGEX,
            }
        }
    )
    info = get_source("words", p_mixed).catalog(layout.raw("words"), p_mixed).info
    assert info["groups_crossing_splits"] == 1 and info["split_method"] == "column 'split'"  # george: train and test
    # a bad value names the line and the allowed values
    bad = write_csv(tmp_path / "bad.csv", [*rows[:3], {"path": rows[3]["path"], "labels": "0", "split": "holdout"}])
    p_bad = params({"words": {"kind": "folder", "path": str(fsdd_dir), "labels_csv": str(bad)}})
    with pytest.raises(UserError, match=r"line 5 has split='holdout'; use train, val \(or valid\) or test"):
        get_source("words", p_bad).catalog(layout.raw("words"), p_bad)


def test_fold_column_with_splits(tmp_path: Path, fsdd_dir: Path) -> None:
    files = fsdd_files(fsdd_dir)
    speakers = sorted({f.stem.split("_")[1] for f in files})
    rows = [
        {"path": f"recordings/{f.name}", "labels": f.stem.split("_")[0], "fold": speakers.index(f.stem.split("_")[1]) + 1}
        for f in files
    ]
    csv_path = write_csv(tmp_path / "labels.csv", rows)
    p = params(
        {
            "words": {
                "kind": "folder",
                "path": str(fsdd_dir),
                "labels_csv": str(csv_path),
                "splits": {"train": [1, 2, 3], "val": [5], "test": ["4"]},
            }
        }
    )  # fold 6 is left out
    catalog = get_source("words", p).catalog(tmp_path / "raw", p)
    fold_of = {r["path"]: r["fold"] for r in rows}
    want = {1: "train", 2: "train", 3: "train", 4: "test", 5: "val"}
    assert {cid: want[fold_of[cid.split("#")[0]]] for cid in catalog.clips["clip_id"]} == dict(
        zip(catalog.clips["clip_id"], catalog.clips["split"])
    )
    assert catalog.info["left_out_files"] == sum(1 for r in rows if r["fold"] == 6)
    assert not catalog.clips["clip_id"].map(speaker).eq(speakers[5]).any()
    with pytest.raises(UserError, match="listed under both"):
        p2 = params(
            {
                "words": {
                    "kind": "folder",
                    "path": str(fsdd_dir),
                    "labels_csv": str(csv_path),
                    "splits": {"train": [1, 2], "test": [2]},
                }
            }
        )
        get_source("words", p2).catalog(tmp_path / "raw", p2)


def test_relative_absolute_and_moved_folder_give_the_same_split(tmp_path: Path, fsdd_dir: Path) -> None:
    files = fsdd_files(fsdd_dir, takes=1)  # 60 files
    data = tmp_path / "place_a"
    (data / "wav").mkdir(parents=True)
    for f in files:
        shutil.copy(f, data / "wav" / f.name)

    def split_of(path: Path, csv_rows: list[dict], csv_name: str) -> dict[str, str]:
        csv_path = write_csv(tmp_path / csv_name, csv_rows)
        p = params({"mine": {"kind": "folder", "path": str(path), "labels_csv": str(csv_path)}})
        clips = get_source("mine", p).catalog(tmp_path / "raw", p).clips
        return dict(zip(clips["clip_id"], clips["split"]))

    relative = split_of(data, [{"path": f"wav/{f.name}", "labels": f.stem[0]} for f in files], "rel.csv")
    absolute = split_of(data, [{"path": str(data / "wav" / f.name), "labels": f.stem[0]} for f in files], "abs.csv")
    dotted = split_of(data, [{"path": str(data / "wav" / ".." / "wav" / f.name), "labels": f.stem[0]} for f in files], "dot.csv")
    assert relative == absolute == dotted and set(relative.values()) == {"train", "val", "test"}
    moved = tmp_path / "elsewhere" / "place_b"
    moved.parent.mkdir()
    shutil.move(str(data), str(moved))
    assert split_of(moved, [{"path": str(moved / "wav" / f.name), "labels": f.stem[0]} for f in files], "moved.csv") == relative
    # folder per class: the same property (relative path under the root)
    by_class = tmp_path / "c1"
    for f in files:
        (by_class / f.stem[0]).mkdir(parents=True, exist_ok=True)
        shutil.copy(f, by_class / f.stem[0] / f.name)

    def class_split(root: Path) -> dict[str, str]:
        p = params({"mine": {"kind": "folder", "path": str(root)}})
        clips = get_source("mine", p).catalog(tmp_path / "raw", p).clips
        return dict(zip(clips["clip_id"], clips["split"]))

    before = class_split(by_class)
    shutil.move(str(by_class), str(tmp_path / "c2"))
    assert class_split(tmp_path / "c2") == before


# ============================================================================ item 1: named datasets
def test_two_own_datasets_coexist_in_one_project_and_in_mlflow(tmp_path: Path, fsdd_dir: Path) -> None:
    files = fsdd_files(fsdd_dir, takes=1)
    words_csv = write_csv(
        tmp_path / "words.csv", [{"path": f"recordings/{f.name}", "labels": f.stem.split("_")[0]} for f in files]
    )
    spk_root = tmp_path / "speakers"  # folder per class: who is speaking
    for f in files:
        (spk_root / f.stem.split("_")[1]).mkdir(parents=True, exist_ok=True)
        shutil.copy(f, spk_root / f.stem.split("_")[1] / f.name)
    proj = tmp_path / "proj"
    proj.mkdir()
    base = full_repo_params()
    base["grid"] = {"tasks": ["own_digits", "own_speakers"], "models": ["fcn"]}
    base["datasets"]["own_digits"] = {
        "kind": "folder",
        "path": str(fsdd_dir),
        "labels_csv": str(words_csv),
        "clip_seconds": 1.0,
        "group_regex": SPEAKER_REGEX,
    }
    base["datasets"]["own_speakers"] = {"kind": "folder", "path": str(spk_root), "clip_seconds": 1.0}
    base["train"].update({"epochs": 1, "width": 0.125, "steps_per_epoch": 2, "batch_size": 8})
    base["evaluate"]["n_chunks"] = 1
    (proj / "params.yaml").write_text(yaml.safe_dump(base, sort_keys=False))
    for name in ("own_digits", "own_speakers"):
        for cmd in (["download", name], ["segment", name], ["train", name, "fcn"]):
            res = subprocess.run([sys.executable, "-m", "pipeline", *cmd], cwd=proj, capture_output=True, text=True, timeout=600)
            assert res.returncode == 0, f"{cmd}: {res.stdout[-1500:]}\n{res.stderr[-3000:]}"
    metas = {n: json.loads((proj / "data" / "segments" / n / "meta.json").read_text()) for n in ("own_digits", "own_speakers")}
    assert metas["own_digits"]["dataset"] == "own_digits" and metas["own_digits"]["labels"] == [str(d) for d in range(10)]
    assert metas["own_speakers"]["labels"] == sorted({f.stem.split("_")[1] for f in files})
    for n in ("own_digits", "own_speakers"):
        assert (proj / "data" / "raw" / n / "manifest.json").is_file() and (proj / "models" / n / "fcn").is_dir()
    from pipeline.tracking.runs import client

    c = client(proj)
    for n in ("own_digits", "own_speakers"):
        exp = c.get_experiment_by_name(n)
        assert exp is not None and c.search_runs([exp.experiment_id]), n


def test_changed_split_rule_or_csv_changes_the_raw_output(tmp_path: Path, fsdd_dir: Path) -> None:
    """``data/raw/<name>`` records the CSV hash and the settings, so DVC re-runs ``segment`` when they change."""
    files = fsdd_files(fsdd_dir, takes=1)[:12]
    csv_path = write_csv(tmp_path / "labels.csv", [{"path": str(f), "labels": f.stem[0]} for f in files])
    raw = tmp_path / "raw"

    def manifest(**extra) -> str:
        p = params({"mine": {"kind": "folder", "path": str(fsdd_dir), "labels_csv": str(csv_path), **extra}})
        get_source("mine", p).fetch(raw, p)
        return (raw / "manifest.json").read_text()

    first = manifest()
    assert manifest() == first
    assert manifest(group_regex=SPEAKER_REGEX) != first
    write_csv(csv_path, [{"path": str(f), "labels": f.stem[0] + "x"} for f in files])
    assert manifest() != first


def test_named_dataset_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"unknown dataset 'datasets.my_wrds'.*kind: folder"):
        params({"my_wrds": {"path": "x"}})
    with pytest.raises(UserError, match=r"unknown key 'datasets.mine.pth'; allowed keys here: .*group_regex"):
        params({"mine": {"kind": "folder", "pth": "x"}})
    with pytest.raises(UserError, match="not a valid regular expression"):
        params({"mine": {"kind": "folder", "group_regex": "(x"}})
    with pytest.raises(UserError, match=r"unknown dataset 'nope'.*datasets.nope: \{kind: folder"):
        get_source("nope", params({}))
    p = params({"mine": {"kind": "folder", "path": str(tmp_path / "absent")}})
    with pytest.raises(UserError, match=r"datasets.mine.path .* is not an existing folder"):
        get_source("mine", p).fetch(tmp_path / "raw", p)
    # the fixed datasets are unchanged
    assert get_source("folder", params({})).name == "folder" and get_source("fsdd").name == "fsdd"


# ============================================================================ item 3: task type
def test_task_type_inferred_or_explicit(tmp_path: Path, fsdd_dir: Path, caplog) -> None:
    files = fsdd_files(fsdd_dir, takes=1)[:30]
    single = write_csv(tmp_path / "single.csv", [{"path": str(f), "labels": f.stem[0]} for f in files])
    multi = write_csv(tmp_path / "multi.csv", [{"path": str(f), "labels": f"{f.stem[0]};{f.stem.split('_')[1]}"} for f in files])
    layout = Layout(tmp_path / "proj")
    with caplog.at_level(logging.INFO, logger="pipeline.data.sources.folder"):
        p = params({"a": {"kind": "folder", "path": str(fsdd_dir), "labels_csv": str(single)}})
        assert get_source("a", p).kind == "single"
        _, meta, _ = segmented("a", p, layout)
    assert meta["kind"] == "single" and meta["task"] == "keywords"
    assert any("task inferred as single" in r.getMessage() for r in caplog.records)
    p = params({"b": {"kind": "folder", "path": str(fsdd_dir), "labels_csv": str(multi)}})
    assert get_source("b", p).kind == "multilabel"
    _, meta, _ = segmented("b", p, layout)
    assert meta["kind"] == "multilabel" and meta["task"] == "tagging" and len(meta["labels"]) > 10
    # explicit: a single-label CSV scored as multi-label, and a contradiction is an error
    p = params({"c": {"kind": "folder", "path": str(fsdd_dir), "labels_csv": str(single), "task": "multi_label"}})
    assert get_source("c", p).kind == "multilabel" and segmented("c", p, layout)[1]["kind"] == "multilabel"
    p = params({"d": {"kind": "folder", "path": str(fsdd_dir), "labels_csv": str(multi), "task": "single_label"}})
    with pytest.raises(UserError, match="task is single but 30 rows .* have several labels"):
        get_source("d", p).catalog(layout.raw("d"), p)


# ============================================================================ item 4: no silent loss of audio
@pytest.mark.parametrize("tail, n_clips, fraction", [("keep", 2, 1.0), ("overlap", 2, 1.0), ("drop", 1, 0.8)])
def test_long_file_keeps_its_audio(tmp_path: Path, tail: str, n_clips: int, fraction: float) -> None:
    root = tmp_path / "audio"
    (root / "a").mkdir(parents=True)
    t = np.arange(5 * 22050) / 22050
    sf.write(root / "a" / "five.wav", 0.3 * np.sin(2 * math.pi * 440 * t), 22050)
    sf.write(root / "a" / "short.wav", 0.3 * np.sin(2 * math.pi * 330 * t[:22050]), 22050)
    for i in range(4):
        sf.write(root / "a" / f"other{i}.wav", 0.3 * np.sin(2 * math.pi * (200 + 50 * i) * t[:44100]), 22050)
    p = params({"long": {"kind": "folder", "path": str(root), "clip_seconds": 4.0, "tail": tail}})
    manifest, meta, _ = segmented("long", p, Layout(tmp_path / f"proj_{tail}"))
    five = manifest[manifest["clip_id"].str.startswith("a/five.wav")]
    assert len(five) == n_clips and five["split"].nunique() == 1  # clips of one file share its split
    cov = meta["coverage"]
    assert cov["seconds_listed"] == pytest.approx(5 + 1 + 4 * 2, abs=0.01)
    assert cov["seconds_used"] == pytest.approx(cov["seconds_listed"] - (0 if tail != "drop" else 1.0), abs=0.01)
    if tail == "keep":
        assert sorted(five["n_samples"]) == [16000, 4 * 16000]  # the 1 s tail as a shorter clip
    if tail == "overlap":
        assert list(five["n_samples"]) == [4 * 16000, 4 * 16000]  # second clip = seconds 1-5, counted once
    if tail == "drop":
        assert cov["seconds_fraction"] == pytest.approx(13 / 14, abs=1e-3) and cov["fraction"] == 1.0
    else:
        assert cov["seconds_fraction"] == pytest.approx(fraction, abs=1e-3)


# ============================================================================ item 8: legible compare tables
LONG_TASK = "an_own_dataset_with_a_really_quite_long_name_for_testing"
LONG_MODEL = "hcnn_alias_with_many_options_n_harmonics_6_trainable_bandwidth"
LONG_METRIC = "robust/background_noise/speech_commands/snr_0/roc_auc"


def _runs() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "task": [LONG_TASK, LONG_TASK, "synth_tags"],
            "model": [LONG_MODEL, "fcn", "fcn"],
            "test/accuracy": [0.123456789, 0.5, np.nan],
            "test/roc_auc": [np.nan, np.nan, 0.87654321],
            LONG_METRIC: [0.51234, 0.6, np.nan],
        }
    )


@pytest.mark.parametrize("fmt", ["csv", "json", "markdown", "table"])
def test_compare_formats_never_truncate(fmt: str) -> None:
    from pipeline.report.compare import format_table

    for long in (False, True):
        text = format_table(_runs(), fmt, long=long)
        assert LONG_TASK in text and LONG_MODEL in text and LONG_METRIC in text and "…" not in text
        if fmt in ("csv", "json"):
            assert "0.123456789" in text and "0.87654321" in text  # full precision
        else:
            assert "0.1235" in text and "0.8765" in text
    parsed = json.loads(format_table(_runs(), "json", long=True))
    assert {"task", "model", "metric", "value"} <= set(parsed[0]) and len(parsed) == 5  # NaN cells dropped
    if fmt == "csv":
        back = pd.read_csv(__import__("io").StringIO(format_table(_runs(), "csv")))
        assert back.loc[0, "test/accuracy"] == pytest.approx(0.123456789) and back.loc[0, "model"] == LONG_MODEL


def test_compare_cli_without_a_terminal(tmp_path: Path) -> None:
    """``musicrep compare`` over real MLflow runs, stdout not a TTY: plain text at full width."""
    from typer.testing import CliRunner

    from pipeline.cli.main import app
    from pipeline.tracking.runs import client, experiment_id

    c = client(tmp_path)
    run = c.create_run(experiment_id(c, LONG_TASK, tmp_path), run_name=LONG_MODEL)
    c.log_metric(run.info.run_id, "test/accuracy", 0.123456789)
    c.set_terminated(run.info.run_id, "FINISHED")
    runner = CliRunner()
    for fmt in ("table", "markdown", "csv", "json"):
        res = runner.invoke(app, ["compare", "--task", LONG_TASK, "--format", fmt], env={"COLUMNS": "40"})
        assert res.exit_code == 0, res.output
        assert LONG_MODEL in res.output and "…" not in res.output, res.output
    res = runner.invoke(app, ["compare", "--task", LONG_TASK, "--long"], env={"COLUMNS": "40"})
    assert res.exit_code == 0 and LONG_MODEL in res.output and "test/accuracy" in res.output and "0.1235" in res.output
    res = runner.invoke(app, ["compare", "--task", LONG_TASK, "--format", "json", "--out", str(tmp_path / "c.json")])
    assert res.exit_code == 0 and json.loads((tmp_path / "c.json").read_text())[0]["test/accuracy"] == pytest.approx(0.123456789)
    res = runner.invoke(app, ["compare", "--format", "xml"])
    assert res.exit_code != 0
