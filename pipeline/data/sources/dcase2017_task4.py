"""DCASE 2017 task 4 (large-scale weakly supervised sound event detection for smart cars).

17 classes of AudioSet clips (10 s YouTube excerpts). Metadata comes from the task's GitHub
repository ``ankitshah009/Task-4-Large-scale-weakly-supervised-sound-event-detection-for-smart-cars``
(fetched from raw.githubusercontent.com; tab-separated, no header):

============================================== =============================================
``groundtruth_weak_label_training_set.csv``    ``<ytid>_<start>_<end>.wav  start  end  label``
``groundtruth_weak_label_testing_set.csv``     same, for the "testing" subset
``groundtruth_strong_label_testing_set.csv``   ``<file>  onset  offset  label`` (event times)
``groundtruth_weak_label_evaluation_set.csv``  (``groundtruth_release/``) evaluation subset
``groundtruth_strong_label_evaluation_set.csv`` (``groundtruth_release/``) evaluation events
``sound_event_list_17_classes.txt``            the 17 classes
============================================== =============================================

The repository publishes no checksums. The MD5 and size of the two development weak-label files
and the class list are pinned from the DCASE toolbox ``dcase_util`` (its dataset package
list); the strong-label and evaluation files are not pinned: their SHA-256 is recorded at the
first download and checked afterwards.

**The audio is not redistributed** (YouTube). Users supply it: ``params.datasets.
dcase2017_task4.audio_dir`` (``musicrep download dcase2017_task4 --audio-dir DIR``), default
``data/raw/dcase2017_task4/audio``. Files are matched by YouTube id and start/end time in
their names, searched recursively, any audio extension: ``Y<ytid>_<start>_<end>.wav`` (the
naming of the task's download script), or the same without the ``Y``. Clips without audio are
listed in the catalog's ``missing`` list and coverage (found/expected) goes to the manifest.
``fetch`` records the audio folder in ``COMPLETE.json``, so a later ``segment`` run without
``--audio-dir`` finds it again.

Labels: clip-level multi-hot from the weak label files (the strong files are kept for
event-level evaluation). Splits (docs/spec.md §4): the "training" and "testing" subsets are merged;
for each class in vocabulary order, ``floor(10 %)`` of the merged clips carrying it are drawn
(``numpy.random.RandomState(123)`` over the sorted clip ids) and the union of the draws is
**val**; the rest is **train**; the "evaluation" subset is **test**. The draw uses the
metadata, not the audio found, so the split does not depend on which clips a user has.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from pipeline.core.errors import UserError
from pipeline.data.catalog import Catalog
from pipeline.data.download import DownloadState, RemoteFile, fetch_file, write_manifest
from pipeline.data.sources._common import RealSource, audio_files, clip_seconds_from, read_complete, write_complete

if TYPE_CHECKING:
    from pipeline.config.params import Params

log = logging.getLogger(__name__)

REPO_URL = (
    "https://raw.githubusercontent.com/ankitshah009/"
    "Task-4-Large-scale-weakly-supervised-sound-event-detection-for-smart-cars/master/"
)
_TOFU = "no published checksum: SHA-256 recorded at first download"
_DCASE_UTIL = "MD5 and size from dcase_util's DCASE2017_Task4tagging_DevelopmentSet package list"
WEAK_TRAIN = RemoteFile(
    "groundtruth_weak_label_training_set.csv",
    f"{REPO_URL}groundtruth_weak_label_training_set.csv",
    md5="1a98a76221fa5b5a85aaee9dbf02a2bf",
    size=2_942_866,
    note=_DCASE_UTIL,
)
WEAK_TEST = RemoteFile(
    "groundtruth_weak_label_testing_set.csv",
    f"{REPO_URL}groundtruth_weak_label_testing_set.csv",
    md5="b742b4d6517c82595e09a65d470ff811",
    size=34_199,
    note=_DCASE_UTIL,
)
# dcase_util lists 37,121 bytes / MD5 da6079ac7c196c679b450cefdd0e8700 for this file, but the revision in the
# repository index has 37,763 bytes (the file was edited on 2017-06-24): not pinned until checked.
STRONG_TEST = RemoteFile(
    "groundtruth_strong_label_testing_set.csv", f"{REPO_URL}groundtruth_strong_label_testing_set.csv", note=_TOFU
)
WEAK_EVAL = RemoteFile(
    "groundtruth_weak_label_evaluation_set.csv",
    f"{REPO_URL}groundtruth_release/groundtruth_weak_label_evaluation_set.csv",
    note=_TOFU,
)
STRONG_EVAL = RemoteFile(
    "groundtruth_strong_label_evaluation_set.csv",
    f"{REPO_URL}groundtruth_release/groundtruth_strong_label_evaluation_set.csv",
    note=_TOFU,
)
CLASS_LIST = RemoteFile(
    "sound_event_list_17_classes.txt",
    f"{REPO_URL}sound_event_list_17_classes.txt",
    md5="0312c45c1ab7fc8403dfedaafdc8519f",
    size=491,
    note=_DCASE_UTIL,
)
FILES = [WEAK_TRAIN, WEAK_TEST, STRONG_TEST, WEAK_EVAL, STRONG_EVAL, CLASS_LIST]
CLASSES = [
    "Train horn",
    "Air horn, truck horn",
    "Car alarm",
    "Reversing beeps",
    "Bicycle",
    "Skateboard",
    "Ambulance (siren)",
    "Fire engine, fire truck (siren)",
    "Civil defense siren",
    "Police car (siren)",
    "Screaming",
    "Car",
    "Car passing by",
    "Bus",
    "Truck",
    "Motorcycle",
    "Train",
]
VAL_FRACTION = 0.1
VAL_SEED = 123
SPLIT_SOURCE = (
    f"rule (docs/spec.md §4): per class {VAL_FRACTION:.0%} of the development clips to val (RandomState({VAL_SEED})), "
    "the rest train; the publisher's evaluation set is test"
)
AUDIO_SUBDIR = "audio"

Key = tuple[str, str, str]  # (youtube id, start "%.3f", end "%.3f")


def parse_clip_name(stem: str) -> list[Key]:
    """Candidate keys for a file stem ``[Y]<ytid>_<start>_<end>`` (best first; empty if unparsable)."""
    parts = stem.rsplit("_", 2)
    if len(parts) != 3:
        return []
    ytid, start, end = parts
    try:
        times = (f"{float(start):.3f}", f"{float(end):.3f}")
    except ValueError:
        return []
    keys = []
    if ytid.startswith("Y") and len(ytid) > 1:
        keys.append((ytid[1:], *times))
    keys.append((ytid, *times))
    return keys


def clip_id(key: Key) -> str:
    return f"Y{key[0]}_{key[1]}_{key[2]}"


def read_weak(path: Path) -> dict[Key, set[str]]:
    """Weak label file -> ``{key: {labels}}`` (one line per clip and label)."""
    out: dict[Key, set[str]] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        fields = line.rstrip("\r").split("\t")
        if len(fields) < 4:
            raise UserError(
                f"{path} line {n} has {len(fields)} tab-separated fields, not 4; delete it and re-run `musicrep download dcase2017_task4`."
            )
        keys = parse_clip_name(Path(fields[0]).stem)
        if not keys:
            raise UserError(
                f"{path} line {n}: cannot read a clip name from {fields[0]!r}; delete it and re-run `musicrep download dcase2017_task4`."
            )
        out.setdefault(keys[-1], set()).add(fields[3].strip())
    return out


def validation_keys(
    dev: dict[Key, set[str]], classes: list[str], fraction: float = VAL_FRACTION, seed: int = VAL_SEED
) -> set[Key]:
    """Per class, ``floor(fraction * n)`` random clips (seeded); the union is the validation set."""
    rng = np.random.RandomState(seed)
    ordered = sorted(dev)
    val: set[Key] = set()
    for cls in classes:
        members = [k for k in ordered if cls in dev[k]]
        n = int(math.floor(fraction * len(members)))
        if n:
            val.update(members[i] for i in rng.choice(len(members), size=n, replace=False))
    return val


class DCASE2017Task4Source(RealSource):
    """DCASE 2017 task 4: fetch the metadata, match user-supplied audio by YouTube id and times."""

    def audio_dir(self, raw_dir: Path, params: Params | None) -> Path:
        """``audio_dir`` from params, else the one recorded by the last fetch, else ``raw_dir/audio``."""
        s = self.settings(params)
        given = getattr(s, "audio_dir", None) if s is not None else None
        if not given:
            given = (read_complete(raw_dir) or {}).get("audio_dir")
        return Path(os.path.expanduser(given)).resolve() if given else Path(raw_dir) / AUDIO_SUBDIR

    def fetch(self, raw_dir: Path, params: Params) -> None:
        raw_dir = Path(raw_dir)
        state = DownloadState(raw_dir)
        mirror = self.mirror(params)
        for remote in FILES:
            fetch_file(remote, raw_dir, self.name, mirror, self.policy, state)
        audio = self.audio_dir(raw_dir, params)
        s = self.settings(params)
        if getattr(s, "audio_dir", None) and not audio.is_dir():
            raise UserError(
                f"datasets.dcase2017_task4.audio_dir {audio} does not exist; pass the folder holding the "
                f"Y<ytid>_<start>_<end>.wav clips (`musicrep download dcase2017_task4 --audio-dir DIR`)."
            )
        write_manifest(raw_dir, self.name, files=[raw_dir / f.name for f in FILES])
        write_complete(
            raw_dir,
            {
                "dataset": self.name,
                "metadata": {f.name: state.entry(f.name)["sha256"] for f in FILES},
                "audio_dir": str(audio) if audio != raw_dir / AUDIO_SUBDIR else None,
            },
        )
        if audio.is_dir():
            catalog = self.catalog(raw_dir, params, require_audio=False)
            log.info("dcase2017_task4: audio for %d of %d clips found in %s", len(catalog.clips), catalog.expected, audio)
        else:
            log.warning(
                "dcase2017_task4: metadata fetched; the audio is not redistributed: put the clips in %s "
                "or set datasets.dcase2017_task4.audio_dir",
                audio,
            )

    def catalog(self, raw_dir: Path, params: Params, require_audio: bool = True) -> Catalog:
        raw_dir = Path(raw_dir)
        absent = [f.name for f in (WEAK_TRAIN, WEAK_TEST, WEAK_EVAL) if not (raw_dir / f.name).exists()]
        if absent:
            raise self.missing(raw_dir, f"DCASE 2017 task 4 metadata ({', '.join(absent)})")
        classes, vocabulary_source = self._classes(raw_dir)
        train, test, evaluation = (read_weak(raw_dir / f.name) for f in (WEAK_TRAIN, WEAK_TEST, WEAK_EVAL))
        dev: dict[Key, set[str]] = {}
        for table in (train, test):
            for key, labels in table.items():
                dev.setdefault(key, set()).update(labels)
        val = validation_keys(dev, classes)
        split_of = {**{k: ("val" if k in val else "train") for k in dev}, **{k: "test" for k in evaluation}}
        labels_of = {**dev, **evaluation}
        audio_root = self.audio_dir(raw_dir, params)
        found: dict[Key, Path] = {}
        if audio_root.is_dir():
            for path in audio_files(audio_root):
                key = next((k for k in parse_clip_name(path.stem) if k in split_of), None)
                if key is None:
                    continue
                if key in found:
                    log.warning("dcase2017_task4: %s duplicates %s; keeping the first", path, found[key])
                    continue
                found[key] = path
        elif require_audio:
            raise UserError(
                f"no DCASE 2017 task 4 audio at {audio_root}: the clips come from YouTube and are not redistributed; "
                f"put files named Y<ytid>_<start>_<end>.wav there or pass `--audio-dir DIR` (datasets.dcase2017_task4.audio_dir)."
            )
        rows, missing = [], []
        for key in sorted(split_of):
            if key not in found:
                missing.append(clip_id(key))
                continue
            rows.append(
                {
                    "clip_id": clip_id(key),
                    "path": str(found[key]),
                    "split": split_of[key],
                    "labels": [c for c in classes if c in labels_of[key]],
                    "start_s": 0.0,
                    "duration_s": math.nan,
                }
            )
        if not rows and require_audio:
            raise UserError(
                f"none of the {len(split_of)} DCASE 2017 task 4 clips was found in {audio_root}; name the files "
                f"Y<ytid>_<start>_<end>.wav (e.g. Y{missing[0][1:]}.wav) or pass `--audio-dir DIR`."
            )
        unknown = sorted({lab for labs in labels_of.values() for lab in labs} - set(classes))
        if unknown:
            log.warning("dcase2017_task4: labels outside the 17 classes ignored: %s", unknown)
        return Catalog(
            clips=pd.DataFrame(rows, columns=["clip_id", "path", "split", "labels", "start_s", "duration_s"]),
            labels=classes,
            expected=len(split_of),
            missing=missing,
            split_source=SPLIT_SOURCE,
            vocabulary_source=vocabulary_source,
        )

    def _classes(self, raw_dir: Path) -> tuple[list[str], str]:
        """Class order of ``sound_event_list_17_classes.txt`` (third column) when present; with its source in words."""
        path = raw_dir / CLASS_LIST.name
        builtin = "the 17 classes built into musicrep (sound_event_list_17_classes.txt absent or unusable)"
        if not path.exists():
            return list(CLASSES), builtin
        names = []
        for line in path.read_text(encoding="utf-8").splitlines()[1:]:
            fields = line.rstrip("\r").split("\t")
            if len(fields) >= 3 and fields[2].strip():
                names.append(fields[2].strip())
        if sorted(names) != sorted(CLASSES):
            log.warning("dcase2017_task4: %s does not list the 17 known classes; using the built-in list", path.name)
            return list(CLASSES), builtin
        return names, f"publisher list: {CLASS_LIST.name}"


def make_source(params: Params | None = None) -> DCASE2017Task4Source:
    return DCASE2017Task4Source(
        name="dcase2017_task4", kind="multilabel", task="events", clip_seconds=clip_seconds_from(params, "dcase2017_task4", 10.0)
    )
