"""MLflow model registry for packaged musicrep models.

We register **our own packaged files** (``model.pt`` + ``model.json``,
:mod:`pipeline.models.checkpoint`), not ``mlflow.pytorch.log_model`` output: that would be a pickle
or a ``torch.export`` program (docs/spec.md §10.3: the pt2 default bakes the example's batch size
into the export; pickles are unsafe to load), while our format loads with
``weights_only=True`` after a checksum.

- :func:`register_model` creates a registered-model version from the files the model's training
  run already holds (``runs:/<run_id>/model``: training logs them and tags the run with the
  ``model.pt`` sha256, :data:`~pipeline.tracking.runs.MODEL_SHA_TAG`), so ``model.pt`` is stored
  once per run. Where the run holds other files (or is not in this store), the two files are
  logged once under ``package/<sha256[:12]>/`` (content-addressed, so a re-packaged model never
  overwrites the files an older version points at) and the version's ``source`` is
  ``runs:/<run_id>/package/<sha12>``. Registering the same files again returns the existing
  version (idempotent). Tags: ``format``, ``format_version``, ``sha256``, ``n_labels``,
  ``sample_rate``, ``input_length``, ``task``, ``variant``, ``model_name``, ``multilabel``.
- :func:`set_champion` points the ``champion`` alias of ``musicrep-<task>-family-<family>``
  (one registered model per task and front-end family) at a version holding the files of the
  family's best cell: the same ``source`` as that cell's own version, no copy.
- :func:`resolve_model_uri` turns ``models:/<name>/<version>`` (or ``/latest``, or
  ``@<alias>``) into a local directory: downloaded once into a cache
  (``$MUSICREP_MODEL_CACHE``, else ``$XDG_CACHE_HOME/musicrep/models``, else
  ``~/.cache/musicrep/models``), keyed by registry, name and version, and checked against
  the version's ``sha256`` tag. :func:`pipeline.models.checkpoint.load_model` then verifies the
  card's checksum and the format as for any local model.

The registry is the tracking store (``MLFLOW_TRACKING_URI`` or the project's
``mlflow.db``; :func:`pipeline.tracking.runs.client`). Tested with MLflow 3.17.2 on a SQLite store.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.core.errors import UserError
from pipeline.core.io_utils import sha256_file, stable_hash
from pipeline.core.lazy import lazy
from pipeline.core.settings import settings
from pipeline.models.checkpoint import read_card, read_run_id
from pipeline.tracking import runs as tracking
from pipeline.tracking.runs import MODEL_ARTIFACT_DIR, MODEL_SHA_TAG, mlflow_errors

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

log = logging.getLogger(__name__)

mlflow_artifacts = lazy("mlflow.artifacts")  # after quiet_mlflow_env(), as every MLflow import (pipeline.tracking.runs)

PACKAGE_DIR = "package"
PACKAGE_FILES = ("model.pt", "model.json")
CHAMPION_ALIAS = "champion"
"""The alias of the best version of each task's front-end family (:func:`set_champion`)."""
_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>[^/]+)|@(?P<alias>[^/]+))/?$")


def default_name(card: dict[str, Any]) -> str:
    """``musicrep-<task>-<model>`` from a model card (characters MLflow dislikes -> ``-``)."""
    meta = card.get("metadata", {})
    task = meta.get("task") or "task"
    model = meta.get("model_name") or card.get("config", {}).get("variant") or "model"
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", f"musicrep-{task}-{model}")


def _is_not_found(exc: Exception) -> bool:
    code = getattr(exc, "error_code", "") or ""
    return "RESOURCE_DOES_NOT_EXIST" in code or "NOT_FOUND" in code or "not found" in str(exc).lower()


def _version_tags(card: dict[str, Any], digest: str) -> dict[str, str]:
    config, meta = card.get("config", {}), card.get("metadata", {})
    return {
        "format": str(card.get("format")),
        "format_version": str(card.get("format_version")),
        "sha256": digest,
        "n_labels": str(len(card.get("labels", []))),
        "sample_rate": str(config.get("sample_rate")),
        "input_length": str(config.get("input_length")),
        "task": str(meta.get("task")),
        "variant": str(config.get("variant")),
        "model_name": str(meta.get("model_name")),
        "multilabel": str(config.get("multilabel")),
    }


