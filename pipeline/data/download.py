"""Robust downloads for the real datasets: resume, retry, verify, extract safely.

Every real dataset source describes its files as :class:`RemoteFile` records (publisher URL,
checksum and size where the publisher gives them) and calls :func:`fetch_file` for each, then
:func:`pipeline.data.archives.safe_extract` (or ``extract_once``) for archives. The guarantees:

- **Resume.** Bytes arrive in ``<name>.part``; after an interruption the next attempt (or the
  next run) asks for the rest with an HTTP ``Range`` request and ``If-Range`` (the ETag or
  Last-Modified recorded in ``<name>.part.json`` when the transfer began). A ``.part`` with no
  such record, longer than the file, answered with the wrong ``Content-Range`` or (for a file
  without a published checksum) without a validator is discarded, and a server that ignores
  ``Range`` or says the file changed (status 200) makes the transfer restart from byte 0. A
  resumed file that fails its checksum is downloaded once more from byte 0.
- **Retry.** Connection errors, time-outs, truncated bodies and HTTP 408/429/5xx are retried
  with exponential backoff (:class:`RetryPolicy`; environment variables
  ``MUSICREP_DOWNLOAD_ATTEMPTS``, ``MUSICREP_DOWNLOAD_BACKOFF_S``, ``MUSICREP_DOWNLOAD_TIMEOUT_S``).
- **Verify, then finalise.** The ``.part`` file is hashed (SHA-256, plus MD5 where that is
  what the publisher gives) and only renamed to its final name when the checksum and size
  match. Where no checksum is published the SHA-256 seen at the first download is recorded
  and every later check compares against it ("trust on first use").
- **Idempotent.** Verified files are recorded in ``download_state.json`` (size, mtime,
  digests); a re-run finds them and downloads nothing. A file whose size or mtime changed is
  hashed again, so a tampered file fails with a clear message.
- **Safe extraction** (:mod:`pipeline.data.archives`). Zip and tar(.gz) members with absolute paths, ``..`` components, links
  pointing outside the target or device files are refused; so are archives that would expand
  to more than :func:`~pipeline.data.archives.extraction_limit` (``MUSICREP_EXTRACT_MAX_RATIO`` x their size, at least
  ``MUSICREP_EXTRACT_MIN_BYTES``, at most ``MUSICREP_EXTRACT_MAX_BYTES`` and the free disk
  space) or hold more than ``MUSICREP_EXTRACT_MAX_MEMBERS`` members ("zip bombs"), checked
  before anything is written and again while writing; extraction happens in a temporary
  directory that is renamed onto the target only when complete.
- **Mirrors.** ``mirror`` replaces the publisher's base URL: a base URL (``http://host/dir``,
  ``file://``) under which the files keep their names, or a local directory holding them (also in
  the publisher's sub-folders, :func:`publisher_paths`).
- **Clear failures.** An unreachable host raises :class:`~pipeline.core.errors.UserError` naming the
  file, where to put it by hand and its expected checksum.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import logging
import os
import re
import shutil
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

from pipeline.core.errors import UserError
from pipeline.core.io_utils import sha256_file, write_json
from pipeline.core.progress import track
from pipeline.core.settings import Settings, settings

log = logging.getLogger(__name__)

STATE_FILE = "download_state.json"
MANIFEST_FILE = "manifest.json"
CHUNK = 1 << 20
USER_AGENT = "musicrep/0.1 (dataset downloader; python-urllib)"


# ----------------------------------------------------------------------------- records
@dataclass(frozen=True)
class RemoteFile:
    """One file a publisher serves.

    Attributes:
        name: file name inside the raw directory and inside a mirror (usually the URL's
            last path component).
        url: the publisher's URL.
        sha256: published SHA-256 (hex), or ``None`` if the publisher gives none.
        md5: published MD5 (hex), used when that is all the publisher gives.
        size: size in bytes, or ``None`` if unknown.
        optional: a failure to get this file is logged and skipped instead of raised.
        note: where the checksum comes from (documentation only).
    """

    name: str
    url: str
    sha256: str | None = None
    md5: str | None = None
    size: int | None = None
    optional: bool = False
    note: str = ""

    def describe_checksum(self) -> str:
        if self.sha256:
            return f"SHA-256 {self.sha256}"
        if self.md5:
            return f"MD5 {self.md5}"
        return "no published checksum (its SHA-256 is recorded on first download)"


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try: ``attempts`` per file, backoff ``backoff_s * 2**k`` capped at ``max_backoff_s``."""

    attempts: int = Settings.model_fields["download_attempts"].default
    backoff_s: float = Settings.model_fields["download_backoff_s"].default
    max_backoff_s: float = 60.0
    timeout_s: float = Settings.model_fields["download_timeout_s"].default

    @classmethod
    def from_env(cls) -> RetryPolicy:
        """``MUSICREP_DOWNLOAD_{ATTEMPTS,BACKOFF_S,TIMEOUT_S}`` (:mod:`pipeline.core.settings`, with their defaults)."""
        env = settings()
        return cls(attempts=env.download_attempts, backoff_s=env.download_backoff_s, timeout_s=env.download_timeout_s)

    def delay(self, attempt: int) -> float:
        return min(self.max_backoff_s, self.backoff_s * (2**attempt))


