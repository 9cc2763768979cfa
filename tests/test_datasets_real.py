"""The real dataset sources on miniature copies of the publishers' files.

Each test builds an archive or metadata with the real file names, CSV columns and split
files, serves it from 127.0.0.1 (the first transfer cut short), fetches it through
``source.fetch`` with the mirror pointing at that server, runs the ``segment`` stage and
checks the manifest, splits, labels and the skipped/coverage report.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.core.errors import UserError
from pipeline.core.paths import Layout
from pipeline.data.miniature import (
    audio_bytes,
    corrupt_empty_silent,
    dcase_metadata,
    make_tar_gz,
    make_zip,
    mtat_files,
    speech_commands_archive,
    tone,
    write_audio,
)
from pipeline.data.registry import get_source
from pipeline.data.segment import segment_dataset
from pipeline.data.sources import dcase2017_task4, fsdd, mtat, speech_commands
from pipeline.data.sources import folder as folder_source
from tests.conftest_data import LoopbackServer, closed_port, params


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch) -> None:
    monkeypatch.setenv("MUSICREP_DOWNLOAD_ATTEMPTS", "3")
    monkeypatch.setenv("MUSICREP_DOWNLOAD_BACKOFF_S", "0.01")
    monkeypatch.setenv("MUSICREP_DOWNLOAD_TIMEOUT_S", "5")


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Resampling thousands of tiny clips is 10-50x faster on one thread on a busy 2-core box."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture()
def server():
    srv = LoopbackServer()
    yield srv
    srv.close()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch(name: str, p, layout: Layout) -> None:
    get_source(name, p).fetch(layout.raw(name), p)


def read_outputs(seg_dir: Path) -> tuple[pd.DataFrame, dict, dict]:
    return (
        pd.read_parquet(seg_dir / "manifest.parquet"),
        json.loads((seg_dir / "meta.json").read_text()),
        json.loads((seg_dir / "report.json").read_text()),
    )


# ============================================================================ FSDD
FSDD_SPEAKERS, FSDD_DIGITS, FSDD_TAKES = ("george", "theo"), ("0", "1", "2"), range(12)


def fsdd_recordings() -> dict[str, bytes]:
    out = {}
    for d in FSDD_DIGITS:
        for s in FSDD_SPEAKERS:
            for t in FSDD_TAKES:
                out[f"{d}_{s}_{t}.wav"] = audio_bytes(
                    tone(0.15 + 0.01 * t, 8000, 300 + 50 * int(d), seed=t), 8000, subtype="PCM_16"
                )
    return out


def test_fsdd_archive_over_http_interrupted_then_segmented(tmp_path: Path, server: LoopbackServer) -> None:
    recs = fsdd_recordings()
    top = f"free-spoken-digit-dataset-{fsdd.COMMIT}/"
    server.files[fsdd.ARCHIVE.name] = make_tar_gz(
        {"README.md": b"# FSDD", "metadata.py": b"x = 1\n", **{f"recordings/{n}": b for n, b in recs.items()}}, prefix=top
    )
    server.cut_first.add(fsdd.ARCHIVE.name)
    layout = Layout(tmp_path)
    p = params({"datasets": {"fsdd": {"mirror": server.url + "/"}}})
    fetch("fsdd", p, layout)
    first, second = server.requests_for(fsdd.ARCHIVE.name)
    assert second.range == f"bytes={first.bytes_sent}-" and second.status == 206
    raw = layout.raw("fsdd")
    assert sorted(x.name for x in (raw / "recordings").iterdir()) == sorted(recs)
    assert not (raw / "README.md").exists()  # only recordings/ is kept
    done = json.loads((raw / "COMPLETE.json").read_text())
    assert done["n_recordings"] == len(recs) and done["matches_upstream"] is False
    manifest = json.loads((raw / "manifest.json").read_text())
    assert {e["path"] for e in manifest["files"]} >= {f"recordings/{n}" for n in recs}

    n_requests = len(server.log)
    fetch("fsdd", p, layout)  # idempotent: nothing downloaded again
    assert len(server.log) == n_requests

    out, meta, report = read_outputs(segment_dataset("fsdd", p, layout))
    assert len(out) == len(recs) == 72
    counts = out["split"].value_counts().to_dict()
    assert counts == {"test": 30, "val": 30, "train": 12}
    takes = out["clip_id"].str.split("_").str[2].astype(int)
    assert (out["split"][takes <= 4] == "test").all() and (out["split"][takes >= 10] == "train").all()
    assert all(list(lab) == [cid[0]] for lab, cid in zip(out["labels"], out["clip_id"]))
    assert meta["labels"] == [str(d) for d in range(10)] and meta["kind"] == "single"
    assert meta["coverage"]["expected"] == 3000 and meta["coverage"]["present"] == 72
    assert report["coverage"]["missing"] == 3000 - 72 and "9_yweweler_49" in report["missing"]
    # whole files are kept (duration NaN): 0.15 s at 8 kHz -> 2,400 samples at 16 kHz
    first_row = out.set_index("clip_id").loc["0_george_0"]
    assert first_row["n_samples"] == 2400


def test_fsdd_zip_archive_url_as_mirror(tmp_path: Path, server: LoopbackServer) -> None:
    recs = dict(list(fsdd_recordings().items())[:6])
    server.files["fsdd-main.zip"] = make_zip({f"free-spoken-digit-dataset-master/recordings/{n}": b for n, b in recs.items()})
    p = params({"datasets": {"fsdd": {"mirror": f"{server.url}/fsdd-main.zip"}}})
    fetch("fsdd", p, Layout(tmp_path))
    assert len(list((Layout(tmp_path).raw("fsdd") / "recordings").glob("*.wav"))) == 6


def test_fsdd_directory_mirror_checks_sha256sums(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    recs = dict(list(fsdd_recordings().items())[:8])
    for n, b in recs.items():
        (mirror / "recordings").mkdir(parents=True, exist_ok=True)
        (mirror / "recordings" / n).write_bytes(b)
    sums = {n: sha(b) for n, b in recs.items()}
    bad = next(iter(recs))
    sums[bad] = "0" * 64
    (mirror / "SHA256SUMS").write_text("".join(f"{h}  ./{n}\n" for n, h in sums.items()))
    p = params({"datasets": {"fsdd": {"mirror": str(mirror)}}})
    with pytest.raises(UserError, match=f"{bad} fails its SHA-256 check against .*SHA256SUMS"):
        fetch("fsdd", p, Layout(tmp_path / "a"))
    assert not (Layout(tmp_path / "a").raw("fsdd") / "recordings").exists()
    sums[bad] = sha(recs[bad])
    (mirror / "SHA256SUMS").write_text("".join(f"{h}  ./{n}\n" for n, h in sums.items()))
    fetch("fsdd", p, Layout(tmp_path / "a"))
    assert len(list((Layout(tmp_path / "a").raw("fsdd") / "recordings").glob("*.wav"))) == 8


def test_fsdd_real_local_mirror(tmp_path: Path, fsdd_dir: Path) -> None:
    """The 3,000 real recordings of the FSDD mirror (``fsdd_dir``): fetch (checked) + segment."""
    layout = Layout(tmp_path)
    p = params({"datasets": {"fsdd": {"mirror": str(fsdd_dir)}}})
    fetch("fsdd", p, layout)
    done = json.loads((layout.raw("fsdd") / "COMPLETE.json").read_text())
    assert done["matches_upstream"] is True and done["recordings_sha256"] == fsdd.RECORDINGS_DIGEST
    out, meta, report = read_outputs(segment_dataset("fsdd", p, layout))
    assert len(out) == 3000 and report["skipped"] == [] and report["missing"] == []
    assert (out["split"] == "test").sum() == 300
    test_takes = out.loc[out["split"] == "test", "clip_id"].str.split("_").str[2].astype(int)
    assert set(test_takes) == {0, 1, 2, 3, 4}
    assert meta["coverage"]["fraction"] == 1.0
    assert out.set_index("clip_id").loc["9_theo_16", "n_samples"] > 2.2 * 16000  # the 2.28 s file is whole


# ============================================================================ Speech Commands
def test_speech_commands_mini_archive(tmp_path: Path, server: LoopbackServer, monkeypatch) -> None:
    blob, info = speech_commands_archive()
    server.files[speech_commands.ARCHIVE.name] = blob
    server.cut_first.add(speech_commands.ARCHIVE.name)
    layout = Layout(tmp_path)
    p = params({"datasets": {"speech_commands": {"mirror": server.url}}})
    # the real archive's SHA-256 is enforced: the miniature fails it ...
    with pytest.raises(UserError, match=f"fails its SHA-256 check \\(expected {speech_commands.ARCHIVE.sha256}"):
        fetch("speech_commands", p, layout)
    # ... and passes once the expected checksum is the miniature's
    monkeypatch.setattr(speech_commands, "ARCHIVE", replace(speech_commands.ARCHIVE, sha256=sha(blob), size=len(blob)))
    server.cut_first.add(speech_commands.ARCHIVE.name)
    n0 = len(server.log)
    fetch("speech_commands", p, layout)
    first, second = server.log[n0:]
    assert first.bytes_sent == len(blob) // 2 and second.range == f"bytes={len(blob) // 2}-"
    n_requests = len(server.log)
    fetch("speech_commands", p, layout)
    assert len(server.log) == n_requests

    raw = layout.raw("speech_commands")
    noise = speech_commands.background_noise_files(raw)
    assert [x.name for x in noise] == ["white_noise.wav"]
    out, meta, report = read_outputs(segment_dataset("speech_commands", p, layout))
    assert len(out) == 18 and meta["labels"] == speech_commands.WORDS and len(meta["labels"]) == 35
    by_id = out.set_index("clip_id")
    assert {by_id.loc[f.removesuffix(".wav"), "split"] for f in info["val"]} == {"val"}
    assert {by_id.loc[f.removesuffix(".wav"), "split"] for f in info["test"][:2]} == {"test"}
    assert (out["split"] == "train").sum() == 18 - 4
    assert all(list(lab) == [cid.split("/")[0]] for lab, cid in zip(out["labels"], out["clip_id"]))
    assert not out["clip_id"].str.startswith("_background_noise_").any()
    reasons = {Path(s["path"]).name: s["reason"] for s in report["skipped"]}
    assert set(reasons) == {"ffffffff_nohash_0.wav", "eeeeeeee_nohash_0.wav", "dddddddd_nohash_0.wav"}
    assert "cannot decode" in reasons["ffffffff_nohash_0.wav"] and "silent" in reasons["dddddddd_nohash_0.wav"]
    assert report["missing"] == ["no/0badbad0_nohash_0"]
    assert report["coverage"] == {**report["coverage"], "expected": 22, "listed": 21, "present": 18, "skipped": 3, "missing": 1}


def test_speech_commands_unreachable_host_says_where_to_put_the_archive(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    p = params({"datasets": {"speech_commands": {"mirror": f"http://127.0.0.1:{closed_port()}"}}})
    with pytest.raises(UserError) as err:
        fetch("speech_commands", p, layout)
    msg = str(err.value)
    assert f"place it at {layout.raw('speech_commands') / 'speech_commands_v0.02.tar.gz'}" in msg
    assert speech_commands.ARCHIVE.sha256 in msg and speech_commands.ARCHIVE.url in msg
    assert "`musicrep download speech_commands`" in msg


# ============================================================================ MTAT
def test_mtat_parts_annotations_and_reference_lists(tmp_path: Path, server: LoopbackServer, monkeypatch) -> None:
    """Each publisher from its own mirror: MIRG's files from `mirror`, the reference lists from their own URLs."""
    files, info = mtat_files()
    lists = {f.name for f in mtat.SPLIT_FILES}
    server.files.update({k: v for k, v in files.items() if k not in lists})  # a MIRG-like mirror: no lists
    server.cut_first.add("mp3.zip.002")
    github = LoopbackServer()  # stands in for raw.githubusercontent.com: the lists' own URLs, in code
    github.files.update({k: v for k, v in files.items() if k in lists})
    monkeypatch.setattr(mtat, "SPLIT_FILES", [replace(f, url=f"{github.url}/{f.name}") for f in mtat.SPLIT_FILES])
    layout = Layout(tmp_path)
    p = params({"datasets": {"mtat": {"mirror": server.url}}})
    try:
        fetch("mtat", p, layout)
    finally:
        github.close()
    assert sorted(r.path for r in github.log) == sorted(lists) and not lists & {r.path for r in server.log}
    assert [r.range is not None for r in server.requests_for("mp3.zip.002")] == [False, True]
    raw = layout.raw("mtat")
    assert (raw / "mp3" / "c" / "artist_c-album-01-track_1-0-29.mp3").stat().st_size > 0
    assert not (raw / "mp3_all.zip").exists()  # the parts are read back to back, not concatenated on disk
    n_requests = len(server.log)
    fetch("mtat", p, layout)
    assert len(server.log) == n_requests

    out, meta, report = read_outputs(segment_dataset("mtat", p, layout))
    assert meta["labels"] == info["top"] and meta["kind"] == "multilabel"
    assert len(out) == 18  # 18 listed clips + the empty one, which segment skips
    assert [Path(s["path"]).name for s in report["skipped"]] == ["empty-clip-0-29.mp3"]
    by_path = {Path(p).as_posix().split("mp3/", 1)[1]: s for p, s in zip(out["source_path"], out["split"])}
    assert by_path["b/artist_b-album-00-track_0-0-29.mp3"] == "val"  # from the lists, not the folder rule
    assert out["split"].value_counts().to_dict() == {"train": 8, "val": 4, "test": 6}
    assert "a/no_top50-0-29.mp3" not in by_path
    row = out.set_index("clip_id").loc["1"]
    assert set(row["labels"]) == {t for t, v in zip(info["top"], info["rows"][0][1:51]) if v == "1"}
    assert meta["coverage"]["expected"] == 19
    assert (meta["split_source"], meta["vocabulary_source"]) == (mtat.SPLIT_REFERENCE, mtat.VOCABULARY_REFERENCE)


