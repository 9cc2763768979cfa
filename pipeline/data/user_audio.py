"""The content of a user-supplied audio folder, as a file DVC can track.

DCASE 2017 task 4's clips are not redistributed: ``datasets.dcase2017_task4.audio_dir`` points at
the user's own folder, outside ``data/raw``. DVC would see only that path (a param), so adding or
replacing clips there re-ran nothing. ``musicrep download DATASET --manifest`` writes
``data/manifests/DATASET.tsv`` (path, size and SHA-256 of every audio file, sorted; hashes are
reused from the previous listing for files whose size and mtime did not change, so an unchanged
folder is only listed, not read); the generated ``dvc.yaml`` runs it on every ``dvc repro`` and
``segment`` depends on it, so DVC re-segments exactly when the folder's content changes.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.core.errors import UserError
from pipeline.core.io_utils import write_text_if_changed
from pipeline.data.download import write_manifest
from pipeline.data.sources._common import audio_files

if TYPE_CHECKING:
    from pipeline.config.params import Params
    from pipeline.core.paths import Layout

MANIFEST_DIR = "data/manifests"
NO_FOLDER = "# no user-supplied audio folder: the audio is data/raw/{dataset}, a DVC output\n"


def user_audio_folder(params: Params, dataset: str) -> str | None:
    """``datasets.<dataset>.audio_dir`` when set (the user's own audio, outside ``data/raw``), else ``None``."""
    return getattr(getattr(params.datasets, dataset, None), "audio_dir", None)


def manifest_path(dataset: str) -> str:
    """``data/manifests/<dataset>.tsv`` (project-relative)."""
    return f"{MANIFEST_DIR}/{dataset}.tsv"


def write_audio_manifest(dataset: str, params: Params, layout: Layout) -> Path:
    """Write ``data/manifests/<dataset>.tsv`` (module docstring); unchanged content leaves the file untouched."""

    out = layout.root / manifest_path(dataset)
    out.parent.mkdir(parents=True, exist_ok=True)
    folder = user_audio_folder(params, dataset)
    if folder is None:
        write_text_if_changed(out, NO_FOLDER.format(dataset=dataset))
        return out
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise UserError(f"datasets.{dataset}.audio_dir {root} is not a folder; fix params.yaml or pass --audio-dir DIR.")
    listing = write_manifest(root, dataset, files=audio_files(root), out=out.with_suffix(".json"))
    rows = [f"{e['path']}\t{e['size']}\t{e['sha256']}\n" for e in listing["files"]]
    write_text_if_changed(out, f"# {dataset}: {len(rows)} audio files under {root}\n" + "".join(rows))
    return out


def manifest_stage(tasks: Any, params_entry: list[dict[str, list[str]]]) -> dict[str, Any]:
    """The ``audio-manifest`` stage of ``dvc.yaml``: lists each grid dataset's folder on every ``dvc repro``."""
    return {
        "matrix": {"dataset": tasks},
        "cmd": "musicrep download ${item.dataset} --manifest",
        "deps": ["pipeline/data/user_audio.py"],
        "params": params_entry,
        "outs": [{manifest_path("${item.dataset}"): {"cache": False}}],
        "always_changed": True,
    }
