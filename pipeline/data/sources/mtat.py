"""MagnaTagATune (MTAT), the cleaned top-50 split of the reference repository (docs/spec.md §4).

Publisher: MIRG, City University London, ``https://mirg.city.ac.uk/datasets/magnatagatune/``:

- ``mp3.zip.001``, ``mp3.zip.002``, ``mp3.zip.003``: one zip archive cut in three byte ranges
  (25,863 mp3 clips of about 29.1 s in folders ``0``-``f``). The parts are read back to back
  (no 3 GB concatenated copy) and extracted safely into ``data/raw/mtat/mp3/``.
- ``annotations_final.csv``: tab-separated, quoted; columns ``clip_id``, 188 tag columns
  (0/1), ``mp3_path``.

The publisher gives **no checksums or sizes** for these files (TODO: pin them once a verified
download is available); their SHA-256 is recorded at the first download and checked on every
later run ("trust on first use", see ``download_state.json``).

Split: the reference repository ``minzwon/sota-music-tagging-models`` (``split/mtat/``, fetched
at run time from raw.githubusercontent.com, never committed here; ``datasets.mtat.split_mirror`` for
another copy, ``datasets.mtat.mirror`` being MIRG's alone): ``top50_tags.txt`` (the tag
vocabulary, camel-cased tag names: ``no vocals`` -> ``noVocals``) and ``train.npy`` /
``valid.npy`` / ``test.npy`` (arrays of ``"<row>\\t<mp3_path>"`` strings), read with
``allow_pickle=False`` only. Published counts: **15,244 / 1,529 / 4,332** (21,105 clips).
When those lists are unavailable or not plain string arrays, ``datasets.mtat.split: auto`` warns
in one sentence (``reference`` refuses) and the documented rule is used instead (``rule`` chooses it): the 50 most frequent tags; clips with none of them dropped; split by the first hex
digit of the mp3 folder, ``0``-``b`` train, ``c`` val, ``d``-``f`` test. The rule does not
drop the few clips shorter than 29.1 s (three mp3 files of the archive are empty); ``segment``
skips those as unreadable and lists them in its report.

Labels come from ``annotations_final.csv`` restricted to the 50 tags.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from pipeline.core.errors import UserError
from pipeline.data.archives import extract_once
from pipeline.data.catalog import Catalog
from pipeline.data.download import DownloadState, RemoteFile, fetch_file, write_manifest
from pipeline.data.sources._common import RealSource, clip_seconds_from, read_complete, write_complete

if TYPE_CHECKING:
    from pipeline.config.params import Params

log = logging.getLogger(__name__)

BASE_URL = "https://mirg.city.ac.uk/datasets/magnatagatune/"
_TOFU = "publisher gives no checksum: SHA-256 recorded at first download (TODO: pin)"
PARTS = [RemoteFile(name=f"mp3.zip.00{i}", url=f"{BASE_URL}mp3.zip.00{i}", note=_TOFU) for i in (1, 2, 3)]
ANNOTATIONS = RemoteFile(name="annotations_final.csv", url=f"{BASE_URL}annotations_final.csv", note=_TOFU)
SPLIT_URL = "https://raw.githubusercontent.com/minzwon/sota-music-tagging-models/master/split/mtat/"
SPLIT_FILES = [
    RemoteFile(name=n, url=f"{SPLIT_URL}{n}", optional=True, note="reference split; no published checksum")
    for n in ("top50_tags.txt", "train.npy", "valid.npy", "test.npy")
]
REFERENCE_COUNTS = {"train": 15_244, "val": 1_529, "test": 4_332}
SPLIT_LISTS = {"train": "train.npy", "val": "valid.npy", "test": "test.npy"}
MP3_DIR = "mp3"
N_TAGS = 50
SPLIT_REFERENCE = "reference lists (sota-compatible): train/valid/test.npy of minzwon/sota-music-tagging-models"
SPLIT_RULE = "rule (not sota-compatible): first hex digit of the mp3 folder, 0-b train, c val, d-f test"
VOCABULARY_REFERENCE = "reference list (sota-compatible): top50_tags.txt of minzwon/sota-music-tagging-models"
VOCABULARY_RULE = "rule (not sota-compatible): the 50 most frequent tags of annotations_final.csv, most frequent first"


def camel(tag: str) -> str:
    """Annotation column -> reference tag name: ``no vocals`` -> ``noVocals``."""
    words = tag.split()
    return words[0] + "".join(w[:1].upper() + w[1:] for w in words[1:]) if words else tag


def split_by_folder(mp3_path: str) -> str:
    """The documented rule: first hex digit of the folder, 0-b train, c val, d-f test."""
    first = mp3_path.strip().lower()[:1]
    if first == "c":
        return "val"
    if first in ("d", "e", "f"):
        return "test"
    return "train"


def load_split_lists(raw_dir: Path) -> dict[str, str] | None:
    """``{mp3_path: split}`` from the reference ``*.npy`` lists, or ``None`` if unusable."""
    out: dict[str, str] = {}
    for split, name in SPLIT_LISTS.items():
        path = Path(raw_dir) / name
        if not path.exists():
            log.info("mtat: %s absent; using the documented split rule", name)
            return None
        try:
            items = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            log.warning("mtat: %s is not a plain string array (%s); using the documented split rule", name, exc)
            return None
        if items.dtype.kind not in ("U", "S"):
            log.warning("mtat: %s holds %s, not strings; using the documented split rule", name, items.dtype)
            return None
        for item in items.reshape(-1):
            text = item.decode() if isinstance(item, bytes) else str(item)
            out[text.split("\t")[-1].strip()] = split
    return out


def split_policy(settings: object) -> str:
    """``datasets.mtat.split``: ``auto`` (the default, also without params), ``reference`` or ``rule``."""
    return str(getattr(settings, "split", None) or "auto")


class MTATSource(RealSource):
    """MagnaTagATune: fetch the three zip parts + annotations + reference split, catalog top-50."""

    def remote_files(self) -> list[RemoteFile]:
        return [*PARTS, ANNOTATIONS, *SPLIT_FILES]

    def fetch(self, raw_dir: Path, params: Params) -> None:
        raw_dir = Path(raw_dir)
        state = DownloadState(raw_dir)
        settings = self.settings(params)
        mirrors = {"mirg": self.mirror(params), "reference": getattr(settings, "split_mirror", None)}
        wanted = [(f, "mirg") for f in (*PARTS, ANNOTATIONS)]
        if split_policy(settings) != "rule":
            wanted += [(f, "reference") for f in SPLIT_FILES]
        paths = {f.name: fetch_file(f, raw_dir, self.name, mirrors[who], self.policy, state) for f, who in wanted}
        parts = [paths[p.name] for p in PARTS]
        key = [state.entry(p.name)["sha256"] for p in PARTS]
        done = read_complete(raw_dir)
        if done and done.get("parts_sha256") == key and (raw_dir / MP3_DIR).is_dir():
            log.info("mtat already fetched")
            return
        target = raw_dir / MP3_DIR
        if not state.extracted("mp3.zip") and target.is_dir() and any(target.rglob("*.mp3")):
            log.warning("mtat: using the mp3/ folder already in %s (extracted by hand); delete it to re-extract", raw_dir)
        else:
            try:
                extract_once(parts, target, self.name, state, key="mp3.zip")
            except UserError as exc:
                raise UserError(
                    f"{exc} If the parts are intact but Python cannot read the joined archive, extract it yourself: "
                    f"`cat mp3.zip.00? > all.zip && unzip all.zip -d {target}` (or `zip -FF all.zip --out fixed.zip` first), "
                    f"then re-run `musicrep download mtat`."
                ) from None
        write_manifest(raw_dir, self.name)
        write_complete(
            raw_dir, {"dataset": self.name, "parts_sha256": key, "split_lists": [n for n in SPLIT_LISTS.values() if paths.get(n)]}
        )

    def catalog(self, raw_dir: Path, params: Params) -> Catalog:
        raw_dir = Path(raw_dir)
        ann_path, mp3_root = raw_dir / ANNOTATIONS.name, raw_dir / MP3_DIR
        if not ann_path.exists() or not mp3_root.is_dir():
            raise self.missing(raw_dir, "MagnaTagATune (annotations_final.csv and the mp3/ folder from mp3.zip.001-003)")
        try:
            ann = pd.read_csv(ann_path, sep="\t", dtype=str, keep_default_na=False)
        except (pd.errors.ParserError, UnicodeDecodeError, OSError) as exc:
            raise UserError(
                f"{ann_path} is not a readable tab-separated file ({exc}); delete it and re-run `musicrep download mtat`."
            ) from None
        if "clip_id" not in ann.columns or "mp3_path" not in ann.columns:
            raise UserError(f"{ann_path} lacks the clip_id/mp3_path columns; delete it and re-run `musicrep download mtat`.")
        tag_cols = [c for c in ann.columns if c not in ("clip_id", "mp3_path")]
        by_name = {camel(c): c for c in tag_cols}
        onehot = ann[tag_cols].apply(pd.to_numeric, errors="coerce").fillna(0).astype(np.int8)
        policy = split_policy(self.settings(params))
        vocab, vocabulary_source = self._vocabulary(raw_dir, by_name, onehot, policy)
        top = onehot[[by_name[t] for t in vocab]].to_numpy()
        labels = [[vocab[j] for j in np.flatnonzero(row)] for row in top]
        lists = None if policy == "rule" else load_split_lists(raw_dir)
        absent = [
            *(SPLIT_LISTS.values() if lists is None else ()),
            *(() if vocabulary_source == VOCABULARY_REFERENCE else ["top50_tags.txt"]),
        ]
        if absent:
            without_reference_lists(policy, raw_dir, absent)
        if lists is not None:
            split = ann["mp3_path"].map(lists)
            keep = split.notna().to_numpy()
            listed = set(lists)
            absent_rows = sorted(listed - set(ann["mp3_path"]))
            rule = SPLIT_REFERENCE
        else:
            keep = top.any(axis=1)
            split = ann["mp3_path"].map(split_by_folder)
            absent_rows = []
            rule = SPLIT_RULE
        rows, missing = [], list(absent_rows)
        for i in np.flatnonzero(keep):
            rel = ann["mp3_path"].iat[i]
            if not (mp3_root / rel).is_file():
                missing.append(ann["clip_id"].iat[i])
                continue
            rows.append(
                {
                    "clip_id": ann["clip_id"].iat[i],
                    "path": f"{MP3_DIR}/{rel}",
                    "split": split.iat[i],
                    "labels": labels[i],
                    "start_s": 0.0,
                    "duration_s": math.nan,
                }
            )
        clips = pd.DataFrame(rows, columns=["clip_id", "path", "split", "labels", "start_s", "duration_s"])
        expected = int(keep.sum()) + len(absent_rows)
        counts = clips["split"].value_counts().to_dict()
        log.info("mtat split from %s: %s clips listed (reference lists: %s)", rule, counts, REFERENCE_COUNTS)
        return Catalog(
            clips=clips,
            labels=vocab,
            expected=expected,
            missing=missing,
            split_source=rule,
            vocabulary_source=vocabulary_source,
        )

    def _vocabulary(self, raw_dir: Path, by_name: dict[str, str], onehot: pd.DataFrame, policy: str) -> tuple[list[str], str]:
        """Tag order of ``top50_tags.txt`` if usable, else the 50 most frequent tags; with its source in words."""
        path = raw_dir / "top50_tags.txt"
        if path.exists() and policy != "rule":
            tags = [t.strip() for t in path.read_text().splitlines() if t.strip()]
            unknown = [t for t in tags if t not in by_name]
            if len(tags) == N_TAGS and not unknown:
                return tags, VOCABULARY_REFERENCE
            log.warning(
                "mtat: top50_tags.txt does not match annotations_final.csv (unknown: %s); using tag frequencies", unknown[:5]
            )
        counts = onehot.sum(axis=0)
        order = sorted(range(len(counts)), key=lambda j: (-int(counts.iloc[j]), j))[:N_TAGS]
        names = {c: n for n, c in by_name.items()}
        return [names[counts.index[j]] for j in order], VOCABULARY_RULE


def without_reference_lists(policy: str, raw_dir: Path, absent: list[str]) -> None:
    """Say in one sentence that the reference lists are missing: a warning (``auto``), an error (``reference``)."""
    if policy == "rule":
        log.info("mtat: the documented split rule and tag frequencies, as datasets.mtat.split: rule asks")
        return
    message = (
        f"MTAT's reference lists ({', '.join(absent)}) are not usable in {raw_dir}, so the split is the folder rule "
        f"and the tag order by frequency, which line up with neither the published numbers nor the `sota:` heads; "
        f"set datasets.mtat.split_mirror (a folder, URL or clone of minzwon/sota-music-tagging-models) and re-run "
        f"`musicrep download mtat`, or set datasets.mtat.split: rule to choose the rule."
    )
    if policy == "reference":
        raise UserError(message)
    log.warning("%s", message)


def make_source(params: Params | None = None) -> MTATSource:
    return MTATSource(name="mtat", kind="multilabel", task="tagging", clip_seconds=clip_seconds_from(params, "mtat", 29.1))
