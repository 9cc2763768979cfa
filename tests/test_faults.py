"""Fault suite (issue 11): every fault and bad input found in the probe, with the fix proven.

Each test names the defect it covers; ``docs/reliability.md`` maps faults to these tests.
Fast by default; the long ones are marked ``slow``.
"""

from __future__ import annotations

import re
import tarfile
from pathlib import Path

import numpy as np
import pytest

from pipeline.core.errors import UserError
from pipeline.core.paths import Layout
from pipeline.orchestration import stages
from tests.helpers import flows_server_command, free_port, mlflow_ui_command, run_cli, serving

REPO = Path(__file__).resolve().parents[1]


def _tiny(**top):
    """Tiny params on synth_keywords with ``fcn``; ``top`` overrides top-level keys (e.g. seed)."""
    from pipeline.config.params import load_params
    from tests.conftest import tiny_overrides

    over = tiny_overrides(tasks=["synth_keywords"], models=["fcn"], n_clips=24)
    over.update(top)
    return load_params(REPO / "params.yaml", overrides=over)


# ----------------------------------------------------------------------------- defect 1
def test_feature_cache_follows_the_audio(tmp_path: Path) -> None:
    """Defect 1: a new seed (new audio) gives a new feature cache, never the old one, outside DVC."""
    from pipeline.config.params import grid_model
    from pipeline.data.shards import FeatureStore, SegmentStore
    from pipeline.models.build import build_for_task
    from pipeline.training.train import _feature_store_for

    layout = Layout(tmp_path)
    ds = "synth_keywords"
    p0 = _tiny(seed=0)
    for stage in ("download", "segment", "features"):
        getattr(stages, stage)(ds, p0, layout)
    p1 = _tiny(seed=1)
    for stage in ("download", "segment", "features"):
        getattr(stages, stage)(ds, p1, layout)
    store = SegmentStore(layout.segments(ds))
    model = build_for_task(grid_model(p1, "fcn"), ds, n_classes=len(store.labels), multilabel=False, clip_samples=16000)
    feats = _feature_store_for(model, ds, layout, enabled=True)
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
def _tar_gz(members: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for info, data in members:
            if info.isfile():
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return buf.getvalue()


def _member(name: str, kind: bytes | None = None, link: str = "") -> tarfile.TarInfo:
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
    "escape.tar.gz": "'..'",
    "absolute.tar.gz": "absolute",
    "symlink.tar.gz": "outside the target",
    "hardlink.tar.gz": "outside the target",
    "device.tar.gz": "device",
    "fifo.tar.gz": "FIFO",
    "bomb.tar.gz": "would expand to",
    "bomb.zip": "would expand to",
    "escape.zip": "'..'",
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
    outside = {
        q for q in set(tmp_path.rglob("*")) - before if not q.is_relative_to(raw) and not q.is_relative_to(project / ".musicrep")
    }
    outside -= {project, project / "data", project / "data" / "raw"}  # (.musicrep/locks: the stage lock)
    assert outside == set()
    assert not Path("/tmp/musicrep-evil-absolute.txt").exists()
    assert not (raw / "recordings").exists()
    leftovers = [q.name for q in raw.iterdir() if q.name.startswith(".")]
    assert leftovers == [], "no hidden extraction folder is left behind"


def test_bomb_is_refused_with_default_limits(tmp_path: Path) -> None:
    """Defect 3: 2 MB that declares 2 GiB is refused from the declared sizes, before anything is written."""
    import zipfile

    from pipeline.data.archives import safe_extract

    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("small.txt", b"ok")
    # rewrite the central directory so that the member declares 2 GiB (a lying header)
    data = bytearray(archive.read_bytes())
    cd = data.rfind(b"PK\x01\x02")
    data[cd + 24 : cd + 28] = (2 << 30).to_bytes(4, "little") if (2 << 30) < 2**32 else b"\xff\xff\xff\x7f"
    archive.write_bytes(bytes(data))
    with pytest.raises(UserError, match=r"would expand to 2,147,483,648 bytes, more than the limit"):
        safe_extract(archive, tmp_path / "out", "demo")
    assert sorted(q.name for q in tmp_path.iterdir()) == ["bomb.zip"]


DATA = bytes(range(256)) * 1200  # 307,200 bytes


@pytest.fixture()
def blob_server():
    from tests.conftest_data import LoopbackServer

    srv = LoopbackServer(files={"blob.bin": DATA})
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

    srv = LoopbackServer(files={"blob.bin": DATA}, cut_first={"blob.bin"}, validators=False)
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


# ----------------------------------------------------------------------------- defects 4 and 5: bad inputs
def _tone(path: Path, seconds: float = 1.5, sr: int = 16000, freq: float = 440.0) -> Path:
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sr)) / sr
    sf.write(str(path), (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), sr, subtype="PCM_16")
    return path


