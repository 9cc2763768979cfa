"""``musicrep rehearse``: the paper profile end to end through DVC on miniature mirrors, on the CPU.

What a researcher with a GPU box runs first, without the 80 GB of data: the three publishers'
files in miniature (:mod:`pipeline.data.miniature`: MTAT's three zip parts with
``annotations_final.csv`` and the reference lists, the Speech Commands tarball with its list files
and ``_background_noise_``, DCASE's metadata with user-supplied clips) are served over
127.0.0.1; a scratch project with ``profile: paper`` (full widths, paper input lengths, the paper
optimizer, 16 chunks, the 14-point robustness grid) downloads them through ``datasets.X.mirror``
and runs ``dvc repro`` to the report. Only the lengths are capped (:data:`CAPS`), and the device
is the CPU on purpose (``runtime.device: cpu``). The miniature files' checksums replace the
published ones through ``MUSICREP_CHECKSUM_PINS`` in the stages' environment only.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.server
import json
import logging
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import yaml

import pipeline
from pipeline.core.errors import UserError
from pipeline.data import miniature
from pipeline.data.sources import speech_commands

log = logging.getLogger(__name__)

PAPER_TASKS = ("mtat", "speech_commands", "dcase2017_task4")
CAPS = {
    "train": {"epochs": 1, "steps_per_epoch": 1, "val_max_clips": 2},
    "evaluate": {"max_clips": 2},
    "robustness": {"max_clips": 1},
    "runtime": {"device": "cpu", "num_workers": 0},
}
"""What the rehearsal changes in the paper profile: how long it trains and scores, and the device."""


def build_mirrors(folder: Path) -> tuple[Path, Path, Path]:
    """Write the miniature publishers' files to ``folder/mirror`` and DCASE's clips to ``folder/dcase_audio``.

    Returns:
        ``(mirror folder, DCASE audio folder, pins file)``; the pins file maps every served file to
        its SHA-256, MD5 and size (``MUSICREP_CHECKSUM_PINS``).
    """

    mirror, audio = folder / "mirror", folder / "dcase_audio"
    mirror.mkdir(parents=True, exist_ok=True)
    files = {speech_commands.ARCHIVE.name: miniature.speech_commands_archive()[0], **miniature.mtat_files()[0]}
    dcase, info = miniature.dcase_metadata()
    files.update(dcase)
    for name, blob in files.items():
        (mirror / name).write_bytes(blob)
    for i, (ytid, start, end, _) in enumerate(info["train"] + info["test"] + info["evaluation"]):
        miniature.write_audio(
            audio / f"Y{ytid}_{start:.3f}_{end:.3f}.wav", miniature.tone(1.0, 16_000, 300 + 7 * i, seed=i), 16_000
        )
    pins = {
        name: {"sha256": hashlib.sha256(blob).hexdigest(), "md5": hashlib.md5(blob).hexdigest(), "size": len(blob)}
        for name, blob in files.items()
    }
    (folder / "pins.json").write_text(json.dumps(pins, indent=1))
    return mirror, audio, folder / "pins.json"


@contextlib.contextmanager
def serve(folder: Path) -> Iterator[str]:
    """Serve ``folder`` at ``http://127.0.0.1:<free port>`` while the block runs; yields the base URL."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # the stages log their own transfers
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def project_params(url: str, audio: Path, tasks: list[str], models: list[str]) -> dict:
    """The scratch project's ``params.yaml``: the paper profile, the mirrors, :data:`CAPS`."""
    mirrors = {t: {"mirror": url} for t in PAPER_TASKS}
    mirrors["mtat"].update(split_mirror=url, split="reference")  # one folder serves both MTAT publishers here
    mirrors["dcase2017_task4"]["audio_dir"] = str(audio)
    return {"profile": "paper", "grid": {"tasks": tasks, "models": models, "seeds": [0]}, "datasets": mirrors, **CAPS}


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> None:
    log.info("rehearse: %s", " ".join(cmd))
    done = subprocess.run(cmd, cwd=cwd, env=env, text=True, capture_output=True)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise UserError(f"rehearsal step `{' '.join(cmd)}` failed (exit {done.returncode}) in {cwd}:\n{tail}")


def rehearse(out: Path, tasks: list[str] | None = None, models: list[str] | None = None) -> Path:
    """Build the mirrors and a scratch project under ``out``, run ``dvc repro`` there; return the project.

    Args:
        out: an empty or absent folder (``mirrors/`` and ``project/`` go there).
        tasks: paper datasets to run (default all three).
        models: grid models (default ``all``: the 11 registry variants).
    """

    out = Path(out).resolve()
    if out.exists() and any(out.iterdir()):
        raise UserError(f"{out} is not empty; pass --out with a new folder (the rehearsal never overwrites).")
    mirror, audio, pins = build_mirrors(out / "mirrors")
    project = out / "project"
    project.mkdir(parents=True)
    shutil.copytree(Path(pipeline.__file__).parent, project / "pipeline", ignore=shutil.ignore_patterns("__pycache__"))
    env = {
        **os.environ,
        "MUSICREP_CHECKSUM_PINS": str(pins),
        "MLFLOW_TRACKING_URI": f"sqlite:///{project / 'mlflow.db'}",
        "DVC_NO_ANALYTICS": "1",
    }
    tasks = list(tasks or PAPER_TASKS)
    with serve(mirror) as url:
        params = project_params(url, audio, tasks, list(models or ["all"]))
        (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        _run(["dvc", "init", "--no-scm", "-q"], project, env)
        _run(["musicrep", "dag", "--write"], project, env)
        if "speech_commands" not in tasks:  # the paper's robustness noise, a cell input that no stage of this grid makes
            _run(["musicrep", "download", "speech_commands"], project, env)
        _run(["dvc", "repro"], project, env)
    return project