def test_mtat_falls_back_to_the_documented_rule(tmp_path: Path, server: LoopbackServer, caplog) -> None:
    files, info = mtat_files(with_lists=False)  # split files absent on the mirror (HTTP 404, optional)
    server.files.update(files)
    layout = Layout(tmp_path)
    p = params({"datasets": {"mtat": {"mirror": server.url, "split_mirror": server.url}}})
    fetch("mtat", p, layout)
    with caplog.at_level("WARNING", logger=mtat.__name__):
        catalog = get_source("mtat", p).catalog(layout.raw("mtat"), p)
    said = [r.getMessage() for r in caplog.records if "reference lists" in r.getMessage()]
    assert len(said) == 1 and "line up with neither the published numbers nor the `sota:` heads" in said[0]
    assert "datasets.mtat.split_mirror" in said[0] and "train.npy" in said[0] and said[0].count(". ") == 0
    strict = params({"datasets": {"mtat": {"mirror": server.url, "split_mirror": server.url, "split": "reference"}}})
    with pytest.raises(UserError, match=r"MTAT's reference lists \(train.npy, valid.npy, test.npy, top50_tags.txt\)"):
        get_source("mtat", strict).catalog(layout.raw("mtat"), strict)
    split = dict(zip(catalog.clips["path"], catalog.clips["split"]))
    assert split["mp3/b/artist_b-album-00-track_0-0-29.mp3"] == "train"
    assert {s for path, s in split.items() if path[4] == "c"} == {"val"}
    assert {s for path, s in split.items() if path[4] in "def"} == {"test"}
    assert "mp3/a/no_top50-0-29.mp3" not in split  # no top-50 tag
    assert len(catalog.labels) == 50 and catalog.expected == len(catalog.clips) == 19
    assert (catalog.split_source, catalog.vocabulary_source) == (mtat.SPLIT_RULE, mtat.VOCABULARY_RULE)


