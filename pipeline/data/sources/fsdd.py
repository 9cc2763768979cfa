"""Free Spoken Digit Dataset (FSDD): 3,000 recordings of the digits 0-9, 8 kHz mono wav.

Publisher: the GitHub repository ``Jakobovski/free-spoken-digit-dataset`` (CC BY-SA 4.0). The
download is GitHub's archive of commit :data:`COMMIT` (2024-05-02); only its ``recordings/``
folder is kept, as ``data/raw/fsdd/recordings/{digit}_{speaker}_{take}.wav``.

GitHub builds repository archives on request and does not promise byte-identical archives,
so the archive has no published checksum: its SHA-256 is recorded at the first download, and
the *recordings* are checked instead: the SHA-256 of the sorted ``"<sha256>  <file name>"``
lines of every recording must equal :data:`RECORDINGS_DIGEST` (computed from the file list of
that commit). ``--mirror`` may be

- a local directory holding ``recordings/*.wav`` (optionally with a ``SHA256SUMS`` file, as
  written by ``sha256sum``, which is then checked file by file);
- a URL or local path of an archive (``.tar.gz``/``.zip``) of the repository;
- a base URL or directory holding the archive under its publisher name (:data:`ARCHIVE`).

Splits: upstream's convention puts takes 0-4 in **test** (300 files). This source carves a
validation split out of upstream's training part, takes 5-9 (300 files), so every speaker and
digit appears in every split; takes 10-49 are **train** (2,400 files).

Recordings last 0.14-2.28 s; the catalog leaves ``duration_s`` NaN so ``segment`` keeps each
whole file (``clip_seconds`` 1.0 is the nominal model input; downstream pads or crops).
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from pipeline.core.errors import UserError
from pipeline.core.io_utils import make_temp_dir
from pipeline.core.progress import track
from pipeline.data.archives import ARCHIVE_SUFFIXES, safe_extract
from pipeline.data.catalog import Catalog
from pipeline.data.download import DownloadState, RemoteFile, fetch_file, file_digests, is_url, write_manifest
from pipeline.data.sources._common import RealSource, clip_seconds_from, read_complete, write_complete

if TYPE_CHECKING:
    from pipeline.config.params import Params

log = logging.getLogger(__name__)

REPO = "Jakobovski/free-spoken-digit-dataset"
COMMIT = "26eb9aaf76e81b692f806f9140c2d2777410d7a1"
ARCHIVE = RemoteFile(
    name=f"free-spoken-digit-dataset-{COMMIT}.tar.gz",
    url=f"https://github.com/{REPO}/archive/{COMMIT}.tar.gz",
    note="GitHub-generated archive: no stable published checksum; recordings checked against RECORDINGS_DIGEST",
)
#: SHA-256 over the sorted lines ``"<sha256 of file>  <file name>\n"`` of the 3,000 recordings of COMMIT.
RECORDINGS_DIGEST = "1801eae019c063377d98f831d3f93574f259475df7332bb0e3d1b080fb5e6959"
SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")
DIGITS = tuple(str(d) for d in range(10))
TAKES = 50
TEST_TAKES = range(0, 5)
VAL_TAKES = range(5, 10)
NAME_RE = re.compile(r"^(?P<digit>\d)_(?P<speaker>[A-Za-z]+)_(?P<take>\d+)\.wav$")
RECORDINGS = "recordings"


def split_for_take(take: int) -> str:
    """Split of a take number: 0-4 test, 5-9 val, 10-49 train."""
    if take in TEST_TAKES:
        return "test"
    if take in VAL_TAKES:
        return "val"
    return "train"


def recordings_digest(hashes: dict[str, str]) -> str:
    """SHA-256 of the sorted ``"<sha256>  <name>"`` lines (``sha256sum`` format) of ``hashes``."""
    blob = "".join(f"{hashes[name]}  {name}\n" for name in sorted(hashes))
    return hashlib.sha256(blob.encode()).hexdigest()


def _replace_recordings(raw_dir: Path, folder: Path) -> None:
    """Move ``folder`` to ``raw_dir/recordings``, replacing what is there."""
    target = raw_dir / RECORDINGS
    if target.exists():
        shutil.rmtree(target)
    folder.rename(target)


def _read_sums(path: Path) -> dict[str, str]:
    """``sha256sum`` output -> ``{file name: sha256}`` (``./`` and ``recordings/`` prefixes dropped)."""
    sums = {}
    for line in path.read_text().splitlines():
        parts = line.strip().split(maxsplit=1)
        if len(parts) != 2:
            continue
        name = parts[1].lstrip("*").removeprefix("./").removeprefix(f"{RECORDINGS}/")
        sums[name] = parts[0].lower()
    return sums


class FSDDSource(RealSource):
    """FSDD: fetch from GitHub (or a mirror), catalog ``recordings/*.wav``."""

    # ------------------------------------------------------------------ fetch
    def fetch(self, raw_dir: Path, params: Params) -> None:
        raw_dir = Path(raw_dir)
        raw_dir.mkdir(parents=True, exist_ok=True)
        mirror = self.mirror(params)
        state = DownloadState(raw_dir)
        done = read_complete(raw_dir)
        have = (raw_dir / RECORDINGS).is_dir()
        mirror_dir = Path(mirror).expanduser() if mirror and not is_url(mirror) else None
        archive_sha = None
        if mirror_dir is not None and (mirror_dir / RECORDINGS).is_dir():
            if done and have:
                log.info("fsdd already fetched (%d recordings)", done.get("n_recordings", 0))
                return
            self._copy_recordings(mirror_dir, raw_dir)
            source = f"directory {mirror_dir}"
        else:
            remote, base = self._archive_remote(mirror)
            archive = fetch_file(remote, raw_dir, self.name, base, self.policy, state)
            assert archive is not None
            archive_sha = state.entry(remote.name)["sha256"]
            if done and have and done.get("archive_sha256") == archive_sha:
                log.info("fsdd already fetched (%d recordings)", done.get("n_recordings", 0))
                return
            self._recordings_from_archive(archive, raw_dir)
            source = remote.url if not base else f"{base} ({remote.name})"
        manifest = write_manifest(raw_dir, self.name)
        hashes = {Path(e["path"]).name: e["sha256"] for e in manifest["files"] if e["path"].startswith(f"{RECORDINGS}/")}
        digest = recordings_digest(hashes)
        upstream = digest == RECORDINGS_DIGEST
        if upstream:
            log.info("fsdd recordings are identical to upstream commit %s", COMMIT[:10])
        elif mirror is None:
            shutil.rmtree(raw_dir / RECORDINGS, ignore_errors=True)
            raise UserError(
                f"the FSDD recordings from {ARCHIVE.url} do not match commit {COMMIT[:10]} (recordings digest {digest}, expected {RECORDINGS_DIGEST}); "
                f"delete {raw_dir} and re-run `musicrep download fsdd`, or pass --mirror with a verified copy."
            )
        else:
            log.warning(
                "fsdd from mirror %s differs from upstream commit %s (%d recordings); using it as given",
                mirror,
                COMMIT[:10],
                len(hashes),
            )
        write_complete(
            raw_dir,
            {
                "dataset": self.name,
                "source": source,
                "n_recordings": len(hashes),
                "recordings_sha256": digest,
                "matches_upstream": upstream,
                "upstream_commit": COMMIT,
                "archive_sha256": archive_sha,
            },
        )

    def _archive_remote(self, mirror: str | None) -> tuple[RemoteFile, str | None]:
        """The archive to fetch and the mirror base to fetch it from."""
        if mirror and str(mirror).lower().endswith(ARCHIVE_SUFFIXES):
            if is_url(mirror):
                return RemoteFile(name=Path(mirror.split("?")[0]).name, url=mirror), None
            path = Path(mirror).expanduser()
            if not path.is_file():
                raise UserError(
                    f"mirror archive {mirror} does not exist; pass an existing file, a folder with recordings/, or a URL."
                )
            return RemoteFile(name=path.name, url=path.as_uri()), None
        return ARCHIVE, mirror

    def _copy_recordings(self, mirror_dir: Path, raw_dir: Path) -> None:
        """Copy ``mirror_dir/recordings/*.wav`` (checked against its SHA256SUMS if present)."""
        src = mirror_dir / RECORDINGS
        sums_path = next((p for p in (mirror_dir / "SHA256SUMS", src / "SHA256SUMS") if p.exists()), None)
        sums = _read_sums(sums_path) if sums_path else {}
        files = sorted(p for p in src.glob("*.wav") if p.is_file())
        if not files:
            raise UserError(
                f"mirror {mirror_dir} has no recordings/*.wav; point --mirror at a copy of the FSDD repository (or its archive)."
            )

        tmp = make_temp_dir(prefix=f".{RECORDINGS}.", suffix=".extracting", dir=raw_dir)
        try:
            for path in track(files, total=len(files), description="copy fsdd"):
                out = tmp / path.name
                shutil.copyfile(path, out)
                want = sums.get(path.name)
                if want:
                    got = file_digests(out)["sha256"]
                    if got != want:
                        raise UserError(
                            f"{path} fails its SHA-256 check against {sums_path} (expected {want}, got {got}); repair the mirror and re-run `musicrep download fsdd`."
                        )
            unlisted = [p.name for p in files if sums and p.name not in sums]
            if unlisted:
                log.warning("%d mirror recordings are not listed in %s (e.g. %s)", len(unlisted), sums_path, unlisted[0])
            absent = sorted(set(sums) - {p.name for p in files})
            if absent:
                log.warning("%d files listed in %s are absent from the mirror (e.g. %s)", len(absent), sums_path, absent[0])
            _replace_recordings(raw_dir, tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        log.info("copied %d fsdd recordings from %s%s", len(files), mirror_dir, " (checked against SHA256SUMS)" if sums else "")

    def _recordings_from_archive(self, archive: Path, raw_dir: Path) -> None:
        """Extract the archive (safely) and keep its ``recordings/`` folder."""
        work = raw_dir / ".archive.extracting"
        safe_extract(archive, work, self.name)
        try:
            candidates = sorted(
                (p for p in work.rglob(RECORDINGS) if p.is_dir() and any(p.glob("*.wav"))), key=lambda p: len(p.parts)
            )
            if not candidates:
                raise UserError(
                    f"{archive.name} holds no recordings/*.wav; check the mirror, or delete {archive} and re-run `musicrep download fsdd`."
                )
            rec = candidates[0]
            sums_path = rec.parent / "SHA256SUMS"
            if sums_path.exists():
                sums = _read_sums(sums_path)
                for name, want in sums.items():
                    path = rec / name
                    if path.exists() and (got := file_digests(path)["sha256"]) != want:
                        raise UserError(
                            f"{name} in {archive.name} fails its SHA-256 check against SHA256SUMS (expected {want}, got {got}); use another mirror."
                        )
            _replace_recordings(raw_dir, rec)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    # ------------------------------------------------------------------ catalog
    def catalog(self, raw_dir: Path, params: Params) -> Catalog:
        rec = Path(raw_dir) / RECORDINGS
        files = sorted(rec.glob("*.wav")) if rec.is_dir() else []
        if not files:
            raise self.missing(Path(raw_dir), "FSDD recordings (recordings/*.wav)")
        rows, found, odd = [], set(), []
        for path in files:
            m = NAME_RE.match(path.name)
            if not m:
                odd.append(path.name)
                continue
            take = int(m["take"])
            found.add(path.stem)
            rows.append(
                {
                    "clip_id": path.stem,
                    "path": f"{RECORDINGS}/{path.name}",
                    "split": split_for_take(take),
                    "labels": [m["digit"]],
                    "start_s": 0.0,
                    "duration_s": math.nan,
                }
            )
        if odd:
            log.warning("ignoring %d files in %s not named {digit}_{speaker}_{take}.wav (e.g. %s)", len(odd), rec, odd[0])
        grid = {f"{d}_{s}_{t}" for d in DIGITS for s in SPEAKERS for t in range(TAKES)}
        missing = sorted(grid - found)
        return Catalog(
            clips=pd.DataFrame(rows, columns=["clip_id", "path", "split", "labels", "start_s", "duration_s"]),
            labels=list(DIGITS),
            expected=len(grid | found),
            missing=missing,
            split_source="rule: takes 0-4 test (upstream's convention), 5-9 val, 10-49 train",
            vocabulary_source="the digits 0-9",
        )


def make_source(params: Params | None = None) -> FSDDSource:
    return FSDDSource(name="fsdd", kind="single", task="keywords", clip_seconds=clip_seconds_from(params, "fsdd", 1.0))