def _truncate_wav(path: Path, keep_data_bytes: int = 2624) -> None:
    """Cut the data chunk short while the header still declares all of it (as a killed copy would)."""
    blob = path.read_bytes()
    at = blob.index(b"data") + 8
    path.write_bytes(blob[: at + keep_data_bytes])


def _unreadable(monkeypatch, path: Path) -> None:
    """Make ``path`` unreadable: chmod 000, and (as root, who reads anything) the same seen by the code."""
    import os

    path.chmod(0)
    if os.geteuid() != 0:
        return
    import pipeline.audio.io as audio
    import pipeline.core.io_utils as io_utils

    real_access, real_sha = os.access, io_utils.sha256_file

    def access(p, mode, *a, **k):
        return False if Path(p) == path else real_access(p, mode, *a, **k)

    def sha(p, *a, **k):
        if Path(p) == path:
            raise PermissionError(13, "Permission denied", str(p))
        return real_sha(p, *a, **k)

    monkeypatch.setattr(audio.os, "access", access)
    monkeypatch.setattr(io_utils, "sha256_file", sha)


@pytest.fixture()
def bad_folder(tmp_path: Path, monkeypatch) -> tuple[Path, dict[str, str]]:
    """Folder-per-class audio with good files and one of each bad input; returns ``(root, {name: reason})``."""
    import os

    root = tmp_path / "mine"
    for cls, freq in (("low", 220.0), ("high", 880.0)):
        for i in range(6):
            _tone(root / cls / f"{cls}_{i}.wav", freq=freq * (1 + 0.05 * i))
    trunc = _tone(root / "low" / "truncated.wav")
    _truncate_wav(trunc)
    (root / "low" / "notes.mp3").write_text("this is a text file renamed .mp3\n" * 20)
    (root / "high" / "loop.wav").symlink_to("loop.wav")
    (root / "high" / "dangling.wav").symlink_to("gone.wav")
    os.mkfifo(root / "high" / "pipe.wav")
    _unreadable(monkeypatch, _tone(root / "high" / "locked.wav"))
    expected = {
        "truncated.wav": "truncated (its header declares",
        "notes.mp3": "not a decodable audio file",
        "loop.wav": "symbolic link loop",
        "dangling.wav": "dangling symbolic link",
        "pipe.wav": "named pipe (FIFO)",
        "locked.wav": "permission denied",
    }
    yield root, expected
    (root / "high" / "locked.wav").chmod(0o644)


def test_bad_inputs_are_reported_and_good_files_kept(tmp_path: Path, bad_folder, caplog) -> None:
    """Defects 4 and 5: each bad file is listed in report.json with its reason and one log line; the rest is used."""
    import json
    import logging

    root, expected = bad_folder
    layout = Layout(tmp_path / "proj")
    p = _tiny()
    p = p.model_copy(
        update={"datasets": p.datasets.model_copy(update={"folder": p.datasets.folder.model_copy(update={"path": str(root)})})}
    )
    with caplog.at_level(logging.WARNING):
        stages.download("folder", p, layout)  # the unreadable file does not stop the download
        stages.segment("folder", p, layout)
    report = json.loads((layout.segments("folder") / "report.json").read_text())
    reasons = {Path(s["path"]).name: s["reason"] for s in report["skipped"]}
    for name, why in expected.items():
        assert why in reasons.get(name, ""), f"{name}: {reasons.get(name)!r}"
        lines = [r for r in caplog.records if name in r.getMessage() and r.name == "pipeline.data.segment"]
        assert len(lines) == 1, f"one log line for {name}"
    assert "possibly a pipe" not in json.dumps(report)
    import pandas as pd

    manifest = pd.read_parquet(layout.segments("folder") / "manifest.parquet")
    assert len(manifest) == 12 and not any(n in " ".join(manifest["source_path"]) for n in expected)


def test_read_audio_names_each_bad_input(tmp_path: Path, bad_folder) -> None:
    """Defect 5: :func:`read_audio` gives a named reason for each bad input, and never opens the FIFO."""
    from pipeline.audio.io import AudioError, read_audio

    root, expected = bad_folder
    for path in sorted(root.rglob("*")):
        if path.name in expected:
            with pytest.raises(AudioError, match=re.escape(expected[path.name])):
                read_audio(path)


def test_truncated_wav_is_not_a_short_clip(tmp_path: Path) -> None:
    """Defect 5: 7,962 declared bytes with 2,624 present is 'truncated', not a 0.08 s clip."""
    from pipeline.audio.io import AudioError, read_audio

    path = _tone(tmp_path / "t.wav", seconds=7962 / 32000)
    _truncate_wav(path)
    with pytest.raises(AudioError, match=r"truncated \(its header declares 7,962 data bytes, only 2,624 are present\)"):
        read_audio(path)


