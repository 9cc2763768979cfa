"""Fault suite (issue 11): every fault and bad input found in the probe, with the fix proven.

Each test names the defect it covers; ``docs/reliability.md`` maps faults to these tests.
Fast by default; the long ones are marked ``slow``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline import stages
from pipeline.errors import UserError
from pipeline.paths import Layout

REPO = Path(__file__).resolve().parents[1]


def _tiny(**top):
    """Tiny params on synth_keywords with ``fcn``; ``top`` overrides top-level keys (e.g. seed)."""
    from pipeline.config import load_params
    from tests.conftest import tiny_overrides

    over = tiny_overrides(tasks=["synth_keywords"], models=["fcn"], n_clips=24)
    over.update(top)
    return load_params(REPO / "params.yaml", overrides=over)


# ----------------------------------------------------------------------------- defect 1
def test_feature_cache_follows_the_audio(tmp_path: Path) -> None:
    """Defect 1: a new seed (new audio) gives a new feature cache, never the old one, outside DVC."""
    from pipeline.data.shards import FeatureStore, SegmentStore
    from pipeline.train import _feature_store_for, build_for_task

    layout = Layout(tmp_path)
    ds = "synth_keywords"
    p0 = _tiny(seed=0)
    for stage in ("download", "segment", "features"):
        getattr(stages, stage)(ds, p0, layout)
    p1 = _tiny(seed=1)
    for stage in ("download", "segment", "features"):
        getattr(stages, stage)(ds, p1, layout)
    store = SegmentStore(layout.segments(ds))
    model = build_for_task("fcn", ds, p1, n_classes=len(store.labels), multilabel=False, clip_samples=16000)
    feats = _feature_store_for(model, ds, p1, layout)
    assert feats is not None
    caches = [d for d in layout.features(ds).iterdir() if d.is_dir()]
    assert len(caches) == 1, "the cache of the old audio is removed"
    import torch

    row = next(store.manifest.itertuples(index=False))
    with torch.no_grad():
        direct = model.frontend(torch.from_numpy(store.wave(row))[None])[0].numpy()
    np.testing.assert_allclose(feats.frames(row.clip_id), direct, rtol=2**-10, atol=1e-2)
    assert isinstance(feats, FeatureStore)


# ----------------------------------------------------------------------------- defects 3 and 7: downloads
def _tar_gz(members: list[tuple["tarfile.TarInfo", bytes]]) -> bytes:
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for info, data in members:
            if info.isfile():
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return buf.getvalue()


def _member(name: str, kind: bytes | None = None, link: str = "") -> "tarfile.TarInfo":
    import tarfile

    info = tarfile.TarInfo(name)
    if kind is not None:
        info.type = kind
        info.linkname = link
    return info


def _crafted_archives() -> dict[str, bytes]:
    """``{file name: bytes}`` of hostile archives (each also holds one harmless file)."""
    import io
    import tarfile
    import zipfile

    ok = (_member("fsdd/recordings/0_theo_1.wav"), b"RIFF....")
    out = {
        "escape.tar.gz": _tar_gz([ok, (_member("fsdd/../../../evil.txt"), b"pwned")]),
        "absolute.tar.gz": _tar_gz([ok, (_member("/tmp/musicrep-evil-absolute.txt"), b"pwned")]),
        "symlink.tar.gz": _tar_gz([ok, (_member("fsdd/link", tarfile.SYMTYPE, "../../../evil.txt"), b"")]),
        "hardlink.tar.gz": _tar_gz([ok, (_member("fsdd/hard", tarfile.LNKTYPE, "../../evil.txt"), b"")]),
        "device.tar.gz": _tar_gz([ok, (_member("fsdd/null", tarfile.CHRTYPE), b"")]),
        "fifo.tar.gz": _tar_gz([ok, (_member("fsdd/pipe", tarfile.FIFOTYPE), b"")]),
        "bomb.tar.gz": _tar_gz([ok, (_member("fsdd/zeros.bin"), bytes(24 << 20))]),
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr("fsdd/recordings/0_theo_1.wav", b"RIFF....")
        zf.writestr("fsdd/zeros.bin", bytes(24 << 20))
    out["bomb.zip"] = buf.getvalue()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("ok.txt", b"ok")
        info = zipfile.ZipInfo("placeholder")
        info.filename = "../../evil.txt"
        zf.writestr(info, b"pwned")
    out["escape.zip"] = buf.getvalue()
    return out


CRAFTED = {
    "escape.tar.gz": "'..'", "absolute.tar.gz": "absolute", "symlink.tar.gz": "outside the target",
    "hardlink.tar.gz": "outside the target", "device.tar.gz": "device", "fifo.tar.gz": "FIFO",
    "bomb.tar.gz": "would expand to", "bomb.zip": "would expand to", "escape.zip": "'..'",
}


@pytest.fixture(scope="module")
def hostile_server():
    from tests.conftest_data import LoopbackServer

    srv = LoopbackServer(files=_crafted_archives())
    yield srv
    srv.close()


@pytest.mark.parametrize("name", sorted(CRAFTED))
def test_crafted_archive_over_http_is_refused(tmp_path: Path, hostile_server, monkeypatch, name: str) -> None:
    """Defect 3 (bomb) and the solid path checks: a hostile mirror archive is refused and nothing lands outside."""
    from tests.conftest_data import params

    monkeypatch.setenv("MUSICREP_DOWNLOAD_ATTEMPTS", "1")
    monkeypatch.setenv("MUSICREP_EXTRACT_MIN_BYTES", str(8 << 20))  # the bombs expand 1000:1 to 24 MiB
    project = tmp_path / "proj"
    layout = Layout(project)
    p = params({"datasets": {"fsdd": {"mirror": f"{hostile_server.url}/{name}"}}})
    before = set(tmp_path.rglob("*"))
    with pytest.raises(UserError, match=CRAFTED[name]) as err:
        stages.download("fsdd", p, layout)
    assert "nothing was extracted" in str(err.value) and "\n" not in str(err.value)
    raw = layout.raw("fsdd")
    outside = {q for q in set(tmp_path.rglob("*")) - before if not q.is_relative_to(raw)} - {project, project / "data", project / "data" / "raw"}
    assert outside == set()
    assert not Path("/tmp/musicrep-evil-absolute.txt").exists()
    assert not (raw / "recordings").exists()
    leftovers = [q.name for q in raw.iterdir() if q.name.startswith(".")]
    assert leftovers == [], "no hidden extraction folder is left behind"


def test_bomb_is_refused_with_default_limits(tmp_path: Path) -> None:
    """Defect 3: 2 MB that declares 2 GiB is refused from the declared sizes, before anything is written."""
    import zipfile

    from pipeline.data.download import safe_extract

    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("small.txt", b"ok")
    # rewrite the central directory so that the member declares 2 GiB (a lying header)
    data = bytearray(archive.read_bytes())
    cd = data.rfind(b"PK\x01\x02")
    data[cd + 24: cd + 28] = (2 << 30).to_bytes(4, "little") if (2 << 30) < 2**32 else b"\xff\xff\xff\x7f"
    archive.write_bytes(bytes(data))
    with pytest.raises(UserError, match=r"would expand to 2,147,483,648 bytes, more than the limit"):
        safe_extract(archive, tmp_path / "out", "demo")
    assert sorted(q.name for q in tmp_path.iterdir()) == ["bomb.zip"]


DATA = bytes(range(256)) * 1200  # 307,200 bytes


@pytest.fixture()
def blob_server():
    from tests.conftest_data import LoopbackServer

    srv = LoopbackServer(files={"blob.bin": DATA}, validators=True)
    yield srv
    srv.close()


def _remote(**kw):
    from pipeline.data.download import RemoteFile

    return RemoteFile(**{"name": "blob.bin", "url": "https://publisher.invalid/blob.bin", **kw})


FAST = dict(attempts=3, backoff_s=0.01, max_backoff_s=0.05, timeout_s=5.0)


def test_garbage_part_without_provenance_is_discarded(tmp_path: Path, blob_server) -> None:
    """Defect 7: a stale/garbage ``.part`` is never spliced onto the download (no checksum published)."""
    from pipeline.data.download import DownloadState, RetryPolicy, fetch_file

    (tmp_path / "blob.bin.part").write_bytes(b"garbage" * 1000)
    path = fetch_file(_remote(), tmp_path, "demo", mirror=blob_server.url, policy=RetryPolicy(**FAST))
    assert path.read_bytes() == DATA
    assert [r.range for r in blob_server.requests_for("blob.bin")] == [None]
    import hashlib

    assert DownloadState(tmp_path).entry("blob.bin")["sha256"] == hashlib.sha256(DATA).hexdigest()
    assert not (tmp_path / "blob.bin.part.json").exists()


def test_resume_uses_if_range_and_a_changed_file_restarts(tmp_path: Path, blob_server) -> None:
    """Defect 7: a resume sends If-Range with the ETag; a file changed on the server restarts at byte 0."""
    from pipeline.data.download import RetryPolicy, fetch_file

    blob_server.cut_first.add("blob.bin")
    with pytest.raises(UserError, match="kept in blob.bin.part"):
        fetch_file(_remote(), tmp_path, "demo", mirror=blob_server.url, policy=RetryPolicy(**{**FAST, "attempts": 1}))
    assert (tmp_path / "blob.bin.part.json").exists()
    new = DATA[::-1]
    blob_server.files["blob.bin"] = new  # the publisher replaced the file meanwhile
    path = fetch_file(_remote(), tmp_path, "demo", mirror=blob_server.url, policy=RetryPolicy(**FAST))
    assert path.read_bytes() == new, "old bytes are never spliced onto the new file"
    second = blob_server.requests_for("blob.bin")[1]
    assert second.range == f"bytes={len(DATA) // 2}-" and second.if_range and second.status == 200


def test_resume_with_matching_validator_is_spliced(tmp_path: Path, blob_server) -> None:
    """Defect 7 (the good path stays): a part from the same file version resumes with a 206."""
    from pipeline.data.download import RetryPolicy, fetch_file

    blob_server.cut_first.add("blob.bin")
    path = fetch_file(_remote(), tmp_path, "demo", mirror=blob_server.url, policy=RetryPolicy(**FAST))
    assert path.read_bytes() == DATA
    assert [r.status for r in blob_server.requests_for("blob.bin")] == [200, 206]


def test_resume_without_validator_restarts_when_no_checksum(tmp_path: Path) -> None:
    """Defect 7: no published checksum and no ETag/Last-Modified: the part is not trusted, the file restarts."""
    from pipeline.data.download import RetryPolicy, fetch_file
    from tests.conftest_data import LoopbackServer

    srv = LoopbackServer(files={"blob.bin": DATA}, cut_first={"blob.bin"})
    try:
        path = fetch_file(_remote(), tmp_path, "demo", mirror=srv.url, policy=RetryPolicy(**FAST))
        assert path.read_bytes() == DATA
        assert [r.range for r in srv.requests_for("blob.bin")] == [None, None]
    finally:
        srv.close()


def test_spliced_part_failing_its_checksum_is_fetched_whole(tmp_path: Path) -> None:
    """Defect 7: a pinned file whose resumed copy fails its hash is downloaded again from byte 0, not rejected."""
    import hashlib
    import json

    from pipeline.data.download import RetryPolicy, fetch_file
    from tests.conftest_data import LoopbackServer

    srv = LoopbackServer(files={"blob.bin": DATA})
    try:
        url = f"{srv.url}/blob.bin"
        (tmp_path / "blob.bin.part").write_bytes(b"\0" * 1000)  # wrong bytes, with a plausible record
        (tmp_path / "blob.bin.part.json").write_text(json.dumps({"url": url, "total": len(DATA)}))
        remote = _remote(sha256=hashlib.sha256(DATA).hexdigest(), size=len(DATA))
        path = fetch_file(remote, tmp_path, "demo", mirror=srv.url, policy=RetryPolicy(**FAST))
        assert path.read_bytes() == DATA
        assert [r.range for r in srv.requests_for("blob.bin")] == ["bytes=1000-", None]
    finally:
        srv.close()
