"""Miniature copies of the publishers' files (MTAT, Speech Commands v0.02, DCASE 2017 task 4).

Laid out like the publishers (real file names, CSV columns, split lists and archive layouts) with a
few faults a real download has (an undecodable, an empty and a silent file; a listed clip that is
absent); the tests of the real sources and ``musicrep rehearse`` serve them over 127.0.0.1. The
audio is tones, not music or speech: they rehearse the pipeline, not the models.
"""

from __future__ import annotations

import csv
import io
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import soundfile as sf

from pipeline.data.sources import dcase2017_task4, mtat
from pipeline.data.tag_vocabularies import TAGS


# ----------------------------------------------------------------------------- audio
def tone(seconds: float, sr: int, freq: float = 440.0, channels: int = 1, amp: float = 0.3, seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    rng = np.random.default_rng(seed)
    x = amp * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(len(t))
    x = x.astype(np.float32)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


def audio_bytes(x: np.ndarray, sr: int, fmt: str = "WAV", subtype: str | None = None) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, sr, format=fmt, subtype=subtype)
    return buf.getvalue()


def write_audio(path: Path, x: np.ndarray, sr: int, fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), x, sr, format=fmt)
    return path


# ----------------------------------------------------------------------------- archives
def make_tar_gz(members: dict[str, bytes], prefix: str = "") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(prefix + name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def make_zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def corrupt_empty_silent(sr: int) -> dict[str, bytes]:
    """Three unusable inputs: garbage bytes, an empty file, digital silence."""
    return {
        "corrupt": b"RIFF\x00\x00garbage-not-audio" * 10,
        "empty": b"",
        "silent": audio_bytes(np.zeros(sr // 2, np.float32), sr),
    }


SC_WORDS = ("yes", "no", "marvin")


def speech_commands_archive() -> tuple[bytes, dict]:
    members: dict[str, bytes] = {"LICENSE": b"CC BY 4.0", "README.md": b"Speech Commands"}
    files = []
    for w, word in enumerate(SC_WORDS):
        for k in range(6):
            name = f"{word}/{k:02x}a1b2c3_nohash_{k % 2}.wav"
            members[name] = audio_bytes(tone(0.4, 16000, 200 + 40 * w + 5 * k, seed=k), 16000, subtype="PCM_16")
            files.append(name)
    bad = corrupt_empty_silent(16000)
    members["no/ffffffff_nohash_0.wav"] = bad["corrupt"]
    members["yes/eeeeeeee_nohash_0.wav"] = bad["empty"]
    members["marvin/dddddddd_nohash_0.wav"] = bad["silent"]
    val = [files[0], files[7]]
    test = [files[1], files[13], "no/0badbad0_nohash_0.wav"]  # the last one is listed but absent
    members["validation_list.txt"] = "\n".join(val).encode() + b"\n"
    members["testing_list.txt"] = "\n".join(test).encode() + b"\n"
    members["_background_noise_/white_noise.wav"] = audio_bytes(tone(2.0, 16000, 1000), 16000)
    members["_background_noise_/README.md"] = b"noise"
    return make_tar_gz(members, prefix="./"), {"files": files, "val": val, "test": test}


TOP50_SPACED = {mtat.camel(tag): tag for tag in TAGS["mtat"]}
"""MTAT's top-50 tags: ``annotations_final.csv`` column (camelCase) -> the reference's spelling."""


MTAT_FOLDERS = "05bcdf"


def mtat_files(with_lists: bool = True) -> tuple[dict[str, bytes], dict]:
    """Three zip parts, annotations_final.csv and the reference split lists."""
    top = list(TOP50_SPACED)
    extra = ["hard rock", "bongos", "lol"]
    columns = ["clip_id"] + [TOP50_SPACED[t] for t in top] + extra + ["mp3_path"]
    rows, members, clip = [], {}, 0
    for f in MTAT_FOLDERS:
        for k in range(3):
            clip += 1
            path = f"{f}/artist_{f}-album-{k:02d}-track_{k}-0-29.mp3"
            tags = {top[(3 * clip + j) % 50] for j in range(6)}  # every top-50 tag used at least once
            onehot = ["1" if t in tags else "0" for t in top]
            rows.append([str(clip), *onehot, "1" if clip == 1 else "0", "0", "0", path])
            members[path] = audio_bytes(tone(0.5, 22050, 200 + 20 * clip, channels=2, seed=clip), 22050, fmt="MP3")
    # a clip with none of the 50 tags (dropped) and an empty mp3 (kept, skipped by segment)
    rows.append(["900", *["0"] * 50, "0", "1", "0", "a/no_top50-0-29.mp3"])
    members["a/no_top50-0-29.mp3"] = audio_bytes(tone(0.5, 22050, 300), 22050, fmt="MP3")
    rows.append(["901", *(["1"] + ["0"] * 49), "0", "0", "0", "e/empty-clip-0-29.mp3"])
    members["e/empty-clip-0-29.mp3"] = b""
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter="\t", quoting=csv.QUOTE_ALL, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    blob = make_zip(members)
    cut = [0, len(blob) // 3, 2 * len(blob) // 3, len(blob)]
    files = {f"mp3.zip.00{i + 1}": blob[cut[i] : cut[i + 1]] for i in range(3)}
    files["annotations_final.csv"] = buf.getvalue().encode()
    by_path = {r[-1]: i for i, r in enumerate(rows)}
    lists = {  # the reference lists: like the rule, except one 'b' clip moved to valid
        "train": [p for p in by_path if p[0] in "05b" and p != "b/artist_b-album-00-track_0-0-29.mp3"],
        "val": [p for p in by_path if p[0] == "c"] + ["b/artist_b-album-00-track_0-0-29.mp3"],
        "test": [p for p in by_path if p[0] in "df"] + ["e/empty-clip-0-29.mp3"],
    }
    if with_lists:
        for split, name in mtat.SPLIT_LISTS.items():
            arr = np.array([f"{by_path[p]}\t{p}" for p in lists[split]])
            out = io.BytesIO()
            np.save(out, arr, allow_pickle=False)
            files[name] = out.getvalue()
        files["top50_tags.txt"] = ("\n".join(top) + "\n").encode()
    return files, {"lists": lists, "rows": rows, "top": top}


def dcase_metadata() -> tuple[dict[str, bytes], dict]:
    classes = dcase2017_task4.CLASSES
    rng = np.random.default_rng(5)
    alphabet = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"))

    def ytid() -> str:
        return "".join(rng.choice(alphabet, 11))

    def lines(clips):
        return "".join(f"{y}_{s:.3f}_{e:.3f}.wav\t{s:.3f}\t{e:.3f}\t{lab}\n" for y, s, e, labs in clips for lab in labs).encode()

    train = [(ytid(), 30.0, 40.0, [classes[i % 17]] + ([classes[(i + 3) % 17]] if i % 4 == 0 else [])) for i in range(40)]
    train.append(("Y10I9JSvJuQ", 30.0, 40.0, ["Train"]))  # an id that itself starts with 'Y'
    test = [(ytid(), 0.0, 10.0, [classes[i]]) for i in range(5)]
    evaluation = [(ytid(), 12.0, 22.0, [classes[i], classes[i + 1]]) for i in range(6)]
    header = "Class_ID        ConfidenceofAnnotation(by Google)       Class_Label\n"
    files = {
        "groundtruth_weak_label_training_set.csv": lines(train),
        "groundtruth_weak_label_testing_set.csv": lines(test),
        "groundtruth_strong_label_testing_set.csv": "".join(
            f"{y}_{s:.3f}_{e:.3f}.wav\t0.5\t3.25\t{labs[0]}\n" for y, s, e, labs in test
        ).encode(),
        "groundtruth_weak_label_evaluation_set.csv": lines(evaluation),
        "groundtruth_strong_label_evaluation_set.csv": "".join(
            f"{y}_{s:.3f}_{e:.3f}.wav\t1\t2\t{labs[0]}\n" for y, s, e, labs in evaluation
        ).encode(),
        "sound_event_list_17_classes.txt": (
            header + "".join(f"/m/x{i}\t{5 + i % 5}\t{c}\n" for i, c in enumerate(classes))
        ).encode(),
    }
    return files, {"train": train, "test": test, "evaluation": evaluation}
