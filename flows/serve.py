"""Register and serve a scheduled deployment of the pipeline flow.

``musicrep serve --cron "0 3 * * *"`` or ``python -m flows.serve --cron "..."``. Point it
at a Prefect server (``prefect server start --host 127.0.0.1``, then
``export PREFECT_API_URL=http://127.0.0.1:4200/api``) to see the deployment and its runs in
the UI. Stop ``serve`` before the server (docs/spec.md §10.4).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from .pipeline_flow import musicrep_pipeline
from .server import apply_secure_settings


def serve_pipeline(
    cron: str = "0 3 * * *", name: str = "nightly", params_path: str = "params.yaml", overrides: dict | None = None
) -> None:
    """Serve the flow as deployment ``musicrep-pipeline/<name>`` on ``cron`` (blocks).

    ``overrides``: the ``--set`` values of ``musicrep serve``, stored as a deployment parameter, so
    every scheduled run applies them over the params file it reads at run time.

    Without ``PREFECT_API_URL`` Prefect starts a temporary local server; it gets the same
    CSRF and CORS protection as ``python -m flows.server`` (:func:`pipeline.flows.server.apply_secure_settings`).
    """
    if not os.environ.get("PREFECT_API_URL"):
        apply_secure_settings(port=None)
    root = str(Path(params_path).resolve().parent)  # the project is where its params.yaml lives
    musicrep_pipeline.serve(
        name=name,
        cron=cron,
        parameters={"params_path": str(Path(params_path).resolve()), "root": root, "overrides": overrides or {}},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cron", default="0 3 * * *")
    parser.add_argument("--name", default="nightly")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    serve_pipeline(args.cron, args.name, args.params)


if __name__ == "__main__":
    main()
