"""pipeline.data.download: resume, retry, checksums, idempotence, safe extraction, mirrors.

Every transfer goes to an HTTP server on 127.0.0.1 started by the test; nothing leaves the
machine.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

from pipeline.core.errors import UserError
from pipeline.data import archives
from pipeline.data import download as dl
from pipeline.data.archives import safe_extract
from pipeline.data.download import DownloadState, RemoteFile, RetryPolicy, fetch_file
from tests.conftest_data import LoopbackServer, closed_port, make_tar_gz, make_zip

FAST = RetryPolicy(attempts=3, backoff_s=0.01, max_backoff_s=0.05, timeout_s=5.0)
DATA = os.urandom(300_000)
SHA = hashlib.sha256(DATA).hexdigest()


@pytest.fixture()
def server():
    srv = LoopbackServer(files={"blob.bin": DATA})
    yield srv
    srv.close()


def remote(**kw) -> RemoteFile:
    base = {"name": "blob.bin", "url": "https://publisher.invalid/data/blob.bin", "sha256": SHA, "size": len(DATA)}
    return RemoteFile(**{**base, **kw})


# ----------------------------------------------------------------------------- resume
def test_interrupted_transfer_resumes_with_range(tmp_path: Path, server: LoopbackServer) -> None:
    server.cut_first.add("blob.bin")
    path = fetch_file(remote(), tmp_path, "demo", mirror=server.url, policy=FAST)
    assert path == tmp_path / "blob.bin" and path.read_bytes() == DATA
    first, second = server.requests_for("blob.bin")
    assert first.range is None and first.bytes_sent == len(DATA) // 2
    assert second.range == f"bytes={len(DATA) // 2}-" and second.status == 206
    assert second.bytes_sent == len(DATA) - len(DATA) // 2  # the first half was not sent again
    assert not (tmp_path / "blob.bin.part").exists()
    state = json.loads((tmp_path / dl.STATE_FILE).read_text())
    assert state["files"]["blob.bin"]["sha256"] == SHA


def test_interrupted_run_keeps_part_and_next_run_resumes(tmp_path: Path, server: LoopbackServer) -> None:
    server.cut_first.add("blob.bin")
    with pytest.raises(UserError, match=r"kept in blob\.bin\.part"):
        fetch_file(remote(), tmp_path, "demo", mirror=server.url, policy=RetryPolicy(attempts=1, timeout_s=5))
    assert (tmp_path / "blob.bin.part").stat().st_size == len(DATA) // 2
    assert not (tmp_path / "blob.bin").exists()  # never renamed before verification
    fetch_file(remote(), tmp_path, "demo", mirror=server.url, policy=FAST)
    assert (tmp_path / "blob.bin").read_bytes() == DATA
    assert server.log[-1].range == f"bytes={len(DATA) // 2}-"
    assert sum(r.bytes_sent for r in server.log) == len(DATA)


def test_server_without_range_support_restarts_cleanly(tmp_path: Path, server: LoopbackServer) -> None:
    server.cut_first.add("blob.bin")
    server.honour_range = False
    fetch_file(remote(), tmp_path, "demo", mirror=server.url, policy=FAST)
    assert (tmp_path / "blob.bin").read_bytes() == DATA
    assert [r.status for r in server.requests_for("blob.bin")] == [200, 200]


def test_transient_errors_are_retried_with_backoff(tmp_path: Path, server: LoopbackServer, monkeypatch) -> None:
    server.errors["blob.bin"] = [503, 500]
    sleeps: list[float] = []
    monkeypatch.setattr(dl.time, "sleep", sleeps.append)
    fetch_file(remote(), tmp_path, "demo", mirror=server.url, policy=RetryPolicy(attempts=3, backoff_s=1.0, max_backoff_s=60))
    assert [r.status for r in server.requests_for("blob.bin")] == [503, 500, 200]
    assert sleeps == [1.0, 2.0]  # exponential
    assert (tmp_path / "blob.bin").read_bytes() == DATA


# ----------------------------------------------------------------------------- idempotence and checks
def test_rerun_downloads_nothing(tmp_path: Path, server: LoopbackServer) -> None:
    fetch_file(remote(), tmp_path, "demo", mirror=server.url, policy=FAST)
    n = len(server.log)
    mtime = (tmp_path / "blob.bin").stat().st_mtime_ns
    again = fetch_file(remote(), tmp_path, "demo", mirror=server.url, policy=FAST, state=DownloadState(tmp_path))
    assert again == tmp_path / "blob.bin" and len(server.log) == n
    assert (tmp_path / "blob.bin").stat().st_mtime_ns == mtime


def test_tampered_file_fails_its_checksum(tmp_path: Path, server: LoopbackServer) -> None:
    fetch_file(remote(), tmp_path, "demo", mirror=server.url, policy=FAST)
    target = tmp_path / "blob.bin"
    raw = bytearray(target.read_bytes())
    raw[1000] ^= 0xFF
    target.write_bytes(bytes(raw))
    got = hashlib.sha256(raw).hexdigest()
    with pytest.raises(UserError) as err:
        fetch_file(remote(), tmp_path, "demo", mirror=server.url, policy=FAST)
    msg = str(err.value)
    assert f"fails its SHA-256 check (expected {SHA}, got {got})" in msg
    assert "delete it and re-run `musicrep download demo`" in msg
    assert len(server.requests_for("blob.bin")) == 1


def test_wrong_bytes_from_the_server_are_not_kept(tmp_path: Path, server: LoopbackServer) -> None:
    server.files["blob.bin"] = DATA[:-1] + b"\x00"
    with pytest.raises(UserError, match=r"blob\.bin downloaded from .* fails its SHA-256 check \(expected " + SHA):
        fetch_file(remote(size=None), tmp_path, "demo", mirror=server.url, policy=FAST)
    assert not (tmp_path / "blob.bin").exists() and not (tmp_path / "blob.bin.part").exists()


def test_md5_only_and_size_checks(tmp_path: Path, server: LoopbackServer) -> None:
    md5 = hashlib.md5(DATA).hexdigest()
    fetch_file(remote(sha256=None, md5=md5), tmp_path / "a", "demo", mirror=server.url, policy=FAST)
    with pytest.raises(UserError, match="fails its MD5 check"):
        fetch_file(remote(sha256=None, md5="0" * 32), tmp_path / "b", "demo", mirror=server.url, policy=FAST)
    with pytest.raises(UserError, match="fails its size check"):
        fetch_file(remote(sha256=None, size=len(DATA) + 1), tmp_path / "c", "demo", mirror=server.url, policy=FAST)


def test_unpublished_checksum_is_trusted_on_first_use(tmp_path: Path, server: LoopbackServer) -> None:
    fetch_file(remote(sha256=None, size=None), tmp_path, "demo", mirror=server.url, policy=FAST)
    entry = DownloadState(tmp_path).entry("blob.bin")
    assert entry["sha256"] == SHA and entry["trusted_on_first_use"] is True
    (tmp_path / "blob.bin").write_bytes(DATA[::-1])
    with pytest.raises(UserError, match=r"recorded at its first download\) check"):
        fetch_file(remote(sha256=None, size=None), tmp_path, "demo", mirror=server.url, policy=FAST)


def test_file_placed_by_hand_is_verified_not_downloaded(tmp_path: Path, server: LoopbackServer) -> None:
    (tmp_path / "blob.bin").write_bytes(DATA)
    fetch_file(remote(), tmp_path, "demo", mirror=server.url, policy=FAST)
    assert server.log == []
    assert DownloadState(tmp_path).is_verified("blob.bin", tmp_path / "blob.bin")


# ----------------------------------------------------------------------------- failures a user can fix
def test_unreachable_host_explains_manual_placement(tmp_path: Path) -> None:
    t0 = time.monotonic()
    with pytest.raises(UserError) as err:
        fetch_file(remote(), tmp_path, "demo", mirror=f"http://127.0.0.1:{closed_port()}/base", policy=FAST)
    msg = str(err.value)
    assert "cannot reach 127.0.0.1" in msg and "connection refused" in msg  # at once: a refused connection is not retried
    assert f"place it at {tmp_path / 'blob.bin'}" in msg and f"SHA-256 {SHA}" in msg
    assert "https://publisher.invalid/data/blob.bin" in msg and "`musicrep download demo`" in msg
    assert time.monotonic() - t0 < 10


def test_a_name_that_does_not_resolve_fails_at_once(tmp_path: Path, monkeypatch) -> None:
    import socket
    import urllib.request

    calls = []

    def no_dns(*args, **kwargs):
        calls.append(1)
        raise urllib.error.URLError(socket.gaierror(socket.EAI_NONAME, "Name or service not known"))

    monkeypatch.setattr(urllib.request, "urlopen", no_dns)
    monkeypatch.setattr(dl.time, "sleep", lambda s: pytest.fail("a DNS failure was retried"))
    with pytest.raises(UserError, match=r"cannot reach mirror\.invalid \(name does not resolve: .*place it at"):
        fetch_file(remote(), tmp_path, "demo", mirror="http://mirror.invalid/base", policy=FAST)
    assert calls == [1]


def test_not_found_is_not_retried(tmp_path: Path, server: LoopbackServer) -> None:
    with pytest.raises(UserError, match=r"HTTP 404.*place it at"):
        fetch_file(remote(name="absent.bin"), tmp_path, "demo", mirror=server.url, policy=FAST)
    assert len(server.log) == 1


def test_optional_file_failure_is_skipped(tmp_path: Path, server: LoopbackServer) -> None:
    assert fetch_file(remote(name="absent.bin", optional=True), tmp_path, "demo", mirror=server.url, policy=FAST) is None


def test_local_directory_mirror(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "blob.bin").write_bytes(DATA)
    out = fetch_file(remote(), tmp_path / "raw", "demo", mirror=str(mirror), policy=FAST)
    assert out.read_bytes() == DATA
    with pytest.raises(UserError, match="mirror folder .* has no other.bin"):
        fetch_file(remote(name="other.bin"), tmp_path / "raw", "demo", mirror=str(mirror), policy=FAST)
    with pytest.raises(UserError, match="neither a URL"):
        fetch_file(remote(name="x.bin"), tmp_path / "raw", "demo", mirror=str(tmp_path / "nope"), policy=FAST)


def test_policy_from_environment(monkeypatch) -> None:
    monkeypatch.setenv("MUSICREP_DOWNLOAD_ATTEMPTS", "7")
    monkeypatch.setenv("MUSICREP_DOWNLOAD_BACKOFF_S", "0.5")
    p = RetryPolicy.from_env()
    assert p.attempts == 7 and p.delay(0) == 0.5 and p.delay(3) == 4.0
    monkeypatch.setenv("MUSICREP_DOWNLOAD_ATTEMPTS", "many")
    with pytest.raises(UserError, match="MUSICREP_DOWNLOAD"):
        RetryPolicy.from_env()


# ----------------------------------------------------------------------------- extraction
def _tar_with(member: tarfile.TarInfo, data: bytes = b"") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        ok = tarfile.TarInfo("pkg/ok.txt")
        ok.size = 2
        tar.addfile(ok, io.BytesIO(b"ok"))
        member.size = len(data) if member.isfile() else 0
        tar.addfile(member, io.BytesIO(data) if member.isfile() else None)
    return buf.getvalue()


def _sym(name: str, target: str, kind=tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


@pytest.mark.parametrize(
    "member,why",
    [
        (tarfile.TarInfo("../evil.txt"), "'..'"),
        (tarfile.TarInfo("pkg/../../evil.txt"), "'..'"),
        (tarfile.TarInfo("/tmp/evil-absolute.txt"), "absolute"),
        (_sym("pkg/link", "../../evil.txt"), "outside"),
        (_sym("pkg/link", "/etc/passwd"), "outside"),
        (_sym("pkg/hard", "../evil.txt", tarfile.LNKTYPE), "outside"),
    ],
)
def test_unsafe_tar_members_are_rejected(tmp_path: Path, member: tarfile.TarInfo, why: str) -> None:
    archive = tmp_path / "dl" / "bad.tar.gz"
    archive.parent.mkdir()
    archive.write_bytes(_tar_with(member, b"pwned" if member.isfile() else b""))
    target = tmp_path / "dl" / "out"
    with pytest.raises(UserError, match=f"unsafe member.*{why}.*nothing was extracted"):
        safe_extract(archive, target, "demo")
    assert not target.exists() and not (tmp_path / "evil.txt").exists()
    assert sorted(p.name for p in archive.parent.iterdir()) == ["bad.tar.gz"]  # no temporary left behind


@pytest.mark.parametrize("name", ["../evil.txt", "/abs/evil.txt", "a/../../evil.txt", "C:/evil.txt"])
def test_unsafe_zip_members_are_rejected(tmp_path: Path, name: str) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("ok.txt", b"ok")
        info = zipfile.ZipInfo("placeholder")
        info.filename = name  # ZipInfo normalises on creation; set the raw name afterwards
        zf.writestr(info, b"pwned")
    archive = tmp_path / "bad.zip"
    archive.write_bytes(buf.getvalue())
    with pytest.raises(UserError, match="unsafe member"):
        safe_extract(archive, tmp_path / "out", "demo")
    assert not (tmp_path / "out").exists() and not (tmp_path / "evil.txt").exists()


def test_zip_symlink_pointing_outside_is_rejected(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        info = zipfile.ZipInfo("link")
        info.external_attr = 0o120777 << 16
        zf.writestr(info, "../../etc/passwd")
    (tmp_path / "bad.zip").write_bytes(buf.getvalue())
    with pytest.raises(UserError, match="links to"):
        safe_extract(tmp_path / "bad.zip", tmp_path / "out", "demo")


def test_safe_members_extract_atomically(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in {"./a/b.txt": b"hello", "./c.txt": b"x"}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        tar.addfile(_sym("./a/inner-link", "b.txt"))  # a link that stays inside is fine
    (tmp_path / "ok.tar.gz").write_bytes(buf.getvalue())
    target = tmp_path / "out"
    target.mkdir()
    (target / "stale.txt").write_text("old")  # a previous extraction is replaced as a whole
    safe_extract(tmp_path / "ok.tar.gz", target, "demo")
    assert (target / "a" / "b.txt").read_bytes() == b"hello" and (target / "c.txt").read_bytes() == b"x"
    assert not (target / "stale.txt").exists()
    assert (target / "a" / "inner-link").resolve() == (target / "a" / "b.txt").resolve()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.tar.gz", "out"]


def test_corrupt_archive_gives_clear_error(tmp_path: Path) -> None:
    blob = make_tar_gz({"a.txt": os.urandom(50_000)})
    (tmp_path / "cut.tar.gz").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(UserError, match=r"cannot extract cut\.tar\.gz .*delete it and re-run `musicrep download demo`"):
        safe_extract(tmp_path / "cut.tar.gz", tmp_path / "out", "demo")
    assert not (tmp_path / "out").exists()


def test_byte_split_zip_parts_extract_without_concatenating(tmp_path: Path) -> None:
    members = {f"{d}/clip-{i}.bin": os.urandom(7_000 + i) for d in "0cf" for i in range(4)}
    blob = make_zip(members)
    cuts = [0, len(blob) // 3, 2 * len(blob) // 3, len(blob)]
    parts = []
    for i in range(3):
        p = tmp_path / f"mp3.zip.00{i + 1}"
        p.write_bytes(blob[cuts[i] : cuts[i + 1]])
        parts.append(p)
    safe_extract(parts, tmp_path / "mp3", "demo")
    for name, data in members.items():
        assert (tmp_path / "mp3" / name).read_bytes() == data
    with archives.open_concatenated(parts) as f:
        f.seek(cuts[1] - 5)
        assert f.read(10) == blob[cuts[1] - 5 : cuts[1] + 5]
        f.seek(-3, io.SEEK_END)
        assert f.read() == blob[-3:]


def test_manifest_lists_sizes_and_hashes(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x.wav").write_bytes(b"abc")
    (tmp_path / "y.part").write_bytes(b"partial")
    m = dl.write_manifest(tmp_path, "demo")
    assert [(e["path"], e["size"], e["sha256"]) for e in m["files"]] == [("d/x.wav", 3, hashlib.sha256(b"abc").hexdigest())]
    assert json.loads((tmp_path / dl.MANIFEST_FILE).read_text())["n_files"] == 1