# ----------------------------------------------------------------------------- a trained model (predict, model card)
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Two tiny trained models of different label sets: ``(layout, keywords model dir, tags model dir)``."""
    import torch

    from pipeline.config.params import load_params
    from tests.conftest import tiny_overrides

    torch.set_num_threads(1)
    layout = Layout(tmp_path_factory.mktemp("faults-proj"))
    over = tiny_overrides(tasks=["synth_keywords", "synth_tags"], models=["fcn"], n_clips=24)
    over["features"] = {"enabled": False}
    params = load_params(REPO / "params.yaml", overrides=over)
    dirs = []
    for task in ("synth_keywords", "synth_tags"):
        stages.download(task, params, layout)
        stages.segment(task, params, layout)
        dirs.append(stages.train(task, "fcn", params, layout, resume=False))
    return layout, params, dirs[0], dirs[1]


def test_predict_on_a_fifo_refuses_at_once(tmp_path: Path, trained) -> None:
    """Defect 5: ``predict`` on a FIFO names it and returns instead of hanging; good files are still predicted."""
    import os
    import threading

    from pipeline.inference.predict import predict

    _, _, model_dir, _ = trained
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    good = _tone(tmp_path / "good.wav")
    result: dict = {}
    worker = threading.Thread(target=lambda: result.update(pred=predict([fifo, good], str(model_dir))), daemon=True)
    worker.start()
    worker.join(60)
    if worker.is_alive():  # unblock the reader so that the test run can finish
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        pytest.fail("predict blocked on the FIFO")
    pred = result["pred"]
    assert [Path(f["path"]).name for f in pred.failures] == ["pipe.wav"]
    assert "named pipe (FIFO)" in pred.failures[0]["error"]
    assert [Path(r["path"]).name for r in pred.records] == ["good.wav"]


def _cli(monkeypatch, capsys, *argv: str) -> tuple[int, list[str]]:
    """Run ``musicrep ARGV`` in-process; return ``(exit code, stderr lines)``."""
    code, err = run_cli(monkeypatch, capsys, *argv)
    return code, [line for line in err.splitlines() if line.strip()]


# ----------------------------------------------------------------------------- defect 8: model card vs weights
def _swap_weights(dst: Path, src: Path) -> None:
    """Put ``src``'s model.pt into ``dst`` and fix up the card's checksum (the probe's attack)."""
    import json
    import shutil

    from pipeline.core.io_utils import sha256_file

    shutil.copyfile(src / "model.pt", dst / "model.pt")
    card = json.loads((dst / "model.json").read_text())
    card["sha256"] = sha256_file(dst / "model.pt")
    (dst / "model.json").write_text(json.dumps(card))


def test_weights_of_another_model_are_refused(tmp_path: Path, trained, monkeypatch, capsys) -> None:
    """Defect 8: another model's model.pt behind a fixed-up checksum is refused at load, in one line."""
    import shutil

    from pipeline.models.checkpoint import load_model

    _, _, keywords, tags = trained
    bad = tmp_path / "swapped"
    shutil.copytree(keywords, bad)
    _swap_weights(bad, tags)
    with pytest.raises(UserError, match="belongs to another model"):
        load_model(bad)
    good = _tone(tmp_path / "a.wav")
    code, err = _cli(monkeypatch, capsys, "predict", str(good), "--model", str(bad))
    assert code == 2 and len(err) == 1 and "belongs to another model" in err[0] and "Traceback" not in err[0]


def test_card_label_count_must_match_the_outputs(tmp_path: Path, trained) -> None:
    """Defect 8: a card whose labels do not match the weights' output size is refused (not wrong names)."""
    import json
    import shutil

    from pipeline.models.checkpoint import load_model

    _, _, keywords, _ = trained
    bad = tmp_path / "relabelled"
    shutil.copytree(keywords, bad)
    card = json.loads((bad / "model.json").read_text())
    card["labels"] = card["labels"][:-1]
    (bad / "model.json").write_text(json.dumps(card))
    with pytest.raises(UserError, match=r"lists \d+ labels for a model with \d+ outputs"):
        load_model(bad)
    card["config"]["n_classes"] -= 1  # consistent card, but the weights have one more output
    (bad / "model.json").write_text(json.dumps(card))
    with pytest.raises(UserError, match="belongs to another model|does not fit"):
        load_model(bad)


def test_evaluate_with_swapped_weights_is_a_clear_error(tmp_path: Path, trained) -> None:
    """Defect 8: ``evaluate`` on a model dir holding another model's weights fails with a UserError, not IndexError."""
    import shutil

    layout, params, keywords, tags = trained
    backup = tmp_path / "backup"
    shutil.copytree(keywords, backup)
    try:
        _swap_weights(keywords, tags)
        with pytest.raises(UserError, match="belongs to another model"):
            stages.evaluate("synth_keywords", "fcn", params, layout)
    finally:
        shutil.rmtree(keywords)
        shutil.copytree(backup, keywords)


def test_corrupt_model_card_is_one_line(tmp_path: Path, trained, monkeypatch, capsys) -> None:
    """Defect 8: a corrupt model.json gives one clear line (no JSONDecodeError traceback)."""
    import shutil

    _, _, keywords, _ = trained
    bad = tmp_path / "corrupt"
    shutil.copytree(keywords, bad)
    (bad / "model.json").write_text('{"format": "musicrep-model", "labels": [')
    code, err = _cli(monkeypatch, capsys, "predict", str(_tone(tmp_path / "a.wav")), "--model", str(bad))
    assert code == 2 and len(err) == 1 and "model.json is corrupt (not readable JSON at line 1" in err[0]


# ----------------------------------------------------------------------------- defect 10: smaller ones
def test_atomic_writes_respect_the_umask(tmp_path: Path) -> None:
    """Defect 10: JSON/model/report files get the umask's mode (0644 under 022), not mkstemp's 0600."""
    import os
    import stat as st

    from pipeline.core.io_utils import atomic_path, make_temp_dir, write_json

    old = os.umask(0o022)
    try:
        write_json(tmp_path / "a.json", {"x": 1})
        with atomic_path(tmp_path / "b.bin") as tmp:
            tmp.write_bytes(b"x")
        folder = make_temp_dir(prefix=".reports.tmp-", dir=tmp_path)
        assert st.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o644
        assert st.S_IMODE((tmp_path / "b.bin").stat().st_mode) == 0o644
        assert st.S_IMODE(folder.stat().st_mode) == 0o755
        os.umask(0o077)
        write_json(tmp_path / "c.json", {"x": 1})
        assert st.S_IMODE((tmp_path / "c.json").stat().st_mode) == 0o600
    finally:
        os.umask(old)


def test_extracted_folder_respects_the_umask(tmp_path: Path) -> None:
    """Defect 10: an extracted archive's folder is 0755 under umask 022, not mkdtemp's 0700."""
    import os
    import stat as st

    from pipeline.data.archives import safe_extract
    from tests.conftest_data import make_zip

    (tmp_path / "a.zip").write_bytes(make_zip({"x/y.txt": b"y"}))
    old = os.umask(0o022)
    try:
        safe_extract(tmp_path / "a.zip", tmp_path / "out", "demo")
    finally:
        os.umask(old)
    assert st.S_IMODE((tmp_path / "out").stat().st_mode) == 0o755


def _params_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text((REPO / "params.yaml").read_text() + "\n" + text)
    return path


def test_duplicate_yaml_section_is_refused(tmp_path: Path, monkeypatch, capsys) -> None:
    """Defect 10: a repeated section no longer silently replaces the first."""
    from pipeline.config.params import load_params

    path = _params_file(tmp_path, "train:\n  epochs: 3\ntrain:\n  epochs: 4\n")
    with pytest.raises(UserError, match=r"key 'train' appears twice \(lines \d+ and \d+\)"):
        load_params(path)
    code, err = _cli(monkeypatch, capsys, "params", str(path), "--check")
    assert code == 2 and len(err) == 1 and "appears twice" in err[0]


def test_huge_seed_is_refused_by_the_check(tmp_path: Path, monkeypatch, capsys) -> None:
    """Defect 10: a seed too big for the RNGs is a params error, not an overflow traceback in training."""
    import yaml

    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["seed"] = 2**70
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    code, err = _cli(monkeypatch, capsys, "params", str(path), "--check")
    assert code == 2 and len(err) == 1 and "'seed'" in err[0] and "Traceback" not in err[0]


@pytest.mark.parametrize(
    "change,why",
    [
        ({"grid": {"models": ["fcn", "no_such_model"]}}, "unknown model variant 'no_such_model'"),
        ({"grid": {"models": ["mel+samplecnn"]}}, "cannot feed the 'samplecnn' back-end"),
        ({"grid": {"tasks": ["synth_tagz"]}}, "unknown dataset 'synth_tagz'"),
        ({"robustness": {"grid": {"white_nosie": [10.0]}}}, "unknown perturbation 'white_nosie'"),
        (
            {"robustness": {"noise_source": "/no/such/noise/folder"}},
            "neither 'synthetic', 'speech_commands' nor an existing folder",
        ),
        (
            {"variants": {"fcn_x": {"model": "fcn", "options": {"n_melz": 64}}}, "grid": {"models": ["fcn_x"]}},
            "unknown option 'n_melz'",
        ),
    ],
)
def test_params_check_validates_names(tmp_path: Path, monkeypatch, capsys, change: dict, why: str) -> None:
    """Defect 10: ``params --check`` names an unknown model, task, perturbation, noise folder or option."""
    import yaml

    from pipeline.core.io_utils import deep_merge

    raw = deep_merge(yaml.safe_load((REPO / "params.yaml").read_text()), change)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    code, err = _cli(monkeypatch, capsys, "params", str(path), "--check")
    assert code == 2 and len(err) == 1 and why in err[0], err


def test_params_check_accepts_the_shipped_params(monkeypatch, capsys) -> None:
    code, err = _cli(monkeypatch, capsys, "params", str(REPO / "params.yaml"), "--check")
    assert code == 0, err


def test_eval_json_holds_no_wall_time(trained) -> None:
    """Defect 10: eval.json holds only deterministic values, so `dvc metrics diff` shows real changes."""
    import json

    layout, params, _, _ = trained
    stages.evaluate("synth_keywords", "fcn", params, layout)
    path = next(layout.metrics("synth_keywords", "fcn").rglob("eval.json"))
    first = path.read_text()
    assert not [k for k in json.loads(first) if any(w in k for w in ("second", "time", "duration"))]
    stages.evaluate("synth_keywords", "fcn", params, layout)
    assert path.read_text() == first


# ----------------------------------------------------------------------------- defect 6: locking outside DVC
def _hold_lock_in_subprocess(root: Path, stage: str, *keys: str):
    """Start a process that holds ``stage_lock(stage, *keys)`` until killed; return it once it holds it."""
    import subprocess
    import sys
    import time

    from pipeline.core.locks import is_held

    code = (
        "import sys, time; from pipeline.core.locks import stage_lock\n"
        f"with stage_lock({stage!r}, *{list(keys)!r}, root={str(root)!r}):\n"
        "    print('held', flush=True); time.sleep(120)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    deadline = time.time() + 10
    while not is_held(stage, *keys, root=root) and time.time() < deadline:
        time.sleep(0.05)
    return proc


@pytest.mark.parametrize("stage", ["download", "segment", "features"])
def test_concurrent_stage_run_is_refused_with_the_pid(tmp_path: Path, monkeypatch, capsys, stage: str) -> None:
    """Defect 6: a second run of a stage on the same dataset fails at once with one line naming the holder."""
    import time

    layout = Layout(tmp_path)
    p = _tiny()
    proc = _hold_lock_in_subprocess(tmp_path, stage, "synth_keywords")
    try:
        t0 = time.time()
        with pytest.raises(UserError) as err:
            getattr(stages, stage)("synth_keywords", p, layout)
        assert time.time() - t0 < 5, "refused at once, not after waiting"
        msg = str(err.value)
        assert f"another `musicrep {stage} synth_keywords` is running (pid {proc.pid})" in msg and "\n" not in msg
        assert not layout.segments("synth_keywords").exists() and not layout.features("synth_keywords").exists()
        monkeypatch.chdir(tmp_path)
        (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text())
        code, lines = _cli(monkeypatch, capsys, stage, "synth_keywords")
        assert code == 2 and len(lines) == 1 and f"pid {proc.pid}" in lines[0]
    finally:
        proc.kill()
        proc.wait()
    stages.download("synth_keywords", p, layout)  # the kernel released the dead holder's lock


def test_lock_is_reentrant_in_a_thread_and_exclusive_across_threads(tmp_path: Path) -> None:
    """Defect 6: the lock API other stages use (train/cell): re-entrant in one thread, refused in another."""
    import threading

    from pipeline.core.locks import is_held, lock_path, stage_lock

    with stage_lock("train", "synth_tags", "fcn", 0, root=tmp_path) as path:
        assert path == lock_path("train", "synth_tags", "fcn", 0, root=tmp_path)
        assert path.name == "train-synth_tags-fcn-0.lock" and path.parent == tmp_path / ".musicrep" / "locks"
        with stage_lock("train", "synth_tags", "fcn", 0, root=tmp_path):
            pass
        assert is_held("train", "synth_tags", "fcn", 0, root=tmp_path)
        errors: list[BaseException] = []

        def other() -> None:
            try:
                with stage_lock("train", "synth_tags", "fcn", 0, root=tmp_path):
                    pass
            except UserError as exc:
                errors.append(exc)

        t = threading.Thread(target=other)
        t.start()
        t.join()
        assert len(errors) == 1 and "is running" in str(errors[0])
        with stage_lock("train", "synth_tags", "fcn", 1, root=tmp_path):  # another cell: free
            pass
    assert not is_held("train", "synth_tags", "fcn", 0, root=tmp_path)


def test_segment_uses_a_fresh_temporary_folder_per_run(tmp_path: Path, monkeypatch) -> None:
    """Defect 6: the segment stage's temporary folder is unique to the run, so runs never share it."""
    from pipeline.data import segment as seg

    layout = Layout(tmp_path)
    p = _tiny()
    stages.download("synth_keywords", p, layout)
    seen: list[Path] = []
    real = seg._ShardWriter.__init__

    def spy(self, out_dir, shard_mb):
        seen.append(out_dir)
        real(self, out_dir, shard_mb)

    monkeypatch.setattr(seg._ShardWriter, "__init__", spy)
    stages.segment("synth_keywords", p, layout)
    stages.segment("synth_keywords", p, layout)
    assert len(seen) == 2 and seen[0] != seen[1]
    assert all(d.name.startswith(".synth_keywords.partial-") for d in seen)


# ----------------------------------------------------------------------------- defect 9: leftovers of kill -9
def test_leftovers_of_a_killed_run_are_cleaned_by_the_next_run(tmp_path: Path) -> None:
    """Defect 9: hidden extraction folders, atomic-write temporaries, partial folders and report temporaries go."""
    layout = Layout(tmp_path)
    p = _tiny()
    raw = layout.raw("synth_keywords")
    stages.download("synth_keywords", p, layout)
    stages.segment("synth_keywords", p, layout)
    stages.features("synth_keywords", p, layout)
    seg, feats = layout.segments("synth_keywords"), layout.features("synth_keywords")
    before = {q: q.read_bytes() for d in (raw, seg, feats) for q in d.rglob("*") if q.is_file()}
    # what kill -9 at various points leaves behind
    junk = [
        raw / ".archive.extracting" / "big.wav",
        raw / ".recordings.k3j2.extracting" / "x.wav",
        raw / "train" / ".clip_0001.wav.a1b2c3.tmp",
        seg.parent / ".synth_keywords.partial-x1y2" / "shard-00000.npy",
        seg.parent / "synth_keywords.partial" / "shard-00000.npy",
        seg / ".meta.json.zz9.tmp",
        feats / "logmel-abc.partial" / "shard-00000.npy",
        feats / ".caches.json.q1.tmp",
        tmp_path / ".reports.tmp-abc123" / "index.md",
    ]
    keep = [raw / "blob.bin.part", seg.parent / ".synth_events.partial-zz" / "shard-00000.npy"]  # resumable / another dataset
    for j in junk + keep:
        j.parent.mkdir(parents=True, exist_ok=True)
        j.write_bytes(b"leftover")
    stages.download("synth_keywords", p, layout)
    stages.segment("synth_keywords", p, layout)
    stages.features("synth_keywords", p, layout)
    from pipeline.core.locks import clean_stage_leftovers, stage_lock

    with stage_lock("report", root=layout.root):
        clean_stage_leftovers("report", p.report.out_dir, layout)
    for j in junk:
        gone = (
            j.parent
            if j.parent.name.endswith((".extracting", ".partial")) or ".partial-" in j.parent.name or ".tmp-" in j.parent.name
            else j
        )
        assert not gone.exists(), gone
    assert all(k.exists() for k in keep)
    after = {q: q.read_bytes() for d in (raw, seg, feats) for q in d.rglob("*") if q.is_file() and q not in keep}
    assert set(after) == set(before)
    same = [q for q in before if q.suffix in (".wav", ".npy", ".parquet")]
    assert same and all(after[q] == before[q] for q in same), "identical outputs after the re-run"


def test_leftovers_of_a_live_run_are_not_touched(tmp_path: Path) -> None:
    """Defect 9: cleaning only happens under the stage's lock, so a running stage's temporaries are safe."""
    layout = Layout(tmp_path)
    p = _tiny()
    live = layout.segments("synth_keywords").parent / ".synth_keywords.partial-live" / "shard-00000.npy"
    live.parent.mkdir(parents=True)
    live.write_bytes(b"in progress")
    proc = _hold_lock_in_subprocess(tmp_path, "segment", "synth_keywords")
    try:
        with pytest.raises(UserError, match="is running"):
            stages.segment("synth_keywords", p, layout)
        assert live.exists()
    finally:
        proc.kill()
        proc.wait()


def _project_dir(tmp: Path, overrides: dict) -> Path:
    import yaml

    from pipeline.core.io_utils import deep_merge

    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "params.yaml").write_text(yaml.safe_dump(deep_merge(yaml.safe_load((REPO / "params.yaml").read_text()), overrides)))
    return tmp


def _run_stage(proj: Path, *args: str) -> None:
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=proj, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]


