"""The reference's published taggers as packaged musicrep models: ``sota:<dataset>/<model>``.

The reference implementation (minzwon/sota-music-tagging-models, Won et al., SMC 2020, MIT
license) publishes trained weights for MagnaTagATune (``mtat``), the Million Song Dataset
(``msd``) and MTG-Jamendo (``jamendo``). Eight of them are fetchable here:
``sota:{mtat,msd,jamendo}/{fcn,crnn}`` and ``sota:{mtat,jamendo}/musicnn``.

- **Source.** Raw file URLs of the upstream repository at :data:`UPSTREAM_COMMIT`
  (``https://raw.githubusercontent.com/<repo>/<commit>/models/<dataset>/<dir>/best_model.pth``),
  each checked against the SHA-256 and size kept in :data:`CATALOG` (from the mirror's
  ``manifest.json``), through :func:`pipeline.data.download.fetch_file` (resume, retry,
  verify). ``mirror`` (``--mirror``) replaces the source with a folder laid out like the
  project's mirror (``sota/<dataset>/<model>/best_model.pth``) or a base URL of one.
- **Conversion.** An upstream ``state_dict`` maps one to one, in order, onto our paper-width
  model of the same name once its two front-end buffers (:data:`FRONTEND_BUFFERS`) are set
  aside: our front-end rebuilds them (window: identical; mel filterbank: within 1.3e-5 of the
  checkpoint's). Shapes must match exactly, else the file is refused. Subnormal weights
  (below 1.2e-38; up to 240,000 of them in the MSD/Jamendo files) are flushed to zero: they
  change no output measurably and make CPU inference up to 6x slower.
- **Where.** Packaged models (``model.pt`` + ``model.json``, :mod:`pipeline.models.checkpoint`) live
  in :func:`models_root`: ``$MUSICREP_PRETRAINED_DIR``, else
  ``$XDG_DATA_HOME/musicrep/pretrained``, else ``~/.local/share/musicrep/pretrained``, as
  ``sota/<dataset>/<model>/``; the verified upstream file stays in ``downloads/``. A model
  already packaged with the catalogued checksum is not fetched again.
- **Card.** ``metadata.pretrained`` records the name, source URL, repository, commit,
  license, SHA-256, git blob id, tags, input length, the front-end buffers (shape and the
  largest difference from ours) and the number of flushed subnormal weights.

The other published variants (hcnn, short_res, samplecnn, samplecnn_se, cnnsa, and the MSD
musicnn, whose back-end is 512 channels with a 500-unit dense layer where ours builds 64/200)
are listed with their upstream URLs but are not mirrored: musicrep has no checksum and no
tested mapping for them, and ``fetch`` refuses them with one sentence.

:func:`load_packaged_or_pretrained` loads a ``sota:`` name or a packaged-model directory; it
is the one entry point other modules use.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from pipeline.config.project import pretrained_mirror
from pipeline.core.errors import UserError
from pipeline.core.locks import stage_lock
from pipeline.core.settings import settings
from pipeline.data.download import RemoteFile, fetch_file
from pipeline.models.base import ModelConfig
from pipeline.models.checkpoint import CARD, WEIGHTS, load_model, read_card, save_model
from pipeline.models.pretrained_catalog import (
    CATALOG,
    LICENSE,
    UPSTREAM_COMMIT,
    UPSTREAM_REPO,
    PretrainedSpec,
    get_spec,
    is_pretrained_name,
)
from pipeline.models.zoo import build_model, count_parameters

if TYPE_CHECKING:
    import torch

    from pipeline.models.base import AudioModel

log = logging.getLogger(__name__)

FRONTEND_BUFFERS = {
    "spec.spectrogram.window": "frontend.transform.spectrogram.window",
    "spec.mel_scale.fb": "frontend.transform.mel_fb",
}
"""Upstream front-end buffer -> the buffer our front-end rebuilds (not stored in our checkpoints)."""
SONG_LEVEL = (
    "non-overlapping input-length chunks plus one end-aligned chunk, sigmoid scores averaged "
    "(the reference's eval.py averages 16 evenly spaced chunks)"
)


def models_root() -> Path:
    """The user-level folder of fetched models: ``$MUSICREP_PRETRAINED_DIR``, else ``$XDG_DATA_HOME/musicrep/pretrained``,
    else ``~/.local/share/musicrep/pretrained``."""
    env = settings().pretrained_dir
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    return (Path(xdg) if xdg else Path.home() / ".local" / "share") / "musicrep" / "pretrained"


def package_dir(name: str, root: str | Path | None = None) -> Path:
    """Where the packaged model of ``name`` lives (``<root>/sota/<dataset>/<model>``)."""
    spec = get_spec(name)
    return Path(root or models_root()) / "sota" / spec.dataset / spec.variant


def is_fetched(name: str, root: str | Path | None = None) -> bool:
    """True when ``name`` is packaged under ``root`` from the catalogued upstream file."""

    directory, spec = package_dir(name, root), get_spec(name)
    if not ((directory / CARD).exists() and (directory / WEIGHTS).exists()):
        return False

    try:
        return read_card(directory).get("metadata", {}).get("pretrained", {}).get("sha256") == spec.sha256
    except UserError:
        return False


def convert_state_dict(spec: PretrainedSpec, upstream: Mapping[str, torch.Tensor]) -> tuple[AudioModel, dict[str, Any]]:
    """Our paper-width model carrying the upstream weights, and the card's conversion record.

    Raises:
        UserError: the file's tensors do not map one to one onto the model (count or shape).
    """

    model = build_model(ModelConfig(spec.variant, len(spec.tags), True, input_length=spec.input_length))
    ours = model.state_dict()
    weights = [(k, v) for k, v in upstream.items() if k not in FRONTEND_BUFFERS]
    wrong = [
        f"{k} {tuple(v.shape)} -> {o} {tuple(ours[o].shape)}" for (k, v), o in zip(weights, ours) if v.shape != ours[o].shape
    ]
    if len(weights) != len(ours) or wrong:
        detail = wrong[0] if wrong else f"{len(weights)} tensors for {len(ours)}"
        raise UserError(
            f"the file of {spec.name} does not fit musicrep's {spec.variant} ({detail}); it is not the published "
            "checkpoint: delete it and fetch again."
        )
    tiny = torch.finfo(torch.float32).tiny
    flushed, mapped = 0, {}
    for (_, value), key in zip(weights, ours):
        if value.is_floating_point():
            sub = (value != 0) & (value.abs() < tiny)
            flushed += int(sub.sum())
            value = value.masked_fill(sub, 0.0)
        mapped[key] = value
    model.load_state_dict(mapped)
    model.eval()
    rebuilt = dict(model.named_buffers())
    buffers = {
        k: {
            "shape": list(upstream[k].shape),
            "ours": ours_name,
            "max_abs_diff_from_ours": float((upstream[k].float() - rebuilt[ours_name].float()).abs().max()),
        }
        for k, ours_name in FRONTEND_BUFFERS.items()
        if k in upstream and ours_name in rebuilt
    }
    return model, {"frontend_buffers": buffers, "subnormal_weights_flushed": flushed}


def fetch(name: str, mirror: str | os.PathLike | None = None, root: str | Path | None = None) -> Path:
    """Download (or copy from ``mirror``), verify, convert and package ``name``; return its directory.

    A model already packaged from the catalogued file is returned at once (no download). One fetch
    per entry at a time (a lock in the store, ``.musicrep/locks/pretrained-<dataset>-<model>.lock``):
    a second one, from any project, waits, then finds the packaged model.

    Raises:
        UserError: unknown or unavailable name, unreachable source, checksum mismatch, a file
            that does not fit the model.
    """

    spec = get_spec(name)
    if spec.unavailable:
        raise UserError(
            f"{spec.name} cannot be fetched: {spec.unavailable}; use one of the mirrored models "
            f"(`musicrep pretrained list`) or convert {spec.url} yourself."
        )
    root = Path(root or models_root())
    target = package_dir(spec.name, root)
    if is_fetched(spec.name, root):
        log.info("%s is already packaged in %s", spec.name, target)
        return target
    holder = f"musicrep pretrained fetch {spec.name}"
    with stage_lock("pretrained", spec.dataset, spec.variant, root=root, holder=holder, wait=True):  # one fetch per entry
        if is_fetched(spec.name, root):  # another process packaged it while this one waited
            log.info("%s was packaged in %s by another fetch", spec.name, target)
            return target
        return _fetch_and_package(spec, mirror, root, target)


def _fetch_and_package(spec: PretrainedSpec, mirror: str | os.PathLike | None, root: Path, target: Path) -> Path:
    """Download, verify, convert and package ``spec`` into ``target`` (hold the entry's lock)."""

    remote = RemoteFile(name=spec.mirror_path, url=spec.url, sha256=spec.sha256, size=spec.size, note="mirror manifest.json")
    path = fetch_file(remote, root / "downloads", spec.name, mirror, command=f"musicrep pretrained fetch {spec.name}")
    assert path is not None  # not optional
    try:
        upstream = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a verified file that does not unpickle is still refused
        raise UserError(
            f"{path} could not be loaded safely ({type(exc).__name__}); delete it and fetch {spec.name} again."
        ) from None
    model, record = convert_state_dict(spec, upstream)
    metadata = {
        "task": f"sota-{spec.dataset}",
        "dataset": spec.dataset,
        "model_name": spec.variant,
        "kind": "multilabel",
        "pretrained": {
            "name": spec.name,
            "source_url": spec.url,
            "repository": UPSTREAM_REPO,
            "commit": UPSTREAM_COMMIT,
            "license": LICENSE,
            "sha256": spec.sha256,
            "git_blob": spec.git_blob,
            "tags": list(spec.tags),
            "input_length": spec.input_length,
            "song_level_protocol": SONG_LEVEL,
            **record,
        },
    }
    save_model(model, target, list(spec.tags), metadata)
    log.info("packaged %s in %s", spec.name, target)
    return target


def ensure(name: str, root: str | Path | None = None, mirror: str | os.PathLike | None = None) -> Path:
    """The packaged directory of ``name``, fetched first when absent (from ``mirror``, else
    ``$MUSICREP_PRETRAINED_MIRROR``: :func:`pipeline.config.project.pretrained_mirror`)."""
    if is_fetched(name, root):
        return package_dir(name, root)

    return fetch(name, pretrained_mirror(mirror), root)


def load_packaged_or_pretrained(
    name_or_dir: str | Path,
    map_location: str | torch.device = "cpu",
    root: str | Path | None = None,
    mirror: str | os.PathLike | None = None,
) -> tuple[AudioModel, dict[str, Any]]:
    """Load a ``sota:`` model (fetched on first use, from ``mirror`` as :func:`ensure`) or a packaged-model directory.

    Returns:
        ``(model in eval mode, card)``, as :func:`pipeline.models.checkpoint.load_model`.
    """

    directory = ensure(str(name_or_dir), root, mirror) if is_pretrained_name(name_or_dir) else Path(name_or_dir)
    return load_model(directory, map_location=map_location)


def catalog_rows(root: str | Path | None = None, mirror: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """One row per catalogued model for ``musicrep pretrained list``.

    Keys: ``name, dataset, n_tags, tags`` (first five), ``input_seconds, params`` (trainable, our
    model; None where we build none), ``source, license, offline`` (``fetched``, ``in mirror``
    or ``no``), ``note`` (why it cannot be fetched).
    """

    rows = []
    for spec in CATALOG.values():
        params = None
        if "back-end" not in spec.unavailable:
            params = count_parameters(build_model(ModelConfig(spec.variant, 50, True, input_length=spec.input_length)))
        offline = "no"
        if not spec.unavailable and is_fetched(spec.name, root):
            offline = "fetched"
        elif not spec.unavailable and mirror and Path(mirror, spec.mirror_path).is_file():
            offline = "in mirror"
        rows.append(
            {
                "name": spec.name,
                "dataset": spec.dataset,
                "n_tags": len(spec.tags),
                "tags": list(spec.tags[:5]),
                "input_seconds": spec.input_length / 16_000,
                "params": params,
                "source": spec.url,
                "license": "MIT",
                "offline": offline,
                "note": spec.unavailable,
            }
        )
    return rows


__all__ = [
    "CATALOG",
    "PretrainedSpec",
    "catalog_rows",
    "convert_state_dict",
    "ensure",
    "fetch",
    "get_spec",
    "is_fetched",
    "is_pretrained_name",
    "load_packaged_or_pretrained",
    "models_root",
    "package_dir",
]
