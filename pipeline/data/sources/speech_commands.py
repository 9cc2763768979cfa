"""Speech Commands v0.02 (Warden 2018): 105,829 one-second utterances of 35 words, 16 kHz wav.

Publisher: Google, ``http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz``
(CC BY 4.0), 2,428,923,189 bytes, SHA-256 ``af14739e...709868ff58`` (the value TensorFlow
Datasets and torchaudio pin for this URL; Google publishes no checksum itself). The archive is
extracted, safely, into ``data/raw/speech_commands/speech_commands_v0.02/``:
``<word>/<speaker>_nohash_<n>.wav``, ``validation_list.txt``, ``testing_list.txt``,
``_background_noise_/*.wav``, ``LICENSE``, ``README.md``.

**An extracted copy** is accepted in place of the tarball: ``--mirror DIR`` (``datasets.speech_commands.
mirror``) where ``DIR`` is the extracted folder (it holds ``validation_list.txt``) or holds
``speech_commands_v0.02/``, or the folder placed by hand at ``data/raw/speech_commands/speech_commands_v0.02/``.
No checksum covers it, so its file manifest is checked instead (:func:`check_extracted`): both list
files, every file they name, and ``_background_noise_/*.wav`` must be there, else one sentence names
the missing files and the fix; a word-recording count other than 105,829 is logged. A mirror copy is
hard-linked (copied across file systems) into the raw folder, so DVC tracks it as it tracks the tarball's.

Splits (docs/spec.md §4): the dataset's own ``validation_list.txt`` -> **val** and ``testing_list.txt``
-> **test**; every other word recording -> **train**. There are no ``_silence_``/``_unknown_``
classes: the label vocabulary is the 35 words. ``_background_noise_`` is kept on disk for the
robustness stage (:func:`background_noise_files`) and is not a clip.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from pipeline.core.errors import UserError
from pipeline.data.archives import extract_once
from pipeline.data.catalog import Catalog
from pipeline.data.download import DownloadState, RemoteFile, fetch_file, is_url, write_manifest
from pipeline.data.sources._common import RealSource, clip_seconds_from, read_complete, write_complete

if TYPE_CHECKING:
    from pipeline.config.params import Params

log = logging.getLogger(__name__)

ARCHIVE = RemoteFile(
    name="speech_commands_v0.02.tar.gz",
    url="http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz",
    sha256="af14739ee7dc311471de98f5f9d2c9191b18aedfe957f4a6ff791c709868ff58",
    size=2_428_923_189,
    note="SHA-256 and size as pinned by TensorFlow Datasets (checksums.tsv) and torchaudio (SPEECHCOMMANDS)",
)
EXTRACTED = "speech_commands_v0.02"
BACKGROUND = "_background_noise_"
LIST_FILES = ("validation_list.txt", "testing_list.txt")
EXPECTED_CLIPS = 105_829  # utterances in v0.02 (Warden 2018, table 1)
WORDS = [
    "backward",
    "bed",
    "bird",
    "cat",
    "dog",
    "down",
    "eight",
    "five",
    "follow",
    "forward",
    "four",
    "go",
    "happy",
    "house",
    "learn",
    "left",
    "marvin",
    "nine",
    "no",
    "off",
    "on",
    "one",
    "right",
    "seven",
    "sheila",
    "six",
    "stop",
    "three",
    "tree",
    "two",
    "up",
    "visual",
    "wow",
    "yes",
    "zero",
]


def _read_list(path: Path) -> set[str]:
    return {line.strip().removeprefix("./") for line in path.read_text().splitlines() if line.strip()}


def count_words(root: Path) -> int:
    """Word recordings (``<word>/*.wav``, not ``_background_noise_``) under an extracted copy."""
    return sum(1 for w in root.iterdir() if w.is_dir() and not w.name.startswith((".", "_")) for _ in w.glob("*.wav"))


def check_extracted(folder: Path) -> int:
    """Check an extracted copy against the publisher's manifest; return its number of word recordings.

    Raises:
        UserError: a list file, a file the lists name, or the background noise is absent.
    """
    folder = Path(folder)
    absent = [name for name in LIST_FILES if not (folder / name).is_file()]
    if not absent:
        listed = set().union(*(_read_list(folder / name) for name in LIST_FILES))
        absent = sorted(rel for rel in listed if not (folder / rel).is_file())
    if not any((folder / BACKGROUND).glob("*.wav")):
        absent.append(f"{BACKGROUND}/*.wav")
    if absent:
        shown = ", ".join(absent[:3]) + (f" and {len(absent) - 3} more" if len(absent) > 3 else "")
        raise UserError(
            f"the extracted Speech Commands folder {folder} lacks {len(absent)} of the publisher's files ({shown}); "
            f"extract {ARCHIVE.name} into it again (`tar -xzf {ARCHIVE.name} -C {folder}`) or pass the tarball instead."
        )
    n_clips = count_words(folder)
    if n_clips != EXPECTED_CLIPS:
        log.warning("speech_commands: %s holds %d word recordings, the publisher's archive %d", folder, n_clips, EXPECTED_CLIPS)
    return n_clips


def offered_folder(mirror: str | None, raw_dir: Path) -> Path | None:
    """The extracted copy to use instead of the tarball: a mirror folder that is one (or holds
    :data:`EXTRACTED`) without the tarball, or ``raw_dir/``:data:`EXTRACTED` placed by hand; else ``None``."""
    if mirror and not is_url(mirror) and not (Path(mirror).expanduser() / ARCHIVE.name).exists():
        base = Path(mirror).expanduser()
        found = next((d for d in (base, base / EXTRACTED) if (d / LIST_FILES[0]).is_file()), None)
        if found is not None:
            return found
    root = Path(raw_dir) / EXTRACTED
    by_hand = root.is_dir() and not (Path(raw_dir) / ARCHIVE.name).exists() and not DownloadState(raw_dir).extracted(ARCHIVE.name)
    return root if by_hand else None


def link_tree(source: Path, target: Path) -> None:
    """Hard-link (or copy, across file systems) every file of ``source`` into ``target``, atomically."""
    tmp = target.with_name(f".{target.name}.linking")
    shutil.rmtree(tmp, ignore_errors=True)

    def link(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(source, tmp, copy_function=link, symlinks=False)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)


def background_noise_files(raw_dir: Path) -> list[Path]:
    """The ``_background_noise_/*.wav`` recordings of a fetched Speech Commands (for robustness).

    Raises:
        UserError: Speech Commands has not been downloaded into ``raw_dir``.
    """
    folder = Path(raw_dir) / EXTRACTED / BACKGROUND
    files = sorted(folder.glob("*.wav")) if folder.is_dir() else []
    if not files:
        raise UserError(
            f"{folder} holds no background noise recordings; run `musicrep download speech_commands` first "
            f"(or choose another robustness.noise_source)."
        )
    return files


class SpeechCommandsSource(RealSource):
    """Speech Commands v0.02: fetch the tarball, catalog the 35 word folders."""

    def fetch(self, raw_dir: Path, params: Params) -> None:
        raw_dir = Path(raw_dir)
        folder = offered_folder(self.mirror(params), raw_dir)
        if folder is not None:
            self._adopt(folder, raw_dir)
            return
        state = DownloadState(raw_dir)
        archive = fetch_file(ARCHIVE, raw_dir, self.name, self.mirror(params), self.policy, state)
        assert archive is not None
        sha = state.entry(ARCHIVE.name)["sha256"]
        root = raw_dir / EXTRACTED
        done = read_complete(raw_dir)
        if done and done.get("archive_sha256") == sha and root.is_dir():
            log.info("speech_commands already fetched (%d clips)", done.get("n_clips", 0))
            return
        extract_once(archive, root, self.name, state)
        n_clips = count_words(root)
        if ARCHIVE.sha256 and sha == ARCHIVE.sha256 and n_clips != EXPECTED_CLIPS:
            log.warning("speech_commands archive holds %d clips, expected %d", n_clips, EXPECTED_CLIPS)
        write_manifest(raw_dir, self.name)
        write_complete(raw_dir, {"dataset": self.name, "archive": ARCHIVE.name, "archive_sha256": sha, "n_clips": n_clips})

    def _adopt(self, folder: Path, raw_dir: Path) -> None:
        """Use an extracted copy (:func:`offered_folder`) after checking its manifest."""
        n_clips = check_extracted(folder)
        root = raw_dir / EXTRACTED
        done = read_complete(raw_dir) or {}
        if root.is_dir() and done.get("extracted_copy") == str(folder) and done.get("n_clips") == n_clips:
            log.info("speech_commands already fetched from the extracted copy %s (%d clips)", folder, n_clips)
            return
        if folder.resolve() != root.resolve():
            log.info("speech_commands: linking the extracted copy %s into %s", folder, root)
            link_tree(folder, root)
        write_manifest(raw_dir, self.name)
        write_complete(raw_dir, {"dataset": self.name, "extracted_copy": str(folder), "n_clips": n_clips})
        log.info("speech_commands: using the extracted copy %s (%d word recordings; file manifest checked)", folder, n_clips)

    def catalog(self, raw_dir: Path, params: Params) -> Catalog:
        raw_dir = Path(raw_dir)
        root = raw_dir / EXTRACTED
        if not (root / "testing_list.txt").exists() or not (root / "validation_list.txt").exists():
            raise self.missing(raw_dir, f"Speech Commands v0.02 ({EXTRACTED}/ with testing_list.txt and validation_list.txt)")
        val, test = _read_list(root / "validation_list.txt"), _read_list(root / "testing_list.txt")
        rows, found, other = [], set(), []
        for folder in sorted(p for p in root.iterdir() if p.is_dir()):
            if folder.name.startswith("_") or folder.name.startswith("."):
                continue
            if folder.name not in WORDS:
                other.append(folder.name)
                continue
            for wav in sorted(folder.glob("*.wav")):
                rel = f"{folder.name}/{wav.name}"
                found.add(rel)
                split = "test" if rel in test else "val" if rel in val else "train"
                rows.append(
                    {
                        "clip_id": rel.removesuffix(".wav"),
                        "path": f"{EXTRACTED}/{rel}",
                        "split": split,
                        "labels": [folder.name],
                        "start_s": 0.0,
                        "duration_s": math.nan,
                    }
                )
        if other:
            log.warning("ignoring folders that are not among the 35 words: %s", ", ".join(other))
        missing = sorted((val | test) - found)
        if missing:
            log.warning("%d files named in the split lists are absent (e.g. %s)", len(missing), missing[0])
        done = read_complete(raw_dir) or {}
        expected = max(int(done.get("n_clips") or 0), len(found) + len(missing))
        return Catalog(
            clips=pd.DataFrame(rows, columns=["clip_id", "path", "split", "labels", "start_s", "duration_s"]),
            labels=list(WORDS),
            expected=expected,
            missing=[m.removesuffix(".wav") for m in missing],
            split_source="publisher lists: validation_list.txt -> val, testing_list.txt -> test, the rest train",
            vocabulary_source="the 35 words of Speech Commands v0.02 in alphabetical order (no _silence_/_unknown_)",
        )


def make_source(params: Params | None = None) -> SpeechCommandsSource:
    return SpeechCommandsSource(
        name="speech_commands", kind="single", task="keywords", clip_seconds=clip_seconds_from(params, "speech_commands", 1.0)
    )
