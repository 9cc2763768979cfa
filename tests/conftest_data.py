"""Helpers for the download and real-dataset tests (imported explicitly, not a conftest).

- :class:`LoopbackServer`: an HTTP server on 127.0.0.1 serving in-memory files with ``Range``
  support, a request log, and switches to cut the first transfer of a file short, to answer
  errors, or to serve wrong bytes.
- tiny audio writers and archive builders that mimic the publishers' layouts.
"""

from __future__ import annotations

import http.server
import re
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.data.miniature import audio_bytes, make_tar_gz, make_zip, tone, write_audio

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Request:
    path: str
    range: str | None
    status: int
    bytes_sent: int
    if_range: str | None = None


@dataclass
class LoopbackServer:
    """Serve ``files`` ({name: bytes}) at ``http://127.0.0.1:<port>/<name>``.

    Attributes:
        cut_first: names whose first full GET sends only ``cut_fraction`` of the body and
            then drops the connection (the headers announce the whole length).
        errors: ``{name: [status, ...]}`` statuses answered (and consumed) before serving.
        honour_range: when False the server ignores ``Range`` and always sends 200.
        validators: send an ``ETag`` (a hash of the body) and honour ``If-Range``: a
            ``Range`` whose ``If-Range`` is not the current ETag gets the whole file (200), as
            real publishers do; False mimics a server without validators.
        log: every request, in order.
    """

    files: dict[str, bytes] = field(default_factory=dict)
    cut_first: set[str] = field(default_factory=set)
    cut_fraction: float = 0.5
    errors: dict[str, list[int]] = field(default_factory=dict)
    honour_range: bool = True
    validators: bool = True
    log: list[Request] = field(default_factory=list)

    def __post_init__(self) -> None:
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # keep pytest output clean
                pass

            def do_GET(self) -> None:  # noqa: N802
                name = self.path.lstrip("/").split("?")[0]
                from urllib.parse import unquote

                name = unquote(name)
                rng = self.headers.get("Range")
                pending = owner.errors.get(name)
                if pending:
                    status = pending.pop(0)
                    self._reply(status, b"error", name, rng)
                    return
                if name not in owner.files:
                    self._reply(404, b"not found", name, rng)
                    return
                body = owner.files[name]
                start = 0
                m = re.match(r"bytes=(\d+)-$", rng or "")
                etag = '"' + __import__("hashlib").sha1(body).hexdigest()[:16] + '"' if owner.validators else None
                if_range = self.headers.get("If-Range")
                if m and etag and if_range is not None and if_range != etag:
                    m = None  # the file changed since the client's partial copy: send all of it
                if m and owner.honour_range:
                    start = int(m.group(1))
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(body)}")
                        self.send_header("Content-Length", "0")
                        owner.log.append(Request(name, rng, 416, 0))
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                chunk = body[start:]
                if etag:
                    self.send_header("ETag", etag)
                self.send_header("Content-Length", str(len(chunk)))
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                if name in owner.cut_first and start == 0:
                    owner.cut_first.discard(name)
                    sent = int(len(chunk) * owner.cut_fraction)
                    owner.log.append(Request(name, rng, 200, sent, if_range))  # logged before the client can see it
                    self.wfile.write(chunk[:sent])
                    self.wfile.flush()
                    self.close_connection = True
                    try:
                        self.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    return
                owner.log.append(Request(name, rng, 206 if start else 200, len(chunk), if_range))
                self.wfile.write(chunk)

            def _reply(self, status: int, body: bytes, name: str, rng: str | None) -> None:
                owner.log.append(Request(name, rng, status, 0))
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def requests_for(self, name: str) -> list[Request]:
        return [r for r in self.log if r.path == name]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def closed_port() -> int:
    """A loopback port nothing listens on (connection refused at once)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def params(overrides: dict | None = None):
    from pipeline.config.params import load_params

    return load_params(REPO / "params.yaml", overrides=overrides or {})


__all__ = ["LoopbackServer", "audio_bytes", "closed_port", "make_tar_gz", "make_zip", "params", "tone", "write_audio"]