class _Retryable(Exception):
    """A transfer problem worth another attempt (truncated body, bad resume...)."""


class _Permanent(Exception):
    """A transfer problem no retry will fix (HTTP 404, 403...)."""


class _TooLarge(Exception):
    """The server announces or sends more bytes than the file may have: refused, never retried."""


def size_cap(remote: RemoteFile) -> tuple[int, str]:
    """The most bytes ``remote`` may have, and where that bound comes from (for the refusal).

    Its pinned (catalogued) size, else the ceiling ``MUSICREP_DOWNLOAD_MAX_BYTES``.
    """
    if remote.size is not None:
        return remote.size, f"its pinned size of {remote.size:,} bytes"
    cap = settings().download_max_bytes
    return cap, f"the ceiling of {cap:,} bytes for a file of unknown size (MUSICREP_DOWNLOAD_MAX_BYTES)"


# ----------------------------------------------------------------------------- state
class DownloadState:
    """``download_state.json`` in a raw directory: verified files and completed extractions."""

    def __init__(self, raw_dir: Path) -> None:
        self.path = Path(raw_dir) / STATE_FILE
        self.data: dict = {"files": {}, "extracted": {}}
        if self.path.exists():
            try:
                loaded = json.loads(self.path.read_text())
                if isinstance(loaded, dict):
                    self.data.update({k: v for k, v in loaded.items() if isinstance(v, dict)})
            except (OSError, json.JSONDecodeError):
                log.warning("ignoring unreadable %s; files will be verified again", self.path)

    def entry(self, name: str) -> dict | None:
        return self.data["files"].get(name)

    def is_verified(self, name: str, path: Path) -> bool:
        entry = self.entry(name)
        if not entry or not path.exists():
            return False
        st = path.stat()
        return entry.get("size") == st.st_size and entry.get("mtime_ns") == st.st_mtime_ns

    def record(self, name: str, path: Path, digests: dict[str, str], url: str, trusted_on_first_use: bool) -> None:
        st = path.stat()
        self.data["files"][name] = {
            "size": st.st_size,
            "mtime_ns": st.st_mtime_ns,
            "sha256": digests["sha256"],
            "md5": digests["md5"],
            "url": url,
            "trusted_on_first_use": trusted_on_first_use,
            "verified_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        self.save()

    def forget(self, name: str) -> None:
        if self.data["files"].pop(name, None) is not None:
            self.save()

    def extracted(self, key: str) -> dict | None:
        return self.data["extracted"].get(key)

    def record_extracted(self, key: str, info: dict) -> None:
        self.data["extracted"][key] = info
        self.save()

    def save(self) -> None:
        write_json(self.path, self.data)


# ----------------------------------------------------------------------------- hashing
def file_digests(path: Path) -> dict[str, str]:
    """SHA-256 and MD5 of a file in one pass."""
    sha, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            sha.update(block)
            md5.update(block)
    return {"sha256": sha.hexdigest(), "md5": md5.hexdigest()}


def _mismatch(remote: RemoteFile, digests: dict[str, str], size: int, recorded: dict | None) -> tuple[str, str, str] | None:
    """Return ``(algorithm, expected, got)`` when the file does not match, else ``None``."""
    if remote.sha256 and digests["sha256"].lower() != remote.sha256.lower():
        return "SHA-256", remote.sha256.lower(), digests["sha256"]
    if remote.md5 and digests["md5"].lower() != remote.md5.lower():
        return "MD5", remote.md5.lower(), digests["md5"]
    if remote.size is not None and size != remote.size:
        return "size", f"{remote.size} bytes", f"{size} bytes"
    if not remote.sha256 and not remote.md5 and recorded and recorded.get("sha256") and recorded["sha256"] != digests["sha256"]:
        return "SHA-256 (recorded at its first download)", recorded["sha256"], digests["sha256"]
    return None


# ----------------------------------------------------------------------------- mirrors
def is_url(text: str) -> bool:
    return bool(re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", text))


def resolve_source(remote: RemoteFile, mirror: str | os.PathLike | None) -> str | Path:
    """Where to get ``remote`` from: its URL, a mirror URL, or a file in a mirror directory."""
    if mirror is None or str(mirror) == "":
        return remote.url
    mirror = str(mirror)
    if is_url(mirror):
        return mirror.rstrip("/") + "/" + urllib.parse.quote(remote.name)
    folder = Path(mirror).expanduser()
    if not folder.is_dir():
        raise UserError(
            f"mirror {mirror} is neither a URL (http://..., file://...) nor an existing directory; pass a base URL or a folder that holds {remote.name}."
        )
    return next((folder / rel for rel in publisher_paths(remote) if (folder / rel).is_file()), folder / remote.name)


def publisher_paths(remote: RemoteFile) -> list[str]:
    """Where a mirror folder may hold ``remote``: its name, then the publisher's sub-folders kept
    (``groundtruth_release/<name>``, ``task4/groundtruth_release/<name>``, ... from the URL's path)."""
    parts = [p for p in urllib.parse.urlparse(remote.url).path.split("/") if p]
    nested = ["/".join(parts[-k:]) for k in range(2, len(parts) + 1)] if parts and parts[-1] == remote.name else []
    return [remote.name, *nested]


# ----------------------------------------------------------------------------- progress
@contextlib.contextmanager
def _progress(label: str, total: int | None, start: int) -> Iterator:
    """Yield ``advance(n_bytes)``; a rich bar on a terminal, log lines otherwise."""
    if sys.stderr.isatty():
        with Progress(
            TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), transient=True
        ) as bar:
            task = bar.add_task(label, total=total, completed=start)
            yield lambda n: bar.update(task, advance=n)
        return
    log.info(
        "downloading %s (%s)%s",
        label,
        f"{total:,} bytes" if total else "size unknown",
        f", resuming at byte {start:,}" if start else "",
    )
    yield lambda n: None


# ----------------------------------------------------------------------------- transfer
def _parse_content_range(value: str | None) -> tuple[int | None, int | None]:
    """``bytes 100-199/1000`` -> (100, 1000); ``bytes */1000`` -> (None, 1000)."""
    if not value:
        return None, None
    m = re.match(r"^\s*bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)\s*$", value)
    if not m:
        return None, None
    start = int(m.group(1)) if m.group(1) is not None else None
    total = int(m.group(2)) if m.group(2) != "*" else None
    return start, total


def _part_meta_path(part: Path) -> Path:
    """Sidecar of a ``.part`` file: where its bytes came from (URL, validators, total size)."""
    return part.with_name(part.name + ".json")


def _read_part_meta(part: Path) -> dict | None:
    try:
        meta = json.loads(_part_meta_path(part).read_text())
        return meta if isinstance(meta, dict) else None
    except (OSError, ValueError):
        return None


def discard_part(part: Path) -> None:
    """Delete a ``.part`` file and its sidecar."""
    for p in (part, _part_meta_path(part)):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def _validator(meta: dict) -> str | None:
    """The ``If-Range`` value for a recorded transfer: a strong ETag, else Last-Modified."""
    etag = meta.get("etag")
    if etag and not str(etag).startswith("W/"):
        return str(etag)
    return meta.get("last_modified") or None


def _resumable_offset(url: str, part: Path, label: str, expected_size: int | None, need_validator: bool) -> int:
    """Bytes of ``part`` that may be resumed from, or 0 (the part is discarded) when it cannot be trusted.

    A ``.part`` is resumed only when its sidecar says it came from ``url``, it is not longer
    than the recorded (and published) total, and, when ``need_validator`` (no published
    checksum), the server gave an ETag or Last-Modified to resume against with ``If-Range``.
    """
    offset = part.stat().st_size if part.exists() else 0
    if not offset:
        return 0
    meta = _read_part_meta(part)
    reason = None
    if meta is None or meta.get("url") != url:
        reason = "no record of where its bytes came from"
    elif meta.get("total") is not None and offset > int(meta["total"]):
        reason = f"it is longer ({offset:,} bytes) than the file ({int(meta['total']):,} bytes)"
    elif expected_size is not None and offset > expected_size:
        reason = f"it is longer ({offset:,} bytes) than the published size ({expected_size:,} bytes)"
    elif need_validator and not _validator(meta):
        reason = "the server gave no ETag/Last-Modified to check it against and the file has no published checksum"
    if reason:
        log.warning("%s: discarding %s (%s); downloading from byte 0", label, part.name, reason)
        discard_part(part)
        return 0
    return offset


def _http_once(
    url: str,
    part: Path,
    timeout: float,
    label: str,
    expected_size: int | None = None,
    need_validator: bool = False,
    cap: tuple[int, str] | None = None,
) -> None:
    """One attempt: fetch ``url`` into ``part``, resuming from its current size when that is safe.

    A resume sends ``Range`` plus ``If-Range`` (the ETag or Last-Modified recorded when the
    transfer began, in ``<name>.part.json``); the answer must be a 206 whose ``Content-Range``
    starts at the part's size and whose total matches the recorded one, else the part is
    discarded. A 200 (changed file, or no ``Range`` support) restarts from byte 0.

    ``cap`` (bytes, and where the bound comes from; :func:`size_cap`) bounds the file: a
    ``Content-Length`` or ``Content-Range`` above it is refused before the body is read, and a
    body that runs past it is stopped there (:class:`_TooLarge`).
    """
    limit, why = cap or (expected_size, "the published size")
    offset = _resumable_offset(url, part, label, limit, need_validator)
    meta = _read_part_meta(part) if offset else None
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
        validator = _validator(meta or {})
        if validator:
            headers["If-Range"] = validator
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:
            _, total = _parse_content_range(exc.headers.get("Content-Range") if exc.headers else None)
            if total == offset and (meta or {}).get("total") in (None, total):
                return  # the part file is already complete
            discard_part(part)
            raise _Retryable(f"server refused to resume at byte {offset}; restarting") from None
        if exc.code in (408, 425, 429) or exc.code >= 500:
            raise _Retryable(f"HTTP {exc.code} {exc.reason}") from None
        raise _Permanent(f"HTTP {exc.code} {exc.reason}") from None
    with response:
        status = getattr(response, "status", None)
        length_header = response.headers.get("Content-Length") if response.headers else None
        remaining = int(length_header) if length_header and length_header.isdigit() else None
        if offset and status == 206:
            start, total = _parse_content_range(response.headers.get("Content-Range"))
            recorded = (meta or {}).get("total")
            if start != offset or (recorded is not None and total != recorded):
                discard_part(part)
                raise _Retryable(f"server resumed at byte {start} of {total}, not {offset} of {recorded}; restarting")
            mode = "ab"
            meta = {**(meta or {}), "resumed": True}
        else:
            if offset:
                log.info("%s: the server does not resume (status %s); restarting from byte 0", label, status)
            offset, mode, total = 0, "wb", remaining
            if status == 206:  # a partial answer to a request for the whole file
                raise _Retryable("server sent a partial answer to a full request")
            hdr = response.headers
            meta = {
                "url": url,
                "total": total,
                "etag": hdr.get("ETag") if hdr else None,
                "last_modified": hdr.get("Last-Modified") if hdr else None,
                "resumed": False,
            }
        announced = max(offset + (remaining or 0), total or 0)
        if limit is not None and announced > limit:
            raise _TooLarge(f"the server announces {announced:,} bytes, more than {why}")
        write_json(_part_meta_path(part), meta)
        written = 0
        with open(part, mode) as out, _progress(label, total, offset) as advance:
            while block := response.read(CHUNK):
                if limit is not None and offset + written + len(block) > limit:
                    raise _TooLarge(f"the server sent more than {why}; the transfer was stopped there")
                out.write(block)
                written += len(block)
                advance(len(block))
        if remaining is not None and written < remaining:
            raise _Retryable(f"connection closed after {offset + written:,} of {offset + remaining:,} bytes")
        if total is not None and offset + written != total:
            discard_part(part)
            raise _Retryable(f"received {offset + written:,} bytes, not the announced {total:,}; restarting")


def _manual_hint(remote: RemoteFile, dest: Path, command: str) -> str:
    return (
        f"download {remote.url} by hand and place it at {dest} (expected {remote.describe_checksum()}), "
        f"or pass a mirror (`{command} --mirror URL_OR_DIR`); then re-run `{command}`"
    )


def _too_large_hint(remote: RemoteFile) -> str:
    if remote.size is not None:
        return "Check the mirror or URL (it does not serve the catalogued file), then re-run."
    return "Check the mirror or URL, or raise MUSICREP_DOWNLOAD_MAX_BYTES if the file really is that large, then re-run."


def unreachable(exc: BaseException) -> str | None:
    """Why ``exc`` means the host cannot be reached at all (retrying would only wait), or ``None``:
    ``"name does not resolve"`` (DNS, :class:`socket.gaierror`) or ``"connection refused"``."""

    reason = getattr(exc, "reason", None) if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, socket.gaierror):
        return "name does not resolve"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    return None