def _host_run(c: MlflowClient, card: dict[str, Any], model_dir: Path, root: Path) -> str:
    """The model's training run, or (when it is not in this store) a new run to hold the files."""

    meta = card.get("metadata", {})
    run_id = read_run_id(model_dir, card)
    if run_id:
        try:
            c.get_run(run_id)
            return run_id
        except Exception as exc:  # noqa: BLE001 - deleted run or another store
            log.info(
                "training run %s is not in %s (%s); registering from a new run",
                run_id,
                tracking.tracking_uri(root),
                type(exc).__name__,
            )
    task = str(meta.get("task") or "registered")
    run = c.create_run(
        tracking.experiment_id(c, task, root),
        run_name=str(meta.get("model_name") or model_dir.name),
        tags={"task": task, "model": str(meta.get("model_name")), "musicrep.registered_from": str(model_dir.resolve())},
    )
    c.set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id


def _package_path(c: MlflowClient, run_id: str, model_dir: Path, digest: str) -> str:
    """The artifact folder of ``run_id`` that holds ``model_dir``'s package: the training's own
    ``model/`` when the run's sha256 tag names these weights, else ``package/<sha12>/``, logged there
    unless an earlier registration already did."""
    if c.get_run(run_id).data.tags.get(MODEL_SHA_TAG) == digest:
        return MODEL_ARTIFACT_DIR
    path = f"{PACKAGE_DIR}/{digest[:12]}"
    present = {Path(a.path).name for a in c.list_artifacts(run_id, path)}
    for fname in PACKAGE_FILES:
        if fname not in present:
            c.log_artifact(run_id, str(model_dir / fname), path)
    return path


def _ensure_registered_model(c: MlflowClient, name: str, tags: dict[str, str], description: str) -> None:
    """Create registered model ``name`` unless it exists."""
    try:
        c.create_registered_model(name, tags=tags, description=description)
    except Exception as exc:  # noqa: BLE001 - already exists
        if "RESOURCE_ALREADY_EXISTS" not in (getattr(exc, "error_code", "") or "") and "already exists" not in str(exc):
            raise


