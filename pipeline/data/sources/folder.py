"""Your own audio: ``datasets.folder`` or any named own dataset (``datasets.<name>: {kind: folder}``).

Every own dataset has its own ``data/raw/<name>``, ``data/segments/<name>``, ... and MLflow
experiment ``<name>``; ``folder`` is simply the own dataset called ``folder``. Two layouts:

- **folder per class**: ``<path>/<class>/**/*.{wav,flac,mp3,ogg,...}``; the class is the first
  folder under ``path``; single-label unless ``task: multilabel``.
- **CSV**: ``labels_csv`` with columns ``path`` and ``labels`` (or ``label``); labels separated
  by ``;`` (or ``,`` inside a quoted field); paths relative to ``path`` (or to the CSV's folder
  when ``path`` is unset) or absolute. Optional columns: ``split`` (train / val or valid /
  test), ``fold`` (with ``splits: {train: [...], val: [...], test: [...]}``), a group column.

**Task kind** (``task``): ``single`` (softmax, accuracy, confusion matrix) or ``multilabel``
(sigmoid, ROC-AUC / PR-AUC); the earlier spellings ``single_label``/``multi_label`` still work
(:mod:`pipeline.core.task_kinds`). Unset: multilabel when any CSV row has more than one label,
else single (logged).

**Splits** (``split``; ``split_method`` in ``report.json`` / ``meta.json``):

- ``column``: the CSV's ``split_column``, clip for clip;
- ``fold``: the CSV's ``fold_column`` mapped through ``splits`` (folds listed nowhere are
  left out and counted);
- ``hash``: the SHA-256 of the *group* key as a number in [0, 1): below ``test_fraction`` ->
  test, below ``test_fraction + val_fraction`` -> val, else train. The group is the
  ``group_column`` value, the first group of ``group_regex`` searched in the path relative
  to the dataset root, or (no rule) the relative path itself. Relative paths make the split
  independent of how paths are written and of where the folder lives. With at least three
  groups, a split the hash left empty gets one group (the nearest in hash value) from the
  split holding the most groups, so train, val and test are all non-empty (``repaired``).
- ``auto`` (default): ``fold`` when ``splits`` is set, else ``column`` when the CSV has the
  split column, else ``hash``.

When no group rule is given and the file names look like they carry a speaker or source id
(a ``_``- or ``-``-separated token shared by several files that is not the label), one
warning names ``group_regex`` and the count of such ids that cross splits.

**Clips** (``clip_seconds``, ``tail``): a file longer than ``clip_seconds`` becomes consecutive
clips ``<file>#0``, ``<file>#1``, ...; the rest after the last whole clip is kept as a shorter
clip (``tail: keep``, when at least ``segment.min_seconds``), as a full clip ending at the
file's end (``overlap``), or dropped (``drop``). A shorter file is one clip, whole. All clips
of a file share its split and group. Durations come from ``soundfile.info`` and go into the
catalog so that ``segment`` reports the fraction of audio seconds used. A file it cannot read
is still listed (whole file) so that ``segment`` reports it as unreadable.

``fetch`` copies nothing: it checks that the paths exist and writes
``data/raw/<name>/manifest.json`` (every audio file with size and SHA-256, and the ``path`` /
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
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import soundfile as sf

from pipeline.core.errors import UserError
from pipeline.core.io_utils import sha256_file
from pipeline.core.paths import Layout
from pipeline.core.task_kinds import MULTILABEL, SINGLE, kind_of
from pipeline.data.catalog import Catalog
from pipeline.data.download import MANIFEST_FILE, write_manifest
from pipeline.data.sources._common import RealSource, audio_files

if TYPE_CHECKING:
    from pipeline.config.params import FolderDatasetParams, Params

log = logging.getLogger(__name__)
SPLITS = ("train", "val", "test")
SPLIT_NAMES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "dev": "val",
    "test": "test",
    "testing": "test",
}


def split_for_path(rel_path: str, val_fraction: float, test_fraction: float) -> str:
    """Deterministic split from the SHA-256 of a relative path (or any group key)."""
    return _split_of(_unit(rel_path), val_fraction, test_fraction)


def _unit(key: str) -> float:
    return int(hashlib.sha256(key.encode("utf-8")).hexdigest()[:15], 16) / 16**15


def _split_of(u: float, val_fraction: float, test_fraction: float) -> str:
    if u < test_fraction:
        return "test"
    if u < test_fraction + val_fraction:
        return "val"
    return "train"


def split_labels(text: str) -> list[str]:
    return [t.strip() for t in re.split(r"[;,]", text or "") if t.strip()]


def segment_times(
    duration: float | None, clip_seconds: float, tail: str = "keep", min_seconds: float = 0.0
) -> list[tuple[float, float]]:
    """``(start_s, duration_s)`` of the clips of a file (NaN duration = to the end of the file).

    Consecutive ``clip_seconds`` windows; the rest after the last one is a shorter clip
    (``keep``, when at least ``min_seconds``), a full window ending at the file's end
    (``overlap``) or left out (``drop``).
    """
    if duration is None or not math.isfinite(duration) or duration <= clip_seconds + 1e-6:
        return [(0.0, math.nan)]
    n = int(math.floor(duration / clip_seconds + 1e-9))
    times = [(k * clip_seconds, clip_seconds) for k in range(n)]
    rest = duration - n * clip_seconds
    if rest > 1e-3:
        if tail == "keep" and rest >= min_seconds:
            times.append((n * clip_seconds, math.nan))
        elif tail == "overlap":
            times.append((duration - clip_seconds, clip_seconds))
    return times


def recorded_settings(raw_dir: Path) -> dict:
    """``path``/``labels_csv`` recorded in ``raw_dir/manifest.json`` by the last ``fetch``."""
    try:
        data = json.loads((Path(raw_dir) / MANIFEST_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return {k: data.get(k) for k in ("path", "labels_csv") if data.get(k)}


@dataclass
class Entry:
    """One listed audio file: absolute path, path relative to the dataset root, labels, CSV row."""

    full: Path
    rel: str
    labels: list[str]
    row: dict[str, str] = field(default_factory=dict)
    line: int = 0


def _relative(full: Path, base: Path) -> str | None:
    """``full`` relative to ``base`` (POSIX), resolving symlinked parent folders; ``None`` if outside."""
    full = Path(os.path.normpath(full))
    if full.is_relative_to(base):
        return full.relative_to(base).as_posix()
    try:
        real = full.parent.resolve() / full.name
    except OSError:
        return None
    return real.relative_to(base).as_posix() if real.is_relative_to(base) else None


def _fold_key(value: Any) -> str:
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        return text
    return str(int(number)) if number.is_integer() else text


def suspected_group(entries: list[Entry]) -> dict | None:
    """A file-name token that looks like a speaker/source id, or ``None``.

    The names' stems are cut at ``_`` (else ``-``); among the token positions before the last
    (usually a take index), one whose values repeat (2 <= ids <= files / 2) and are not simply
    the label is a candidate; the one with the most distinct values wins.
    """
    if len(entries) < 6:
        return None
    for sep in ("_", "-"):
        tokens = [Path(e.rel).stem.split(sep) for e in entries]
        width = Counter(len(t) for t in tokens).most_common(1)[0][0]
        if width < 2:
            continue
        rows = [(t, e) for t, e in zip(tokens, entries) if len(t) == width]
        if len(rows) < max(6, len(entries) // 2):
            continue
        best = None
        for i in range(width - 1):
            values = [t[i] for t, _ in rows]
            distinct = set(values)
            if not 2 <= len(distinct) <= len(values) / 2:
                continue
            labels_of: dict[str, set] = defaultdict(set)
            for v, (_, e) in zip(values, rows):
                labels_of[v].add(tuple(e.labels))
            if all(len(s) == 1 for s in labels_of.values()) and len({next(iter(s)) for s in labels_of.values()}) == len(distinct):
                continue  # the token is the label (e.g. FSDD's digit)
            if best is None or len(distinct) > best["n_ids"]:
                s = re.escape(sep)
                regex = "(?:^|/)" + f"[^/{s}]+{s}" * i + f"([^/{s}]+){s}"
                best = {
                    "position": i,
                    "separator": sep,
                    "n_ids": len(distinct),
                    "n_files": len(rows),
                    "example": rows[0][1].rel,
                    "example_id": values[0],
                    "group_regex": regex,
                }
        if best is not None:
            return best
    return None


class FolderSource(RealSource):
    """The user's audio, referenced in place, under the dataset name ``name``."""

    def _cfg(self, params: Params | None) -> FolderDatasetParams:
        if params is None:
            raise UserError(f"the {self.name} dataset needs params: set datasets.{self.name}.path in params.yaml.")
        cfg = params.datasets.folder_settings(self.name)
        if cfg is None:
            raise UserError(f"datasets.{self.name} is not in params.yaml; add datasets.{self.name}: {{kind: folder, path: DIR}}.")
        return cfg

    def _paths(self, params: Params | None, raw_dir: Path | None = None) -> tuple[Path | None, Path | None]:
        """``(audio folder, labels CSV)`` from params, else as recorded by the last fetch."""
        cfg, key = self._cfg(params), f"datasets.{self.name}"
        path, labels_csv = cfg.path, cfg.labels_csv
        if not path and not labels_csv and raw_dir is not None:
            recorded = recorded_settings(raw_dir)
            path, labels_csv = recorded.get("path"), recorded.get("labels_csv")
        root = Path(path).expanduser().resolve() if path else None
        table = Path(labels_csv).expanduser().resolve() if labels_csv else None
        if root is None and table is None:
            raise UserError(
                f"{key}.path is not set; point it at your audio (one folder per class) "
                f"or set {key}.labels_csv to a CSV of path,labels (e.g. `musicrep download {self.name} --path /my/audio`)."
            )
        if root is not None and not root.is_dir():
            raise UserError(
                f"{key}.path {root} is not an existing folder; fix the path in params.yaml (or `musicrep download {self.name} --path DIR`)."
            )
        if table is not None and not table.is_file():
            raise UserError(
                f"{key}.labels_csv {table} does not exist; fix the path in params.yaml or remove it to use folder-per-class."
            )
        return root, table

    def _entries(
        self, params: Params, raw_dir: Path | None = None
    ) -> tuple[Path, Path | None, Path | None, list[Entry], list[str]]:
        """``(base folder, root, csv, entries, CSV columns)`` for either layout."""
        root, table = self._paths(params, raw_dir)
        if table is not None:
            base = root or table.parent
            entries, outside = [], 0
            with open(table, newline="", encoding="utf-8-sig") as f:
                reader = csv.DictReader(f)
                columns = [c.strip() for c in reader.fieldnames or []]
                reader.fieldnames = columns
                label_col = "labels" if "labels" in columns else "label" if "label" in columns else None
                if "path" not in columns or label_col is None:
                    raise UserError(
                        f"{table} needs a header with columns path,labels (labels separated by ';'); found {columns}."
                    )
                for line, row in enumerate(reader, start=2):
                    if not (row.get("path") or "").strip():
                        continue
                    p = Path(row["path"].strip()).expanduser()
                    full = Path(os.path.normpath(p if p.is_absolute() else base / p))
                    rel = _relative(full, base)
                    if rel is None:
                        outside += 1
                        rel = full.as_posix()
                    entries.append(
                        Entry(
                            full,
                            rel,
                            split_labels(row.get(label_col) or ""),
                            {k: (v or "").strip() for k, v in row.items() if isinstance(k, str)},
                            line,
                        )
                    )
            hashed = params is None or self._method(self._cfg(params), columns, table) == "hash"
            if outside and hashed:  # a split given by a column (or folds) does not depend on the paths
                log.warning(
                    "%s: %d files of %s lie outside %s; their split is hashed from the absolute path and changes if "
                    "they move; set datasets.%s.path to a folder holding them all.",
                    self.name,
                    outside,
                    table,
                    base,
                    self.name,
                )
            return base, root, table, entries, columns
        assert root is not None
        entries = []
        for cls in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            for path in audio_files(cls):
                entries.append(Entry(path, path.relative_to(root).as_posix(), [cls.name]))
        if not entries:
            raise UserError(
                f"{root} holds no audio in class folders; use {root}/<class>/<file>.wav (wav, flac, mp3, ogg) "
                f"or set datasets.{self.name}.labels_csv."
            )
        return root, root, None, entries, []

    def fetch(self, raw_dir: Path, params: Params) -> None:
        base, root, table, entries, _ = self._entries(params, raw_dir)
        files = sorted({e.full for e in entries if e.full.is_file()})
        absent = sorted(str(e.full) for e in entries if not e.full.is_file())
        if absent:
            log.warning("%s: %d listed files do not exist (e.g. %s)", self.name, len(absent), absent[0])
        Path(raw_dir).mkdir(parents=True, exist_ok=True)
        manifest = write_manifest(
            base,
            self.name,
            files=files,
            base=base,
            out=Path(raw_dir) / "manifest.json",
            extra={
                "root": str(base),
                "absent": absent,
                "path": str(root) if root else None,
                "labels_csv": str(table) if table else None,
                # what the catalog depends on, so that a changed CSV or split rule changes
                # data/raw/<name> and DVC re-runs `segment`
                "labels_csv_sha256": sha256_file(table) if table else None,
                "settings": self._cfg(params).model_dump(mode="json", exclude={"path", "labels_csv"}),
            },
        )
        log.info(
            "%s: %d audio files (%.1f MB) recorded in %s",
            self.name,
            manifest["n_files"],
            manifest["total_bytes"] / 1e6,
            Path(raw_dir) / "manifest.json",
        )

    # ------------------------------------------------------------------ task type
    def _task(self, cfg: FolderDatasetParams, entries: list[Entry], table: Path | None) -> str:
        """:data:`SINGLE` or :data:`MULTILABEL`: as configured, else inferred from the labels (logged)."""
        multi_rows = [e for e in entries if len(e.labels) > 1]
        if cfg.task is not None:
            task = cfg.task
            if task == SINGLE and multi_rows:
                e = multi_rows[0]
                raise UserError(
                    f"datasets.{self.name}.task is single but {len(multi_rows)} rows of {table} have several "
                    f"labels (e.g. line {e.line}: {';'.join(e.labels)}); set task: multilabel or give one label per row."
                )
        elif table is None:
            task = SINGLE
        else:
            task = kind_of(bool(multi_rows))
            log.info(
                "%s: task inferred as %s (%s); set datasets.%s.task to override.",
                self.name,
                task,
                f"{len(multi_rows)} rows have more than one label" if multi_rows else "every row has one label",
                self.name,
            )
        if task == SINGLE:
            unlabelled = [e for e in entries if not e.labels]
            if unlabelled:
                e = unlabelled[0]
                raise UserError(
                    f"{self.name}: {len(unlabelled)} rows of {table} have no label (e.g. line {e.line}: {e.rel}); "
                    f"a single-label dataset needs one label per row, so label or remove them."
                )
        return task

    # ------------------------------------------------------------------ splits
    def _groups(
        self, cfg: FolderDatasetParams, entries: list[Entry], columns: list[str], table: Path | None
    ) -> tuple[list[str], dict]:
        """Group key of every entry and a description of the rule."""
        if cfg.group_column and cfg.group_regex:
            raise UserError(f"datasets.{self.name} sets both group_column and group_regex; keep one of them.")
        if cfg.group_column:
            if table is None:
                raise UserError(
                    f"datasets.{self.name}.group_column needs labels_csv (a CSV with that column); use group_regex for folder-per-class data."
                )
            if cfg.group_column not in columns:
                raise UserError(
                    f"{table} has no column {cfg.group_column!r} (datasets.{self.name}.group_column); columns: {', '.join(columns)}."
                )
            keys = [e.row.get(cfg.group_column) or e.rel for e in entries]
            empty = sum(1 for e in entries if not e.row.get(cfg.group_column))
            return keys, {"rule": f"group_column {cfg.group_column!r}", "ungrouped": empty}
        if cfg.group_regex:
            rx = re.compile(cfg.group_regex)
            keys, unmatched = [], 0
            for e in entries:
                m = rx.search(e.rel)
                if m is None:
                    unmatched += 1
                    keys.append(e.rel)
                else:
                    keys.append(m.group(1) if rx.groups else m.group(0))
            if unmatched:
                log.warning(
                    "%s: %d of %d files do not match group_regex %r; each of them is its own group.",
                    self.name,
                    unmatched,
                    len(entries),
                    cfg.group_regex,
                )
            return keys, {"rule": f"group_regex {cfg.group_regex!r}", "ungrouped": unmatched}
        return [e.rel for e in entries], {"rule": None, "ungrouped": 0}

    def _method(self, cfg: FolderDatasetParams, columns: list[str], table: Path | None) -> str:
        key = f"datasets.{self.name}"
        method = cfg.split
        if method == "auto":
            method = "fold" if cfg.splits else "column" if cfg.split_column in columns else "hash"
        if method in ("column", "fold") and table is None:
            raise UserError(
                f"{key}.split is {method} but the dataset has no labels_csv; give a CSV with a "
                f"{cfg.split_column if method == 'column' else cfg.fold_column} column or use split: hash."
            )
        if method == "column" and cfg.split_column not in columns:
            raise UserError(f"{table} has no column {cfg.split_column!r} ({key}.split_column); columns: {', '.join(columns)}.")
        if method == "fold":
            if not cfg.splits:
                raise UserError(
                    f"{key}.split is fold but {key}.splits is not set; add e.g. splits: {{train: [1, 2, 3], val: [4], test: [5]}}."
                )
            if cfg.fold_column not in columns:
                raise UserError(
                    f"{table} has no column {cfg.fold_column!r} ({key}.fold_column, needed by {key}.splits); columns: {', '.join(columns)}."
                )
        return method

    def _assign(
        self, cfg: FolderDatasetParams, entries: list[Entry], columns: list[str], table: Path | None
    ) -> tuple[list[str | None], dict]:
        """Split of every entry (``None`` = left out) and the ``split`` block of the report."""
        method = self._method(cfg, columns, table)
        keys, group_info = self._groups(cfg, entries, columns, table)
        info: dict[str, Any] = {
            "split_method": method,
            "group_rule": group_info["rule"],
            "ungrouped_files": group_info["ungrouped"],
        }
        splits: list[str | None]
        if method == "column":
            splits = []
            for e in entries:
                value = e.row.get(cfg.split_column, "")
                name = SPLIT_NAMES.get(value.lower())
                if name is None:
                    raise UserError(f"{table} line {e.line} has {cfg.split_column}={value!r}; use train, val (or valid) or test.")
                splits.append(name)
            info["split_method"] = f"column {cfg.split_column!r}"
        elif method == "fold":
            fold_to: dict[str, str] = {}
            for split, folds in (cfg.splits or {}).items():
                for fold in folds:
                    other = fold_to.setdefault(_fold_key(fold), split)
                    if other != split:
                        raise UserError(
                            f"fold {fold!r} is listed under both {other} and {split} in datasets.{self.name}.splits; list it once."
                        )
            splits = [fold_to.get(_fold_key(e.row.get(cfg.fold_column, ""))) for e in entries]
            left_out = Counter(_fold_key(e.row.get(cfg.fold_column, "")) for e, s in zip(entries, splits) if s is None)
            if left_out:
                log.warning(
                    "%s: %d files are in folds %s listed in no split of datasets.%s.splits; they are left out.",
                    self.name,
                    sum(left_out.values()),
                    ", ".join(sorted(left_out)),
                    self.name,
                )
            info["split_method"] = f"fold column {cfg.fold_column!r}: " + "; ".join(
                f"{s} {list(v)}" for s, v in (cfg.splits or {}).items()
            )
            info["left_out_files"] = int(sum(left_out.values()))
        else:
            units = {k: _unit(k) for k in set(keys)}
            of_group = {k: _split_of(u, cfg.val_fraction, cfg.test_fraction) for k, u in units.items()}
            info["repaired"] = _repair(of_group, units, cfg.val_fraction, cfg.test_fraction)
            splits = [of_group[k] for k in keys]
            info["split_method"] = (
                f"hash of {group_info['rule'] or 'the relative path'} "
                f"(test_fraction {cfg.test_fraction}, val_fraction {cfg.val_fraction})"
            )
        info["n_groups"] = len(set(keys))
        info["groups_per_split"] = {s: len({k for k, x in zip(keys, splits) if x == s}) for s in SPLITS}
        info["groups_crossing_splits"] = _crossing(keys, splits) if group_info["rule"] else None
        if group_info["rule"] is None:
            suspect = suspected_group(entries)
            if suspect is not None:
                ids = [Path(e.rel).stem.split(suspect["separator"]) for e in entries]
                pos = suspect["position"]
                id_keys = [t[pos] if len(t) > pos + 1 else e.rel for t, e in zip(ids, entries)]
                suspect["crossing_splits"] = _crossing(id_keys, splits)
                info["suspected_group"] = suspect
                if method == "hash":
                    log.warning(
                        "%s: file names look like they carry a speaker/source id (e.g. %r -> %r, %d ids), and %d of those ids "
                        "fall in more than one split; set datasets.%s.group_regex (e.g. %r) or group_column to keep each in one split.",
                        self.name,
                        suspect["example"],
                        suspect["example_id"],
                        suspect["n_ids"],
                        suspect["crossing_splits"],
                        self.name,
                        suspect["group_regex"],
                    )
        return splits, info

    def catalog(self, raw_dir: Path, params: Params) -> Catalog:
        cfg = self._cfg(params)
        base, _, table, entries, columns = self._entries(params, raw_dir)
        task = self._task(cfg, entries, table)
        splits, info = self._assign(cfg, entries, columns, table)
        info["task"] = task
        rows, missing, vocab, durations = [], [], set(), {}
        for e, split in zip(entries, splits):
            if split is None:
                continue
            vocab.update(e.labels)
            if not e.full.is_file():
                if os.path.lexists(e.full):  # a dangling link, link loop or FIFO: `segment` names the reason
                    rows.append(
                        {
                            "clip_id": e.rel,
                            "path": str(e.full),
                            "split": split,
                            "labels": list(e.labels),
                            "start_s": 0.0,
                            "duration_s": None,
                        }
                    )
                else:
                    missing.append(e.rel)
                continue
            try:
                duration = sf.info(str(e.full)).duration
            except (sf.LibsndfileError, RuntimeError, TypeError, ValueError, OSError):
                duration = None  # listed whole; segment reports it as unreadable
            if duration is not None and math.isfinite(duration):
                durations[str(e.full)] = float(duration)
            times = segment_times(duration, cfg.clip_seconds, cfg.tail, params.segment.min_seconds)
            for k, (start, dur) in enumerate(times):
                rows.append(
                    {
                        "clip_id": e.rel if len(times) == 1 else f"{e.rel}#{k}",
                        "path": str(e.full),
                        "split": split,
                        "labels": list(e.labels),
                        "start_s": start,
                        "duration_s": dur,
                    }
                )
        clips = pd.DataFrame(rows, columns=["clip_id", "path", "split", "labels", "start_s", "duration_s"])
        if len(clips) and clips["clip_id"].duplicated().any():
            dup = clips.loc[clips["clip_id"].duplicated(), "clip_id"].iloc[0]
            raise UserError(f"{table or base} lists {dup!r} more than once; list each file once.")
        for s in SPLITS:
            if len(clips) and not (clips["split"] == s).any():
                log.warning(
                    "%s: the %s split is empty (%s); see datasets.%s.split in docs/datasets.md.",
                    self.name,
                    s,
                    info["split_method"],
                    self.name,
                )
        log.info(
            "%s: split by %s; groups per split %s%s",
            self.name,
            info["split_method"],
            info["groups_per_split"],
            f", {info['groups_crossing_splits']} groups cross splits" if info["groups_crossing_splits"] is not None else "",
        )
        return Catalog(
            clips=clips,
            labels=sorted(vocab),
            expected=len(rows) + len(missing),
            missing=missing,
            kind=task,
            durations=durations,
            info=info,
            split_source=f"own data: {info['split_method']}",
            vocabulary_source=f"own data: the labels of {'the CSV' if table else 'the class folders'}, alphabetical",
        )


