"""A local Prefect server that web pages cannot drive: ``python -m flows.server`` (``make ui-prefect``).

``prefect server start`` alone answers any origin (``access-control-allow-origin: *``), takes
state-changing POSTs without a CSRF token and accepts any ``Host`` header, so with
``musicrep serve`` running, a page open in the user's browser could start a flow run with its
own ``params_path`` and ``root``. This launcher runs the same Prefect server app with Prefect's
own protections switched on (:func:`secure_settings`):

- ``PREFECT_SERVER_CSRF_PROTECTION_ENABLED=true``: every POST/PUT/PATCH/DELETE needs a CSRF
  token (Prefect's client and UI fetch one: ``PREFECT_CLIENT_CSRF_SUPPORT_ENABLED=true``);
- ``PREFECT_SERVER_CORS_ALLOWED_ORIGINS``: only the UI's own origin
  (``http://127.0.0.1:<port>``, ``http://localhost:<port>``), so other pages cannot read
  answers (nor a CSRF token);
- a ``Host`` check (Starlette's ``TrustedHostMiddleware``; Prefect has no setting for it):
  only ``127.0.0.1``, ``localhost`` and the bound host, which defeats DNS rebinding;
- optional basic auth: set ``PREFECT_SERVER_API_AUTH_STRING=user:password`` for the server
  and ``PREFECT_API_AUTH_STRING`` (same value) for clients such as ``musicrep serve``;
- ``PREFECT_SERVER_ANALYTICS_ENABLED=false``: the server sends no telemetry (offline it logged
  "ERROR Failed to send telemetry" at every start; ``make`` sets it too, a direct start did not).

Values already in the environment win, so each protection can be changed deliberately
(documented in ``docs/reliability.md``). ``musicrep serve`` applies the same settings to the
temporary server Prefect starts when no ``PREFECT_API_URL`` is set.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import MutableMapping
from typing import Any

from pipeline.core.lazy import lazy

log = logging.getLogger(__name__)

# imported at first use: Prefect reads its settings when imported, after :func:`main` has set them
prefect_server = lazy("prefect.server.api.server")
trustedhost = lazy("starlette.middleware.trustedhost")
uvicorn = lazy("uvicorn")

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def secure_settings(host: str = "127.0.0.1", port: int | None = 4200) -> dict[str, str]:
    """Prefect settings (environment variable names) that close the server to other web origins (and its telemetry).

    ``port=None`` (a temporary server on a port Prefect picks): no origin is allowed at all.
    """
    origins = []
    if port is not None:
        origins = [f"http://127.0.0.1:{port}", f"http://localhost:{port}"]
        if host not in ("127.0.0.1", "localhost", "0.0.0.0", "::"):
            origins.append(f"http://{host}:{port}")
    out = {
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_CSRF_PROTECTION_ENABLED": "true",
        "PREFECT_CLIENT_CSRF_SUPPORT_ENABLED": "true",
        "PREFECT_SERVER_CORS_ALLOWED_ORIGINS": ",".join(origins) or "http://127.0.0.1",
    }
    if port is not None:
        out.update({"PREFECT_SERVER_API_HOST": host, "PREFECT_SERVER_API_PORT": str(port)})
    return out


def apply_secure_settings(
    host: str = "127.0.0.1", port: int | None = 4200, environ: MutableMapping[str, str] | None = None
) -> dict[str, str]:
    """Put :func:`secure_settings` into ``environ`` (default ``os.environ``) unless already set there.

    Prefect reads its settings when it is imported (and a server subprocess from its
    environment), so call this before importing Prefect or starting a server.
    """
    env = os.environ if environ is None else environ
    applied = {}
    for key, value in secure_settings(host, port).items():
        if key not in env:
            env[key] = value
            applied[key] = value
    return applied


def allowed_hosts(host: str) -> list[str]:
    """``Host`` header values the server answers (without port)."""
    return sorted({*LOCAL_HOSTS, host} - {"0.0.0.0", "::"})


def create_secure_app(host: str = "127.0.0.1") -> Any:
    """Prefect's server app (API + UI) behind a ``Host`` check; settings come from the environment."""

    app = prefect_server.create_app(final=True)
    return trustedhost.TrustedHostMiddleware(app, allowed_hosts=allowed_hosts(host))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the local Prefect server with CSRF, CORS and Host protection.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4200)
    args = parser.parse_args(argv)
    apply_secure_settings(args.host, args.port)
    os.environ.setdefault(
        "PREFECT_UI_API_URL", f"http://{'127.0.0.1' if args.host in ('0.0.0.0', '::') else args.host}:{args.port}/api"
    )

    uvicorn.run(create_secure_app(args.host), host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()