def test_mtat_pickled_lists_are_not_loaded(tmp_path: Path) -> None:
    for name in mtat.SPLIT_LISTS.values():
        np.save(tmp_path / name, np.array(["0\ta/x.mp3", {"x": 1}], dtype=object), allow_pickle=True)
    assert mtat.load_split_lists(tmp_path) is None
    assert mtat.split_by_folder("b/x.mp3") == "train" and mtat.split_by_folder("c/x.mp3") == "val"
    assert mtat.split_by_folder("f/x.mp3") == "test" and mtat.camel("no vocals") == "noVocals"


# ============================================================================ DCASE 2017 task 4
def unpin_dcase(monkeypatch) -> None:
    monkeypatch.setattr(dcase2017_task4, "FILES", [replace(f, md5=None, size=None) for f in dcase2017_task4.FILES])


def test_dcase_metadata_and_user_audio(tmp_path: Path, server: LoopbackServer, monkeypatch) -> None:
    files, info = dcase_metadata()
    server.files.update(files)
    server.cut_first.add("groundtruth_weak_label_training_set.csv")
    audio = tmp_path / "my_dcase_audio"
    have = info["train"][:30] + info["test"][:4] + info["evaluation"][:5]
    for i, (y, s, e, _) in enumerate(have):
        stem = f"Y{y}_{s:.3f}_{e:.3f}" if i % 5 else f"{y}_{s:g}_{e:g}"  # with and without the 'Y', short times
        sub = audio / ("nested" if i % 7 == 0 else "")
        fmt = "FLAC" if i % 6 == 0 else "WAV"
        write_audio(sub / f"{stem}.{fmt.lower()}", tone(0.5, 44100, 500 + 10 * i, channels=2, seed=i), 44100, fmt)
    write_audio(audio / "unrelated_recording.wav", tone(0.3, 16000), 16000)
    layout = Layout(tmp_path / "project")
    p = params({"datasets": {"dcase2017_task4": {"mirror": server.url, "audio_dir": str(audio)}}})
    with pytest.raises(UserError, match=r"fails its MD5 check \(expected 1a98a76221fa5b5a85aaee9dbf02a2bf"):
        fetch("dcase2017_task4", p, layout)  # the pinned MD5 of the real file is enforced
    unpin_dcase(monkeypatch)
    server.log.clear()
    server.cut_first.add("groundtruth_weak_label_training_set.csv")
    fetch("dcase2017_task4", p, layout)
    assert [r.range is not None for r in server.requests_for("groundtruth_weak_label_training_set.csv")] == [False, True]
    n_requests = len(server.log)
    fetch("dcase2017_task4", p, layout)
    assert len(server.log) == n_requests

    out, meta, report = read_outputs(segment_dataset("dcase2017_task4", p, layout))
    expected = len(info["train"]) + len(info["test"]) + len(info["evaluation"])
    assert meta["labels"] == dcase2017_task4.CLASSES and meta["kind"] == "multilabel"
    assert meta["coverage"]["expected"] == expected and meta["coverage"]["present"] == len(have) == 39
    assert report["coverage"]["missing"] == expected - 39 and len(report["missing"]) == expected - 39
    y, s, e, _ = info["evaluation"][5]
    assert f"Y{y}_{s:.3f}_{e:.3f}" in report["missing"]
    by_id = out.set_index("clip_id")
    for y, s, e, labs in info["evaluation"][:5]:
        row = by_id.loc[f"Y{y}_{s:.3f}_{e:.3f}"]
        assert row["split"] == "test" and list(row["labels"]) == [c for c in dcase2017_task4.CLASSES if c in labs]
    dev = {(y, f"{s:.3f}", f"{e:.3f}"): set(labs) for y, s, e, labs in info["train"] + info["test"]}
    val = {dcase2017_task4.clip_id(k) for k in dcase2017_task4.validation_keys(dev, dcase2017_task4.CLASSES)}
    got_val = set(out.loc[out["split"] == "val", "clip_id"])
    assert got_val == val & set(out["clip_id"]) and (out["split"] == "train").sum() > 0
    # `musicrep download dcase2017_task4 --audio-dir DIR` then `musicrep segment dcase2017_task4`:
    # the segment run's params lack audio_dir; the folder recorded at fetch is used
    again, _, _ = read_outputs(segment_dataset("dcase2017_task4", params(), layout))
    assert len(again) == 39