def _temporaries(proj: Path) -> list[Path]:
    """Leftover-looking entries anywhere under data/ (what clean_leftovers removes)."""
    from pipeline.core.locks import _TEMP_DIR, _TEMP_FILE

    return [q for q in (proj / "data").rglob("*") if (_TEMP_DIR.match(q.name) if q.is_dir() else _TEMP_FILE.match(q.name))]


def _outputs(proj: Path, stage: str) -> dict[str, bytes]:
    where = {"download": "raw", "segment": "segments", "features": "features"}[stage]
    base = proj / "data" / where / "synth_keywords"
    return {
        q.relative_to(base).as_posix(): q.read_bytes()
        for q in sorted(base.rglob("*"))
        if q.is_file() and q.name not in ("download_state.json",)
    }


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["download", "segment", "features"])
def test_sigkill_during_a_data_stage_then_rerun(tmp_path: Path, stage: str) -> None:
    """Defects 6 and 9: kill -9 mid-stage, re-run: identical outputs and no leftovers."""
    import os
    import signal
    import subprocess
    import sys
    import time

    over = {
        "grid": {"tasks": ["synth_keywords"], "models": ["fcn"]},
        "datasets": {"synth_keywords": {"n_clips": 1500, "clip_seconds": 1.0}},
        "train": {"width": 0.125},
    }
    ref, killed = _project_dir(tmp_path / "ref", over), _project_dir(tmp_path / "killed", over)
    order = ["download", "segment", "features"]
    for proj in (ref, killed):
        for s in order[: order.index(stage)]:
            _run_stage(proj, s, "synth_keywords")
    _run_stage(ref, stage, "synth_keywords")
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", stage, "synth_keywords"],
        cwd=killed,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 300
    while not _temporaries(killed) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    assert proc.poll() is None, f"{stage} finished before it could be killed; make it longer"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    _run_stage(killed, stage, "synth_keywords")
    assert _temporaries(killed) == []
    a, b = _outputs(ref, stage), _outputs(killed, stage)
    assert sorted(a) == sorted(b)
    differ = [k for k in a if a[k] != b[k] and not k.endswith(".json")]
    assert differ == [], f"outputs differ after kill -9 and re-run: {differ[:5]}"