def _download_http(url: str, part: Path, remote: RemoteFile, dest: Path, command: str, policy: RetryPolicy) -> None:
    host = urllib.parse.urlsplit(url).netloc or url
    last: Exception | None = None
    cap = size_cap(remote)
    for attempt in range(policy.attempts):
        try:
            _http_once(
                url, part, policy.timeout_s, remote.name, remote.size, need_validator=not (remote.sha256 or remote.md5), cap=cap
            )
            return
        except _Permanent as exc:
            raise UserError(f"{host} answered {exc} for {url}; {_manual_hint(remote, dest, command)}.") from None
        except _TooLarge as exc:
            discard_part(part)
            raise UserError(f"{remote.name} from {host} is refused: {exc}; nothing was kept. {_too_large_hint(remote)}") from None
        except (_Retryable, urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            last = exc
            reason = getattr(exc, "reason", None) or exc
            if unreachable(exc):  # a name that does not resolve or a refused connection: no retry helps
                raise UserError(
                    f"cannot reach {host} ({unreachable(exc)}: {reason}); {_manual_hint(remote, dest, command)}."
                ) from None
            if attempt + 1 < policy.attempts:
                delay = policy.delay(attempt)
                log.warning(
                    "download of %s failed (%s); attempt %d/%d, retrying in %.1f s",
                    remote.name,
                    reason,
                    attempt + 1,
                    policy.attempts,
                    delay,
                )
                time.sleep(delay)
    reason = getattr(last, "reason", None) or last
    kept = f" ({part.stat().st_size:,} bytes kept in {part.name} for resuming)" if part.exists() and part.stat().st_size else ""
    raise UserError(
        f"cannot download {remote.name} from {host} ({reason}) after {policy.attempts} attempts{kept}; {_manual_hint(remote, dest, command)}."
    )


def _copy_local(source: Path, part: Path, remote: RemoteFile, dest: Path, dataset: str) -> None:
    if not source.is_file():
        raise UserError(
            f"mirror folder {source.parent} has no {remote.name}; put the file there (expected {remote.describe_checksum()}), "
            f"or place it at {dest}, or drop --mirror to download from {remote.url}."
        )
    limit, why = size_cap(remote)
    if source.stat().st_size > limit:
        raise UserError(
            f"{source} is refused: it holds {source.stat().st_size:,} bytes, more than {why}; nothing was copied. "
            f"{_too_large_hint(remote)}"
        )
    log.info("copying %s from mirror %s", remote.name, source.parent)
    discard_part(part)
    shutil.copyfile(source, part)


def _pinned(remote: RemoteFile) -> RemoteFile:
    """``remote`` with the checksums of ``MUSICREP_CHECKSUM_PINS`` (the rehearsal's miniature files), if it names it."""

    path = settings().checksum_pins
    if path is None:
        return remote
    pins = json.loads(Path(path).read_text()).get(remote.name)
    return replace(remote, **{k: pins.get(k) for k in ("sha256", "md5", "size")}) if pins else remote


def fetch_file(
    remote: RemoteFile,
    raw_dir: Path,
    dataset: str,
    mirror: str | os.PathLike | None = None,
    policy: RetryPolicy | None = None,
    state: DownloadState | None = None,
    command: str | None = None,
) -> Path | None:
    """Bring ``remote`` into ``raw_dir`` verified; return its path (``None`` if optional and unavailable).

    ``command`` is what the user re-runs, named in the error messages (default
    ``musicrep download <dataset>``).

    A present file already recorded as verified (same size and mtime) is not touched; a
    present unrecorded or changed file is verified in place (a file placed by hand). A new
    file is downloaded to ``<name>.part`` (resumed if that exists), verified, then renamed.

    Raises:
        UserError: host unreachable after the retries, HTTP 404, or a checksum mismatch.
    """
    raw_dir = Path(raw_dir)
    raw_dir.mkdir(parents=True, exist_ok=True)
    remote = _pinned(remote)
    command = command or f"musicrep download {dataset}"
    state = state or DownloadState(raw_dir)
    policy = policy or RetryPolicy.from_env()
    dest = raw_dir / remote.name
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        entry = state.entry(remote.name)
        if state.is_verified(remote.name, dest) and not _mismatch(remote, entry, entry["size"], None):  # type: ignore[index, arg-type]
            log.debug("%s already verified", dest)
            return dest
        digests = file_digests(dest)
        bad = _mismatch(remote, digests, dest.stat().st_size, state.entry(remote.name))
        if bad:
            algo, want, got = bad
            raise UserError(f"{dest} fails its {algo} check (expected {want}, got {got}); delete it and re-run `{command}`.")
        state.record(remote.name, dest, digests, remote.url, trusted_on_first_use=not (remote.sha256 or remote.md5))
        log.info("verified %s (already present)", dest)
        return dest
    state.forget(remote.name)
    source = resolve_source(remote, mirror)
    part = dest.with_name(dest.name + ".part")
    try:
        if isinstance(source, Path):
            _copy_local(source, part, remote, dest, dataset)
        else:
            _download_http(source, part, remote, dest, command, policy)
    except UserError as exc:
        if remote.optional:
            log.warning("optional file %s is unavailable; continuing without it (%s)", remote.name, exc)
            return None
        raise
    digests = file_digests(part)
    bad = _mismatch(remote, digests, part.stat().st_size, None)
    resumed = bool((_read_part_meta(part) or {}).get("resumed"))
    if bad and resumed and not isinstance(source, Path):  # a spliced transfer: fetch it whole once more
        log.warning("%s fails its %s check after a resumed transfer; downloading it again from byte 0", remote.name, bad[0])
        discard_part(part)
        _download_http(source, part, remote, dest, command, policy)
        digests, resumed = file_digests(part), False
        bad = _mismatch(remote, digests, part.stat().st_size, None)
    if bad:
        algo, want, got = bad
        discard_part(part)
        raise UserError(
            f"{remote.name} downloaded from {source} fails its {algo} check (expected {want}, got {got}); the download was deleted: "
            f"re-run `{command}`, and if it fails again use another mirror or place a good copy at {dest}."
        )
    os.replace(part, dest)
    discard_part(part)
    if not (remote.sha256 or remote.md5):
        log.warning("%s has no published checksum; recorded its SHA-256 %s for later checks", remote.name, digests["sha256"])
    state.record(remote.name, dest, digests, str(source), trusted_on_first_use=not (remote.sha256 or remote.md5))
    log.info("downloaded and verified %s", dest)
    return dest


def fetch_all(
    files: Sequence[RemoteFile],
    raw_dir: Path,
    dataset: str,
    mirror: str | os.PathLike | None = None,
    policy: RetryPolicy | None = None,
) -> dict[str, Path | None]:
    """:func:`fetch_file` for each file; returns ``{name: path or None}``."""
    state = DownloadState(Path(raw_dir))
    policy = policy or RetryPolicy.from_env()
    return {f.name: fetch_file(f, raw_dir, dataset, mirror, policy, state) for f in files}


# ----------------------------------------------------------------------------- manifest
def write_manifest(
    root: Path,
    dataset: str,
    files: Sequence[Path] | None = None,
    base: Path | None = None,
    out: Path | None = None,
    extra: dict | None = None,
) -> dict:
    """Write ``manifest.json``: every file under ``root`` (or ``files``) with size and SHA-256.

    Hashes of files whose size and mtime did not change since the previous manifest are
    reused, so re-running on an unchanged folder reads nothing.

    Args:
        root: directory to list (``files`` default to every regular file under it, except
            the manifest, the download state, ``.part`` files and hidden temporaries).
        base: paths are recorded relative to this (default ``root``).
        out: manifest path (default ``root / manifest.json``).
    """
    root, base = Path(root), Path(base or root)
    out = Path(out or root / MANIFEST_FILE)
    if files is None:
        files = sorted(
            p
            for p in root.rglob("*")
            if p.is_file()
            and p.name not in (STATE_FILE, MANIFEST_FILE, "COMPLETE.json")
            and not p.name.endswith((".part", ".part.json"))
            and not any(s.startswith(".") and s.endswith(".extracting") for s in p.relative_to(root).parts)
        )
    previous: dict[str, dict] = {}
    if out.exists():
        with contextlib.suppress(OSError, json.JSONDecodeError, KeyError, TypeError):
            previous = {e["path"]: e for e in json.loads(out.read_text())["files"]}
    if (root / STATE_FILE).exists():  # downloads were hashed when verified: no need to read them again
        for name, e in DownloadState(root).data["files"].items():
            rel = (root / name).relative_to(base).as_posix() if (root / name).is_relative_to(base) else str(root / name)
            previous.setdefault(rel, e)

    entries, unreadable = [], []
    for p in track(files, total=len(files), description=f"manifest {dataset}"):
        rel = p.relative_to(base).as_posix() if p.is_relative_to(base) else str(p)
        try:
            st = p.stat()
            old = previous.get(rel)
            digest = (
                old["sha256"]
                if old and old.get("size") == st.st_size and old.get("mtime_ns") == st.st_mtime_ns
                else sha256_file(p)
            )
        except OSError as exc:  # one unreadable file never blocks the dataset: listed, and `segment` reports it
            reason = exc.strerror or exc.__class__.__name__
            log.warning("%s: cannot read it (%s); left out of the manifest (fix its permissions to use it)", p, reason)
            unreadable.append({"path": rel, "reason": reason})
            continue
        entries.append({"path": rel, "size": st.st_size, "sha256": digest, "mtime_ns": st.st_mtime_ns})
    manifest = {
        "dataset": dataset,
        "n_files": len(entries),
        "total_bytes": sum(e["size"] for e in entries),
        "files": entries,
        **({"unreadable": unreadable} if unreadable else {}),
        **(extra or {}),
    }
    write_json(out, manifest)
    return manifest