def test_dcase_validation_split_is_seeded_per_class() -> None:
    classes = ["a", "b"]
    dev = {
        (f"id{i:09d}", "0.000", "10.000"): ({"a"} if i < 50 else {"b"}) | ({"b"} if i % 10 == 0 else set()) for i in range(100)
    }
    val = dcase2017_task4.validation_keys(dev, classes)
    assert val == dcase2017_task4.validation_keys(dev, classes)  # deterministic (seed 123)
    n_a, n_b = sum("a" in dev[k] for k in dev), sum("b" in dev[k] for k in dev)
    assert max(n_a, n_b) // 10 <= len(val) <= n_a // 10 + n_b // 10
    assert sum("a" in dev[k] for k in val) >= n_a // 10 and sum("b" in dev[k] for k in val) >= n_b // 10
    assert val != dcase2017_task4.validation_keys(dev, classes, seed=124)


def test_dcase_without_audio_says_how_to_supply_it(tmp_path: Path, server: LoopbackServer, monkeypatch) -> None:
    unpin_dcase(monkeypatch)
    files, _ = dcase_metadata()
    server.files.update(files)
    layout = Layout(tmp_path)
    p = params({"datasets": {"dcase2017_task4": {"mirror": server.url}}})
    fetch("dcase2017_task4", p, layout)  # metadata only; the audio is the user's
    with pytest.raises(UserError, match=r"not redistributed.*--audio-dir"):
        get_source("dcase2017_task4", p).catalog(layout.raw("dcase2017_task4"), p)
    p2 = params({"datasets": {"dcase2017_task4": {"mirror": server.url, "audio_dir": str(tmp_path / "nope")}}})
    with pytest.raises(UserError, match="audio_dir .* does not exist"):
        fetch("dcase2017_task4", p2, layout)


