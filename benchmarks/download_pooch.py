"""Our downloader against pooch on the three guarantees the decision hinges on (docs/decisions.md).

Everything runs on 127.0.0.1 and in a temporary folder (the tests' loopback server):

1. **Resume.** A file whose first transfer is cut at half, fetched with one retry: bytes the
   server sent in all, ``pipeline.data.download.fetch_file`` vs ``pooch.retrieve``.
2. **Path traversal.** A tar.gz with a ``../escaped.txt`` member: does extraction write
   outside the target (``safe_extract`` vs ``pooch.Untar``, on this Python)?
3. **Bomb limit.** A zip of one ``--bomb-mib`` MiB member of zeros (deflated ~1000:1) under
   ``MUSICREP_EXTRACT_MIN_BYTES=1 MiB``: bytes written by ``safe_extract`` vs ``pooch.Unzip``.

    .venv/bin/python benchmarks/download_pooch.py --mib 8 --json /tmp/download_pooch.json

pooch is not a dependency of the package (it is in the lock through librosa, a test extra).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import sys
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _bytes_written(root: Path) -> int:
    return sum(f.stat().st_size for f in root.rglob("*") if f.is_file())


def resume(mib: int, work: Path) -> dict[str, int]:
    import pooch

    from pipeline.data.download import RemoteFile, RetryPolicy, fetch_file
    from tests.conftest_data import LoopbackServer

    data = os.urandom(mib << 20)
    sha = hashlib.sha256(data).hexdigest()
    out = {"file_bytes": len(data)}
    for who in ("musicrep", "pooch"):
        srv = LoopbackServer(files={"blob.bin": data})
        srv.cut_first.add("blob.bin")
        try:
            if who == "musicrep":
                remote = RemoteFile(name="blob.bin", url="https://publisher.invalid/blob.bin", sha256=sha, size=len(data))
                policy = RetryPolicy(attempts=2, backoff_s=0.01, max_backoff_s=0.01, timeout_s=10.0)
                fetch_file(remote, work / who, "demo", mirror=srv.url, policy=policy)
            else:
                store = pooch.create(
                    path=work / who, base_url=f"{srv.url}/", registry={"blob.bin": f"sha256:{sha}"}, retry_if_failed=1
                )
                store.fetch("blob.bin", downloader=pooch.HTTPDownloader(timeout=10))
            out[f"{who}_bytes_sent"] = sum(r.bytes_sent for r in srv.log)
        finally:
            srv.close()
    return out


def traversal(work: Path) -> dict[str, bool]:
    import pooch

    from pipeline.core.errors import UserError
    from pipeline.data.archives import safe_extract
    from tests.conftest_data import make_tar_gz

    out = {}
    for who in ("musicrep", "pooch"):
        box = work / f"trav-{who}"
        (box / "in").mkdir(parents=True)
        archive = box / "in" / "a.tar.gz"
        archive.write_bytes(make_tar_gz({"ok.txt": b"ok", "../escaped.txt": b"outside"}))
        try:
            if who == "musicrep":
                safe_extract(archive, box / "in" / "target", "demo")
            else:
                pooch.Untar(extract_dir="target")(str(archive), "download", None)
        except UserError:
            pass
        out[f"{who}_wrote_outside"] = (box / "in" / "escaped.txt").exists() or (box / "escaped.txt").exists()
    return out


def bomb(mib: int, work: Path) -> dict[str, int]:
    import pooch

    from pipeline.core.errors import UserError
    from pipeline.data.archives import safe_extract

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.bin", bytes(mib << 20))
    out = {"archive_bytes": len(buf.getvalue()), "expanded_bytes": mib << 20}
    os.environ["MUSICREP_EXTRACT_MIN_BYTES"] = str(1 << 20)
    for who in ("musicrep", "pooch"):
        box = work / f"bomb-{who}"
        box.mkdir()
        archive = box / "b.zip"
        archive.write_bytes(buf.getvalue())
        try:
            if who == "musicrep":
                safe_extract(archive, box / "target", "demo")
            else:
                pooch.Unzip(extract_dir="target")(str(archive), "download", None)
        except UserError:
            pass
        out[f"{who}_bytes_written"] = _bytes_written(box) - len(buf.getvalue())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mib", type=int, default=8, help="size of the resumed file")
    ap.add_argument("--bomb-mib", type=int, default=64, help="expanded size of the bomb's member")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    import pooch

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        result = {
            "python": sys.version.split()[0],
            "pooch": pooch.__version__,
            "resume": resume(args.mib, work),
            "traversal": traversal(work),
            "bomb": bomb(args.bomb_mib, work),
        }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
