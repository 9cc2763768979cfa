"""Helpers shared by the real dataset sources (fsdd, mtat, speech_commands, dcase2017_task4, folder)."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.audio.io import AUDIO_EXTENSIONS
from pipeline.core.errors import UserError
from pipeline.core.io_utils import write_json
from pipeline.data.catalog import SourceInfo
from pipeline.data.download import RetryPolicy

if TYPE_CHECKING:
    from pipeline.config.params import Params

log = logging.getLogger(__name__)
COMPLETE = "COMPLETE.json"


@dataclass
class RealSource(SourceInfo):
    """Base of the downloadable sources: name, task metadata (recordings) and the download policy."""

    policy: RetryPolicy = field(default_factory=RetryPolicy.from_env)

    def settings(self, params: Params | None) -> Any:
        """``params.datasets.<name>`` (``None`` without params)."""
        if params is None:
            return None
        return getattr(params.datasets, self.name, None)

    def mirror(self, params: Params | None) -> str | None:
        s = self.settings(params)
        return getattr(s, "mirror", None) if s is not None else None

    def missing(self, raw_dir: Path, what: str) -> UserError:
        """The error every catalog raises when the raw files are absent."""
        return UserError(
            f"{raw_dir} has no {what}; run `musicrep download {self.name}` "
            f"(or `musicrep download {self.name} --mirror URL_OR_DIR`) first."
        )


def clip_seconds_from(params: Params | None, name: str, default: float) -> float:
    """``params.datasets.<name>.clip_seconds`` or the dataset's default."""
    if params is None:
        return default
    value = getattr(getattr(params.datasets, name, None), "clip_seconds", None)
    return float(value) if value else default


def read_complete(raw_dir: Path) -> dict | None:
    path = Path(raw_dir) / COMPLETE
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def write_complete(raw_dir: Path, info: dict) -> None:
    write_json(Path(raw_dir) / COMPLETE, info)


def audio_files(root: Path, extensions: Iterable[str] = AUDIO_EXTENSIONS) -> list[Path]:
    """Every audio file under ``root`` (recursive, sorted, hidden entries skipped)."""
    exts = {e.lower() for e in extensions}
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if not name.startswith(".") and Path(name).suffix.lower() in exts:
                out.append(Path(dirpath) / name)
    return sorted(out)