# ============================================================================ folder
def test_folder_per_class_mixed_formats(tmp_path: Path) -> None:
    root = tmp_path / "my_audio"
    write_audio(root / "dog" / "bark1.wav", tone(1.0, 44100, 300, channels=2), 44100)
    write_audio(root / "dog" / "sub" / "bark2.flac", tone(1.2, 22050, 350), 22050, "FLAC")
    write_audio(root / "dog" / "long.ogg", tone(9.0, 48000, 320, channels=2), 48000, "OGG")
    write_audio(root / "cat" / "meow1.mp3", tone(1.5, 44100, 600, channels=2), 44100, "MP3")
    write_audio(root / "cat" / "meow2.wav", tone(0.8, 8000, 700), 8000)
    bad = corrupt_empty_silent(44100)
    (root / "cat" / "broken.wav").write_bytes(bad["corrupt"])
    (root / "cat" / "empty.flac").write_bytes(bad["empty"])
    (root / "dog" / "silence.wav").write_bytes(bad["silent"])
    (root / "cat" / "notes.txt").write_text("not audio")
    layout = Layout(tmp_path / "project")
    p = params({"datasets": {"folder": {"path": str(root), "clip_seconds": 4.0}}})
    source = get_source("folder", p)
    assert source.kind == "single" and source.task == "keywords"
    source.fetch(layout.raw("folder"), p)
    manifest = json.loads((layout.raw("folder") / "manifest.json").read_text())
    assert manifest["n_files"] == 8 and {e["path"] for e in manifest["files"]} >= {"dog/long.ogg", "cat/meow1.mp3"}
    entry = next(e for e in manifest["files"] if e["path"] == "cat/meow2.wav")
    assert entry["sha256"] == sha((root / "cat" / "meow2.wav").read_bytes())

    out, meta, report = read_outputs(segment_dataset("folder", p, layout))
    assert meta["labels"] == ["cat", "dog"]
    assert sorted(out["clip_id"]) == sorted(
        [
            "dog/bark1.wav",
            "dog/sub/bark2.flac",
            "dog/long.ogg#0",
            "dog/long.ogg#1",
            "dog/long.ogg#2",
            "cat/meow1.mp3",
            "cat/meow2.wav",
        ]
    )
    lengths = out.set_index("clip_id")["n_samples"]
    assert lengths["dog/long.ogg#0"] == lengths["dog/long.ogg#1"] == 4 * 16000
    assert abs(lengths["dog/long.ogg#2"] - 16000) <= 1  # the 1 s tail of the 9 s file is kept, not dropped
    assert abs(lengths["dog/bark1.wav"] - 16000) <= 1 and abs(lengths["cat/meow2.wav"] - 0.8 * 16000) <= 1
    assert abs(lengths["cat/meow1.mp3"] - 1.5 * 16000) < 0.1 * 16000
    labels = dict(zip(out["clip_id"], out["labels"]))
    assert list(labels["cat/meow1.mp3"]) == ["cat"] and list(labels["dog/long.ogg#1"]) == ["dog"]
    splits = dict(zip(out["clip_id"], out["split"]))
    assert splits["dog/long.ogg#0"] == splits["dog/long.ogg#1"] == splits["dog/long.ogg#2"]  # one file, one split
    assert {Path(s["path"]).name for s in report["skipped"]} == {"broken.wav", "empty.flac", "silence.wav"}
    # the split depends only on the relative path: a copy elsewhere splits the same way
    assert folder_source.split_for_path("dog/long.ogg", 0.15, 0.2) == splits["dog/long.ogg#0"]
    fractions = pd.Series([folder_source.split_for_path(f"x/{i}.wav", 0.15, 0.2) for i in range(4000)]).value_counts(
        normalize=True
    )
    assert abs(fractions["test"] - 0.2) < 0.03 and abs(fractions["val"] - 0.15) < 0.03