def _crossing(keys: list[str], splits: list[str | None]) -> int:
    seen: dict[str, set] = defaultdict(set)
    for k, s in zip(keys, splits):
        if s is not None:
            seen[k].add(s)
    return sum(1 for v in seen.values() if len(v) > 1)


def _repair(of_group: dict[str, str], units: dict[str, float], val_fraction: float, test_fraction: float) -> dict[str, str]:
    """Give every empty split one group (with >= 3 groups); returns ``{split: moved group}``.

    The donor is the split with the most groups (at least two); the group moved is the one
    whose hash value is nearest the empty split's interval (ties by name), so the result is
    deterministic and changes only when the set of groups changes.
    """
    moved: dict[str, str] = {}
    if len(of_group) < 3:
        return moved
    bounds = {
        "test": (0.0, test_fraction),
        "val": (test_fraction, test_fraction + val_fraction),
        "train": (test_fraction + val_fraction, 1.0),
    }
    for target in ("train", "test", "val"):
        members = {s: sorted(k for k, v in of_group.items() if v == s) for s in SPLITS}
        if members[target]:
            continue
        donor = max((s for s in SPLITS if s != target and s not in moved), key=lambda s: (len(members[s]), s == "train"))
        if len(members[donor]) < 2:
            continue
        lo, hi = bounds[target]
        pick = min(members[donor], key=lambda k: (0.0 if lo <= units[k] < hi else min(abs(units[k] - lo), abs(units[k] - hi)), k))
        of_group[pick] = target
        moved[target] = pick
    return moved


