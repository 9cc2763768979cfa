"""Your own audio (``params.datasets.folder``): folder-per-class or a CSV of ``path,labels``.

Two layouts:

- **folder per class** (single-label, task ``keywords``): ``<path>/<class>/**/*.{wav,flac,mp3,ogg,...}``;
  the class is the first folder under ``path``.
- **CSV** (multi-label, task ``tagging``): ``labels_csv`` with columns ``path`` and ``labels``;
  labels separated by ``;`` (or ``,`` inside a quoted field); paths relative to ``path`` (or to
  the CSV's folder when ``path`` is unset) or absolute.

Any format libsndfile reads, any sample rate and channel count (``segment`` makes it mono
16 kHz). A file longer than ``clip_seconds`` becomes consecutive clips of ``clip_seconds``
(``<file>#<k>``; a tail shorter than a clip is dropped); a shorter file is one clip, whole.
Durations come from ``soundfile.info``; a file it cannot read is still listed (whole file) so
that ``segment`` reports it as unreadable.

Splits are deterministic: the SHA-256 of the file's relative path, as a number in [0, 1),
below ``test_fraction`` -> test, below ``test_fraction + val_fraction`` -> val, else train.
All clips of one file share its split.

``fetch`` copies nothing: it checks that the paths exist and writes
``data/raw/folder/manifest.json`` (every audio file with size and SHA-256, and the ``path`` /
``labels_csv`` used). When params leave ``path`` and ``labels_csv`` unset (they were given on
the command line, ``musicrep download folder --path DIR``), ``catalog`` uses the recorded ones.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import soundfile as sf

from pipeline.data.download import MANIFEST_FILE, write_manifest
from pipeline.data.registry import Catalog
from pipeline.data.sources._common import RealSource, audio_files
from pipeline.errors import UserError
from pipeline.paths import Layout

if TYPE_CHECKING:
    from pipeline.config import Params

log = logging.getLogger(__name__)


def split_for_path(rel_path: str, val_fraction: float, test_fraction: float) -> str:
    """Deterministic split from the SHA-256 of a relative path."""
    u = int(hashlib.sha256(rel_path.encode("utf-8")).hexdigest()[:15], 16) / 16 ** 15
    if u < test_fraction:
        return "test"
    if u < test_fraction + val_fraction:
        return "val"
    return "train"


def split_labels(text: str) -> list[str]:
    return [t.strip() for t in re.split(r"[;,]", text or "") if t.strip()]


def segment_times(duration: float | None, clip_seconds: float) -> list[tuple[float, float]]:
    """``(start_s, duration_s)`` of the clips of a file (NaN duration = whole file)."""
    if duration is None or not math.isfinite(duration) or duration <= clip_seconds:
        return [(0.0, math.nan)]
    n = int(math.floor(duration / clip_seconds + 1e-9))
    return [(k * clip_seconds, clip_seconds) for k in range(n)]


def recorded_settings(raw_dir: Path) -> dict:
    """``path``/``labels_csv`` recorded in ``raw_dir/manifest.json`` by the last ``fetch``."""
    try:
        data = json.loads((Path(raw_dir) / MANIFEST_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return {k: data.get(k) for k in ("path", "labels_csv") if data.get(k)}


class FolderSource(RealSource):
    """The user's audio, referenced in place."""

    def _cfg(self, params: "Params | None"):
        if params is None:
            raise UserError("the folder dataset needs params: set datasets.folder.path in params.yaml.")
        return params.datasets.folder

    def _paths(self, params: "Params | None", raw_dir: Path | None = None) -> tuple[Path | None, Path | None]:
        """``(audio folder, labels CSV)`` from params, else as recorded by the last fetch."""
        cfg = self._cfg(params)
        path, labels_csv = cfg.path, cfg.labels_csv
        if not path and not labels_csv and raw_dir is not None:
            recorded = recorded_settings(raw_dir)
            path, labels_csv = recorded.get("path"), recorded.get("labels_csv")
        root = Path(path).expanduser().resolve() if path else None
        table = Path(labels_csv).expanduser().resolve() if labels_csv else None
        if root is None and table is None:
            raise UserError("datasets.folder.path is not set; point it at your audio (one folder per class) "
                            "or set datasets.folder.labels_csv to a CSV of path,labels (e.g. `musicrep download folder --path /my/audio`).")
        if root is not None and not root.is_dir():
            raise UserError(f"datasets.folder.path {root} is not an existing folder; fix the path in params.yaml (or `musicrep download folder --path DIR`).")
        if table is not None and not table.is_file():
            raise UserError(f"datasets.folder.labels_csv {table} does not exist; fix the path in params.yaml or remove it to use folder-per-class.")
        return root, table

    def _entries(self, params: "Params", raw_dir: Path | None = None) -> tuple[Path, Path | None, Path | None, list[tuple[Path, str, list[str]]]]:
        """``(base folder, root, csv, [(file, relative path, labels)])`` for either layout."""
        root, table = self._paths(params, raw_dir)
        if table is not None:
            base = root or table.parent
            entries = []
            with open(table, newline="", encoding="utf-8-sig") as f:
                reader = csv.DictReader(f)
                if not reader.fieldnames or "path" not in reader.fieldnames or "labels" not in reader.fieldnames:
                    raise UserError(f"{table} needs a header with columns path,labels (labels separated by ';'); found {reader.fieldnames}.")
                for row in reader:
                    if not (row.get("path") or "").strip():
                        continue
                    p = Path(row["path"].strip()).expanduser()
                    full = p if p.is_absolute() else base / p
                    rel = full.relative_to(base).as_posix() if full.is_relative_to(base) else str(full)
                    entries.append((full, rel, split_labels(row.get("labels") or "")))
            return base, root, table, entries
        assert root is not None
        entries = []
        for cls in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            for path in audio_files(cls):
                entries.append((path, path.relative_to(root).as_posix(), [cls.name]))
        if not entries:
            raise UserError(f"{root} holds no audio in class folders; use {root}/<class>/<file>.wav (wav, flac, mp3, ogg) "
                            f"or set datasets.folder.labels_csv.")
        return root, root, None, entries

    def fetch(self, raw_dir: Path, params: "Params") -> None:
        base, root, table, entries = self._entries(params, raw_dir)
        files = sorted({full for full, _, _ in entries if full.is_file()})
        absent = sorted(str(full) for full, _, _ in entries if not full.is_file())
        if absent:
            log.warning("folder: %d listed files do not exist (e.g. %s)", len(absent), absent[0])
        Path(raw_dir).mkdir(parents=True, exist_ok=True)
        manifest = write_manifest(base, self.name, files=files, base=base, out=Path(raw_dir) / "manifest.json",
                                  extra={"root": str(base), "absent": absent, "path": str(root) if root else None,
                                         "labels_csv": str(table) if table else None})
        log.info("folder: %d audio files (%.1f MB) recorded in %s", manifest["n_files"], manifest["total_bytes"] / 1e6, Path(raw_dir) / "manifest.json")

    def catalog(self, raw_dir: Path, params: "Params") -> Catalog:
        cfg = self._cfg(params)
        base, _, _, entries = self._entries(params, raw_dir)
        rows, missing, vocab = [], [], set()
        for full, rel, labels in entries:
            vocab.update(labels)
            if not full.is_file():
                if os.path.lexists(full):  # a dangling link, link loop or FIFO: `segment` names the reason
                    rows.append({"clip_id": rel, "path": str(full), "split": split_for_path(rel, cfg.val_fraction, cfg.test_fraction),
                                 "labels": list(labels), "start_s": 0.0, "duration_s": None})
                else:
                    missing.append(rel)
                continue
            try:
                duration = sf.info(str(full)).duration
            except (sf.LibsndfileError, RuntimeError, TypeError, ValueError, OSError):
                duration = None  # listed whole; segment reports it as unreadable
            split = split_for_path(rel, cfg.val_fraction, cfg.test_fraction)
            times = segment_times(duration, cfg.clip_seconds)
            for k, (start, dur) in enumerate(times):
                rows.append({"clip_id": rel if len(times) == 1 else f"{rel}#{k}", "path": str(full), "split": split,
                             "labels": list(labels), "start_s": start, "duration_s": dur})
        return Catalog(clips=pd.DataFrame(rows, columns=["clip_id", "path", "split", "labels", "start_s", "duration_s"]),
                       labels=sorted(vocab), expected=len(rows) + len(missing), missing=missing)


def make_source(params: "Params | None" = None) -> FolderSource:
    multilabel = params is not None and bool(params.datasets.folder.labels_csv)
    if params is not None and not params.datasets.folder.path and not params.datasets.folder.labels_csv:
        # set at download time only (`musicrep download folder --labels-csv ...`): use what fetch recorded
        multilabel = bool(recorded_settings(Layout().raw("folder")).get("labels_csv"))
    clip = params.datasets.folder.clip_seconds if params is not None else 4.0
    return FolderSource(name="folder", kind="multilabel" if multilabel else "single",
                        task="tagging" if multilabel else "keywords", clip_seconds=clip)