def test_folder_csv_multilabel(tmp_path: Path) -> None:
    root = tmp_path / "audio"
    write_audio(root / "a.wav", tone(1.0, 16000, 300), 16000)
    write_audio(root / "b" / "c.flac", tone(1.0, 32000, 400), 32000, "FLAC")
    (tmp_path / "labels.csv").write_text('path,labels\na.wav,rock;pop\nb/c.flac,"jazz,pop"\nmissing.wav,rock\n')
    layout = Layout(tmp_path / "project")
    p = params({"datasets": {"folder": {"path": str(root), "labels_csv": str(tmp_path / "labels.csv"), "clip_seconds": 2.0}}})
    source = get_source("folder", p)
    assert source.kind == "multilabel" and source.task == "tagging"
    source.fetch(layout.raw("folder"), p)
    out, meta, report = read_outputs(segment_dataset("folder", p, layout))
    assert meta["labels"] == ["jazz", "pop", "rock"]
    labels = {k: sorted(v) for k, v in zip(out["clip_id"], out["labels"])}
    assert labels == {"a.wav": ["pop", "rock"], "b/c.flac": ["jazz", "pop"]}
    assert report["missing"] == ["missing.wav"] and meta["coverage"]["expected"] == 3
    # given on the command line at download time only: segment finds the recorded CSV
    again, _, _ = read_outputs(segment_dataset("folder", params(), layout))
    assert sorted(again["clip_id"]) == ["a.wav", "b/c.flac"]


def test_folder_needs_an_existing_path(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="datasets.folder.path is not set"):
        get_source("folder", params()).fetch(tmp_path, params())
    p = params({"datasets": {"folder": {"path": str(tmp_path / "nowhere")}}})
    with pytest.raises(UserError, match="is not an existing folder"):
        get_source("folder", p).fetch(tmp_path, p)


# ============================================================================ missing raw data
@pytest.mark.parametrize("name", ["fsdd", "mtat", "speech_commands", "dcase2017_task4"])
def test_catalog_without_download_names_the_command(tmp_path: Path, name: str) -> None:
    p = params()
    with pytest.raises(UserError, match=f"run `musicrep download {name}`"):
        get_source(name, p).catalog(Layout(tmp_path).raw(name), p)
    with pytest.raises(UserError, match=f"musicrep download {name}"):
        segment_dataset(name, p, Layout(tmp_path))