def _quick_task(cfg: FolderDatasetParams, table: str | None) -> str:
    """The task type without a full catalog: as configured, else from the CSV's label counts."""
    if cfg.task is not None:
        return cfg.task
    if not table:
        return SINGLE
    try:
        with open(Path(table).expanduser(), newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            col = "labels" if "labels" in (reader.fieldnames or []) else "label"
            return kind_of(any(len(split_labels(r.get(col) or "")) > 1 for r in reader))
    except OSError:
        return MULTILABEL  # the catalog reports the missing CSV


def make_source(params: Params | None = None, name: str = "folder", layout: Layout | None = None) -> FolderSource:
    """The folder source for ``datasets.folder`` or the named own dataset ``name``.

    ``layout`` is the project's: a dataset whose folder was given at download time only is read
    from what that download recorded under the project's ``data/raw/<name>/`` (never the cwd's).
    """
    cfg = params.datasets.folder_settings(name) if params is not None else None
    task, clip = SINGLE, 4.0
    if cfg is not None:
        table = cfg.labels_csv
        if not cfg.path and not cfg.labels_csv and layout is not None:
            # set at download time only (`musicrep download folder --labels-csv ...`): use what fetch recorded
            table = recorded_settings(layout.raw(name)).get("labels_csv")
        task, clip = _quick_task(cfg, table), cfg.clip_seconds
    return FolderSource(name=name, kind=task, task="tagging" if task == MULTILABEL else "keywords", clip_seconds=clip)