def family_model_name(task: str, family: str) -> str:
    """``musicrep-<task>-family-<family>``: the registered model whose ``champion`` alias is the family's best."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", f"musicrep-{task}-family-{family}")


def set_champion(uri: str, task: str, family: str, note: str, c: MlflowClient, root: Path) -> str:
    """Point ``models:/musicrep-<task>-family-<family>@champion`` at the files of version ``uri``.

    Aliases belong to one registered model and name one of its versions, so each (task, family)
    has its own registered model; its versions share the ``source`` of the cells' versions
    (nothing is copied), one per distinct champion (idempotent: the same files reuse their version).

    Args:
        uri: the champion cell's ``models:/<name>/<version>``.
        task: the task it won.
        family: its front-end family (``mel``, ``waveform``, ``harmonic``, ``learnable``).
        note: why it won (``"accuracy 0.972, mean of 3 seeds"``), the version's description.
        c: the MLflow client.
        root: the project (its tracking store, named in errors).

    Returns:
        ``models:/<family model>@champion``.
    """
    cell = get_version(uri, root, c)
    name = family_model_name(task, family)
    _ensure_registered_model(
        c,
        name,
        tags={"task": task, "family": family},
        description=f"The best {family} front-end variant on {task}; alias `{CHAMPION_ALIAS}` names it (musicrep report).",
    )
    version = find_version(name, cell.tags["sha256"], c)
    if version is None:
        version = c.create_model_version(
            name, source=cell.source, run_id=cell.run_id, tags={**cell.tags, "family": family}, description=f"{uri}: {note}"
        ).version
    c.set_registered_model_alias(name, CHAMPION_ALIAS, str(version))
    return f"models:/{name}@{CHAMPION_ALIAS}"


def find_version(name: str, digest: str, c: MlflowClient) -> str | None:
    """Version of registered model ``name`` whose ``sha256`` tag is ``digest``, if any."""
    try:
        versions = c.search_model_versions(f"name='{name}'")
    except Exception:  # noqa: BLE001 - no such model
        return None
    matches = [v for v in versions if v.tags.get("sha256") == digest]
    return str(max(int(v.version) for v in matches)) if matches else None


def register_model(
    model_dir: str | Path,
    root: Path,
    name: str | None = None,
    description: str | None = None,
    client: MlflowClient | None = None,
) -> tuple[str, str]:
    """Register a packaged model directory in the MLflow model registry.

    Args:
        model_dir: ``models/<task>/<model>`` (holding ``model.pt`` and ``model.json``).
        name: registered-model name (default ``musicrep-<task>-<model>``).
        description: version description (default: variant, task, best validation metrics).
        client: an MLflow client to reuse (default: :func:`pipeline.tracking.runs.client`).

    Returns:
        ``(name, version)``; ``models:/<name>/<version>`` then loads it anywhere that sees
        this tracking store.

    Raises:
        UserError: not a packaged model, or ``model.pt`` fails its checksum (never register
            a modified file).
    """

    model_dir = Path(model_dir)
    card = read_card(model_dir)
    weights = model_dir / "model.pt"
    if not weights.exists():
        raise UserError(f"{weights} is missing; re-run training before registering {model_dir}.")
    digest = sha256_file(weights)
    if digest != card.get("sha256"):
        raise UserError(f"{weights} fails its checksum (file was modified or truncated); re-run training, then register it.")
    name = name or default_name(card)
    c = client or tracking.client(root)
    existing = find_version(name, digest, c)
    if existing is not None:
        log.info("%s is already registered as models:/%s/%s", model_dir, name, existing)
        return name, existing
    run_id = _host_run(c, card, model_dir, root)
    artifact_path = _package_path(c, run_id, model_dir, digest)
    tags = _version_tags(card, digest)
    _ensure_registered_model(
        c,
        name,
        tags={"task": tags["task"], "variant": tags["variant"], "format": tags["format"]},
        description=f"musicrep {tags['variant']} trained on {tags['task']} (packaged model.pt + model.json).",
    )
    meta = card.get("metadata", {})
    vals = ", ".join(f"{k} {v:.4f}" for k, v in (meta.get("val_metrics") or {}).items() if isinstance(v, (int, float)))
    mv = c.create_model_version(
        name,
        source=f"runs:/{run_id}/{artifact_path}",
        run_id=run_id,
        tags=tags,
        description=description
        or f"{tags['variant']} on {tags['task']}; best epoch {meta.get('best_epoch')}" + (f"; validation {vals}" if vals else ""),
    )
    log.info("registered %s as models:/%s/%s", model_dir, name, mv.version)
    return name, str(mv.version)


def register_models(model_dirs: list[Path], client: MlflowClient, root: Path) -> dict[Path, str | Exception]:
    """Register every packaged model of ``model_dirs`` (idempotent, :func:`register_model`).

    Returns, per directory, its ``models:/<name>/<version>`` URI or the error that stopped it
    (registry down, bad checkpoint), so that one failure does not stop the others.
    """

    out: dict[Path, str | Exception] = {}
    for model_dir in model_dirs:
        try:
            name, version = register_model(model_dir, root, client=client)
            out[model_dir] = f"models:/{name}/{version}"
        except (UserError, *mlflow_errors()) as exc:
            log.warning("could not register %s: %s", model_dir, exc)
            out[model_dir] = exc
    return out


def parse_model_uri(uri: str) -> tuple[str, str | None, str | None]:
    """``models:/name/3`` -> ``("name", "3", None)``; ``models:/name@prod`` -> ``("name", None, "prod")``."""
    m = _URI.match(uri.strip())
    if not m:
        raise UserError(f"{uri!r} is not a registry URI; use models:/NAME/VERSION, models:/NAME/latest or models:/NAME@ALIAS.")
    return m["name"], m["version"], m["alias"]


def get_version(uri: str, root: Path, c: MlflowClient | None = None) -> ModelVersion:
    """The :class:`ModelVersion` a ``models:/`` URI names (``latest`` = highest version)."""

    name, version, alias = parse_model_uri(uri)
    c = c or tracking.client(root)
    where = tracking.tracking_uri(root)
    try:
        if alias is not None:
            return c.get_model_version_by_alias(name, alias)
        if version == "latest":
            versions = c.search_model_versions(f"name='{name}'")
            if not versions:
                raise UserError(
                    f"registered model {name!r} has no versions in {where}; register one with `musicrep register MODEL_DIR`."
                )
            return max(versions, key=lambda v: int(v.version))
        if not version.isdigit():
            raise UserError(f"{uri!r}: version must be a number, 'latest' or '@alias'.")
        return c.get_model_version(name, version)
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - MlflowException for unknown names/versions
        if _is_not_found(exc):
            raise UserError(
                f"{uri} does not exist in the registry at {where}; check the name and version "
                "(MLflow UI: Models tab) or set MLFLOW_TRACKING_URI."
            ) from None
        raise


def cache_root() -> Path:
    """Where downloaded registry models are kept."""
    cache = settings().model_cache
    if cache is not None:
        return cache
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "musicrep" / "models"


def _cached_ok(directory: Path, digest: str | None) -> bool:
    return (
        all((directory / f).exists() for f in PACKAGE_FILES)
        and digest is not None
        and sha256_file(directory / "model.pt") == digest
    )


def resolve_model_uri(uri: str, project_root: Path, cache_dir: str | Path | None = None) -> Path:
    """Download the files of ``models:/<name>/<version>`` (once) and return their local directory.

    Args:
        uri: ``models:/NAME/VERSION``, ``models:/NAME/latest`` or ``models:/NAME@ALIAS``.
        project_root: the project whose registry (MLflow store) holds the model.
        cache_dir: cache root (default :func:`cache_root`).

    Returns:
        A directory with ``model.pt`` and ``model.json``, ready for
        :func:`pipeline.models.checkpoint.load_model` (which verifies checksum and format).

    Raises:
        UserError: malformed URI, unknown name/version, or downloaded files that do not
            match the version's ``sha256`` tag.
    """

    c = tracking.client(project_root)  # before importing mlflow: sets its telemetry switches

    mv = get_version(uri, project_root, c)
    digest = mv.tags.get("sha256")
    root = Path(cache_dir) if cache_dir else cache_root()
    target = root / stable_hash(tracking.tracking_uri(project_root)) / re.sub(r"[^A-Za-z0-9_.-]+", "-", mv.name) / str(mv.version)
    if _cached_ok(target, digest):
        return target
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".download-", dir=root))
    try:
        source = c.get_model_version_download_uri(mv.name, mv.version)
        try:
            local = Path(
                mlflow_artifacts.download_artifacts(
                    artifact_uri=source, dst_path=str(tmp), tracking_uri=tracking.tracking_uri(project_root)
                )
            )
        except Exception as exc:  # noqa: BLE001 - missing artifacts, unreachable store
            raise UserError(
                f"could not download {uri} from {source} ({type(exc).__name__}: {str(exc)[:160]}); "
                "check that the artifact store is reachable."
            ) from None
        if not all((local / f).exists() for f in PACKAGE_FILES):
            raise UserError(
                f"{uri} holds no musicrep package (model.pt + model.json) at {source}; "
                "register it with pipeline.tracking.registry.register_model."
            )
        if digest is None or sha256_file(local / "model.pt") != digest:
            raise UserError(
                f"{uri}: the downloaded model.pt does not match the registered sha256; the stored "
                "artifact was modified; re-register the model."
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            shutil.rmtree(target)
        os.replace(local, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("downloaded %s to %s", uri, target)
    return target


__all__ = [
    "register_model",
    "set_champion",
    "family_model_name",
    "resolve_model_uri",
    "get_version",
    "parse_model_uri",
    "find_version",
    "default_name",
    "cache_root",
]