# ----------------------------------------------------------------------------- defect 2: the Prefect server
def _http(port: int, method: str, path: str, headers: dict[str, str] | None = None, body: bytes | None = None):
    """``(status, headers, body)`` of one raw request to 127.0.0.1:port (any Host/Origin header)."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        conn.request(method, path, body=body, headers={"Host": f"127.0.0.1:{port}", **(headers or {})})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory):
    """``python -m flows.server`` (what ``make ui-prefect`` starts) on a free loopback port."""
    import os

    port = free_port()
    home = tmp_path_factory.mktemp("prefect-home")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_SERVER_") and k != "PREFECT_API_URL"}
    env.update({"PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_LOGGING_LEVEL": "WARNING"})
    with serving(flows_server_command(port), f"http://127.0.0.1:{port}/api/health", env, cwd=REPO):
        yield port


EVIL = "http://evil.example"


def test_prefect_refuses_a_cross_origin_post(prefect_server) -> None:
    """Defect 2: a page elsewhere cannot create a flow run: no CSRF token -> 403, and no ``*`` CORS answer."""
    port = prefect_server
    body = b'{"name": "pwned", "parameters": {"params_path": "/tmp/evil.yaml", "root": "/"}}'
    status, headers, _ = _http(port, "POST", "/api/flow_runs/filter", {"Origin": EVIL, "Content-Type": "text/plain"}, b"{}")
    assert status == 403 and headers.get("access-control-allow-origin") in (None, f"http://127.0.0.1:{port}")
    status, headers, _ = _http(
        port, "POST", "/api/deployments/filter", {"Origin": EVIL, "Content-Type": "application/json"}, body
    )
    assert status == 403
    status, headers, _ = _http(
        port,
        "OPTIONS",
        "/api/flow_runs/",
        {
            "Origin": EVIL,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,prefect-csrf-token",
        },
    )
    assert headers.get("access-control-allow-origin") not in ("*", EVIL)
    status, headers, _ = _http(port, "GET", "/api/csrf-token?client=evil", {"Origin": EVIL})
    assert headers.get("access-control-allow-origin") not in ("*", EVIL), "a page elsewhere cannot read a CSRF token"


def test_prefect_refuses_a_foreign_host_header(prefect_server) -> None:
    """Defect 2: DNS rebinding (a foreign Host header) is refused before Prefect sees the request."""
    port = prefect_server
    status, _, _ = _http(port, "GET", "/api/health", {"Host": f"evil.example:{port}"})
    assert status == 400
    status, _, _ = _http(port, "GET", "/api/csrf-token?client=x", {"Host": f"evil.example:{port}"})
    assert status == 400


def test_prefect_still_serves_its_own_clients(prefect_server) -> None:
    """Defect 2 (the good path): a same-origin client with a CSRF token is served."""
    import json

    port = prefect_server
    status, _, raw = _http(port, "GET", "/api/csrf-token?client=musicrep-test")
    assert status == 200
    token = json.loads(raw)["token"]
    status, headers, _ = _http(
        port,
        "POST",
        "/api/deployments/filter",
        {
            "Content-Type": "application/json",
            "Prefect-Csrf-Token": token,
            "Prefect-Csrf-Client": "musicrep-test",
            "Origin": f"http://127.0.0.1:{port}",
        },
        b"{}",
    )
    assert status == 200 and headers.get("access-control-allow-origin") == f"http://127.0.0.1:{port}"
    status, _, _ = _http(port, "GET", "/api/health", {"Host": f"localhost:{port}"})
    assert status == 200


def test_serve_protects_its_temporary_server(monkeypatch) -> None:
    """Defect 2: ``musicrep serve`` without PREFECT_API_URL gives Prefect's temporary server CSRF and closed CORS."""
    import os

    import pipeline.flows.serve as serve

    for key in (
        "PREFECT_API_URL",
        "PREFECT_SERVER_CSRF_PROTECTION_ENABLED",
        "PREFECT_SERVER_CORS_ALLOWED_ORIGINS",
        "PREFECT_CLIENT_CSRF_SUPPORT_ENABLED",
        "PREFECT_SERVER_ANALYTICS_ENABLED",
    ):
        monkeypatch.setenv(key, "")  # recorded, so that the test's changes are undone afterwards
        monkeypatch.delenv(key)
    seen: dict = {}
    monkeypatch.setattr(serve.musicrep_pipeline, "serve", lambda **kw: seen.update(kw, env=dict(os.environ)))
    serve.serve_pipeline(cron="0 3 * * *", name="t")
    assert seen["env"]["PREFECT_SERVER_CSRF_PROTECTION_ENABLED"] == "true"
    assert seen["env"]["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"  # no telemetry from the temporary server
    assert "*" not in seen["env"]["PREFECT_SERVER_CORS_ALLOWED_ORIGINS"]
    assert "PREFECT_SERVER_API_PORT" not in seen["env"] or seen["env"]["PREFECT_SERVER_API_PORT"] != "0"


def test_make_ui_prefect_starts_the_protected_server() -> None:
    """Defect 2: ``make ui-prefect`` runs flows.server, not a bare ``prefect server start``."""
    text = (REPO / "Makefile").read_text()
    target = text[text.index("\nui-prefect:") :].split("\n\n")[0]
    assert "-m flows.server" in target and "prefect server start" not in target


def test_mlflow_ui_refuses_cross_origin_and_foreign_hosts(tmp_path: Path) -> None:
    """Defect 2 (the other server the project starts): ``make ui-mlflow``'s command refuses a cross-origin POST."""
    import os

    text = (REPO / "Makefile").read_text()
    target = text[text.index("\nui-mlflow:") :].split("\n\n")[0]
    assert "--host 127.0.0.1" in target
    port = free_port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with serving(mlflow_ui_command(port, tmp_path / "mlflow.db"), f"http://127.0.0.1:{port}/health", env, cwd=tmp_path):
        body = b'{"name": "pwned"}'
        for ctype in ("application/json", "text/plain"):
            status, headers, _ = _http(
                port, "POST", "/api/2.0/mlflow/experiments/create", {"Origin": EVIL, "Content-Type": ctype}, body
            )
            assert status == 403 and headers.get("access-control-allow-origin") not in ("*", EVIL)
        status, _, _ = _http(port, "GET", "/api/2.0/mlflow/experiments/search?max_results=1", {"Host": f"evil.example:{port}"})
        assert status == 403


@pytest.mark.parametrize("running,started,reads", [("segment", "download", "raw files"), ("features", "segment", "segments")])
def test_a_stage_cannot_change_what_a_running_stage_reads(tmp_path: Path, running: str, started: str, reads: str) -> None:
    """Defect 6: while `segment X` reads data/raw/X, `download X` is refused (and `segment X` while `features X` runs)."""
    import subprocess
    import sys

    layout = Layout(tmp_path)
    p = _tiny()
    code = (
        "import time; from pipeline.core.locks import stage_lock\n"
        f"with stage_lock({running!r}, 'synth_keywords', root={str(tmp_path)!r}), "
        f"stage_lock({started!r}, 'synth_keywords', root={str(tmp_path)!r}, holder='musicrep {running} synth_keywords'):\n"
        "    print('held', flush=True); time.sleep(120)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        with pytest.raises(UserError, match=rf"another `musicrep {running} synth_keywords` is running \(pid {proc.pid}\)"):
            getattr(stages, started)("synth_keywords", p, layout)
    finally:
        proc.kill()
        proc.wait()


def test_segment_and_features_hold_their_inputs_lock(tmp_path: Path, monkeypatch) -> None:
    """Defect 6: the real stages hold the upstream stage's lock while they run."""
    from pipeline.core.locks import is_held

    seen: dict[str, bool] = {}
    monkeypatch.setattr(  # patched where the stage looks them up
        stages, "segment_dataset", lambda ds, p, lay: seen.setdefault("segment", is_held("download", ds, root=lay.root))
    )
    monkeypatch.setattr(
        stages, "build_features", lambda ds, p, lay: seen.setdefault("features", is_held("segment", ds, root=lay.root))
    )
    layout = Layout(tmp_path)
    p = _tiny()
    stages.segment("synth_keywords", p, layout)
    stages.features("synth_keywords", p, layout)
    assert seen == {"segment": True, "features": True}
    assert not is_held("download", "synth_keywords", root=tmp_path) and not is_held("segment", "synth_keywords", root=tmp_path)
