"""Safe extraction of downloaded archives (zip, tar, tar.gz/bz2/xz, split zips).

Members with absolute paths, ``..`` components, links pointing outside the target or device
files are refused; so are archives that would expand to more than :func:`extraction_limit`
or hold more than ``MUSICREP_EXTRACT_MAX_MEMBERS`` members, checked before anything is written
and again while writing. Extraction happens in a temporary directory renamed onto the target
only when complete; :func:`extract_once` skips archives the download state says are extracted.
The transfer itself (resume, retry, verify) is :mod:`pipeline.data.download`.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import shutil
import stat
import tarfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from pipeline.core.errors import UserError
from pipeline.core.io_utils import make_temp_dir
from pipeline.core.settings import settings
from pipeline.data.download import CHUNK, DownloadState, file_digests

log = logging.getLogger(__name__)

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")


class _ConcatFile(io.RawIOBase):
    """Read-only, seekable view of several files back to back (``mp3.zip.001 + .002 + ...``)."""

    def __init__(self, paths: Sequence[Path]) -> None:
        super().__init__()
        self._files = [open(p, "rb") for p in paths]
        self._sizes = [os.fstat(f.fileno()).st_size for f in self._files]
        self._starts = [sum(self._sizes[:i]) for i in range(len(self._sizes))]
        self._size = sum(self._sizes)
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        filled = 0
        while filled < len(view) and self._pos < self._size:
            i = next(k for k, (s, n) in enumerate(zip(self._starts, self._sizes)) if s <= self._pos < s + n)
            f = self._files[i]
            f.seek(self._pos - self._starts[i])
            n = f.readinto(view[filled : filled + min(len(view) - filled, self._starts[i] + self._sizes[i] - self._pos)])
            if not n:
                break
            filled += n
            self._pos += n
        return filled

    def close(self) -> None:
        for f in self._files:
            f.close()
        super().close()


def open_concatenated(paths: Sequence[Path]) -> IO[bytes]:
    """A buffered, seekable reader over ``paths`` concatenated (for byte-split archives)."""
    return io.BufferedReader(_ConcatFile(paths), buffer_size=CHUNK)


class UnsafeArchiveError(Exception):
    """An archive member would land outside the target directory."""


class ArchiveTooLargeError(UnsafeArchiveError):
    """An archive would expand past :func:`extraction_limit` (a decompression bomb)."""


def _safe_member_path(name: str) -> PurePosixPath:
    norm = name.replace("\\", "/")
    if norm.startswith("/") or re.match(r"^[A-Za-z]:", norm):
        raise UnsafeArchiveError(f"{name!r} is an absolute path")
    parts = [p for p in PurePosixPath(norm).parts if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchiveError(f"{name!r} climbs out of the target with '..'")
    return PurePosixPath(*parts) if parts else PurePosixPath(".")


def _link_stays_inside(member: PurePosixPath, target: str, hard: bool) -> bool:
    """True when a link target resolves inside the extraction root."""
    if target.startswith("/") or re.match(r"^[A-Za-z]:", target):
        return False
    base = [] if hard else list(member.parent.parts)
    depth = []
    for part in base + target.replace("\\", "/").split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not depth:
                return False
            depth.pop()
        else:
            depth.append(part)
    return True


@dataclass(frozen=True)
class ExtractionLimit:
    """How much an archive may expand to: ``max_bytes`` in all and ``max_members`` entries."""

    max_bytes: int
    max_members: int
    why: str


def extraction_limit(compressed_bytes: int, target_parent: Path) -> ExtractionLimit:
    """The bound for extracting ``compressed_bytes`` of archive next to ``target_parent``.

    ``max(MUSICREP_EXTRACT_MAX_RATIO (100) x compressed size, MUSICREP_EXTRACT_MIN_BYTES (1 GiB))``,
    capped by ``MUSICREP_EXTRACT_MAX_BYTES`` (unset: no cap) and by the free disk space. Audio
    compresses by far less than 100:1, so only crafted archives ("bombs") reach it.
    """

    env = settings()
    ratio, floor, cap, members = env.extract_max_ratio, env.extract_min_bytes, env.extract_max_bytes, env.extract_max_members
    limit, why = max(ratio * compressed_bytes, floor), f"{ratio}x its size (MUSICREP_EXTRACT_MAX_RATIO)"
    if limit == floor and floor > ratio * compressed_bytes:
        why = "MUSICREP_EXTRACT_MIN_BYTES"
    if cap is not None and cap < limit:
        limit, why = cap, "MUSICREP_EXTRACT_MAX_BYTES"
    with contextlib.suppress(OSError):
        free = shutil.disk_usage(target_parent).free
        if free < limit:
            limit, why = free, f"the free space on {target_parent}"
    return ExtractionLimit(int(limit), int(members), why)


def _check_totals(total: int, count: int, limit: ExtractionLimit) -> None:
    if count > limit.max_members:
        raise ArchiveTooLargeError(
            f"it holds {count:,} members, more than the limit of {limit.max_members:,} (MUSICREP_EXTRACT_MAX_MEMBERS)"
        )
    if total > limit.max_bytes:
        raise ArchiveTooLargeError(
            f"it would expand to {total:,} bytes, more than the limit of {limit.max_bytes:,} bytes ({limit.why})"
        )


def _check_tar(tar: tarfile.TarFile, limit: ExtractionLimit | None = None) -> list[tarfile.TarInfo]:
    members = []
    total = 0
    for m in tar.getmembers():
        total += max(0, m.size) if m.isfile() else 0
        if limit is not None:
            _check_totals(total, len(members) + 1, limit)
        path = _safe_member_path(m.name)
        if m.issym() or m.islnk():
            if not _link_stays_inside(path, m.linkname, hard=m.islnk()):
                raise UnsafeArchiveError(f"{m.name!r} links to {m.linkname!r}, outside the target")
        elif not (m.isfile() or m.isdir()):
            raise UnsafeArchiveError(f"{m.name!r} is a device, FIFO or other special file")
        members.append(m)
    return members


def _extract_zip(zf: zipfile.ZipFile, root: Path, limit: ExtractionLimit | None = None) -> int:
    count = 0
    infos = zf.infolist()
    if limit is not None:  # the sizes the archive declares, before anything is written
        _check_totals(sum(max(0, i.file_size) for i in infos), len(infos), limit)
    written = 0
    for info in infos:
        path = _safe_member_path(info.filename)
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            target = zf.read(info).decode("utf-8", "replace")
            if not _link_stays_inside(path, target, hard=False):
                raise UnsafeArchiveError(f"{info.filename!r} links to {target!r}, outside the target")
        out = root / path
        if info.is_dir():
            out.mkdir(parents=True, exist_ok=True)
            continue
        out.parent.mkdir(parents=True, exist_ok=True)
        with zf.open(info) as src, open(out, "wb") as dst:  # links inside are written as small text files
            while block := src.read(CHUNK):  # and again while writing, in case a header lies
                written += len(block)
                if limit is not None:
                    _check_totals(written, count + 1, limit)
                dst.write(block)
        count += 1
    return count


def archive_format(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".zip") or re.search(r"\.zip\.\d{3}$", name):
        return "zip"
    if any(name.endswith(s) for s in (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")):
        return "tar"
    raise ValueError(f"unknown archive format: {path.name}")


def safe_extract(archives: Path | Sequence[Path], target: Path, dataset: str) -> Path:
    """Extract ``archives`` (one archive, or byte-split parts of one zip) into ``target``.

    Members are checked first; extraction goes to a temporary sibling directory renamed onto
    ``target`` when complete (an existing ``target`` is replaced).

    Raises:
        UserError: an unsafe member, or a corrupt archive.
    """
    parts = [Path(archives)] if isinstance(archives, (str, os.PathLike)) else [Path(p) for p in archives]
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = make_temp_dir(prefix=f".{target.name}.", suffix=".extracting", dir=target.parent)
    label = parts[0].name if len(parts) == 1 else f"{parts[0].name} .. {parts[-1].name}"
    try:
        limit = extraction_limit(sum(p.stat().st_size for p in parts), target.parent)
        fmt = archive_format(parts[0])
        log.info("extracting %s into %s", label, target)
        if fmt == "zip":
            with open_concatenated(parts) if len(parts) > 1 else open(parts[0], "rb") as handle, zipfile.ZipFile(handle) as zf:
                _extract_zip(zf, tmp, limit)
        else:
            with tarfile.open(parts[0], "r:*") as tar:
                members = _check_tar(tar, limit)
                tar.extractall(tmp, members=members, filter="data")
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except ArchiveTooLargeError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise UserError(
            f"{label} is refused: {exc}; nothing was extracted. Check the archive (or your mirror), "
            f"or raise the limit (e.g. MUSICREP_EXTRACT_MAX_RATIO=1000) if you trust it, and re-run `musicrep download {dataset}`."
        ) from None
    except UnsafeArchiveError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise UserError(
            f"{label} holds an unsafe member: {exc}; nothing was extracted. Delete {parts[0]} and re-run `musicrep download {dataset}` (or check your mirror)."
        ) from None
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError, ValueError) as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise UserError(
            f"cannot extract {label} ({exc.__class__.__name__}: {exc}); delete it and re-run `musicrep download {dataset}`."
        ) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def extract_once(
    archives: Path | Sequence[Path], target: Path, dataset: str, state: DownloadState, key: str | None = None
) -> Path:
    """:func:`safe_extract` unless ``state`` says these exact archives already went to ``target``."""
    parts = [Path(archives)] if isinstance(archives, (str, os.PathLike)) else [Path(p) for p in archives]
    key = key or "+".join(p.name for p in parts)
    stamp = {
        "archives": [(state.entry(p.name) or {}).get("sha256") or file_digests(p)["sha256"] for p in parts],
        "target": target.name,
    }
    if target.is_dir() and state.extracted(key) == stamp:
        log.debug("%s already extracted", key)
        return target
    safe_extract(parts, target, dataset)
    state.record_extracted(key, stamp)
    return target
