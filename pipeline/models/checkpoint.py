"""Checkpoint format: save, verify and load trained models safely.

A packaged model is a directory holding

- ``model.pt``: ``torch.save`` of a plain dict (tensors, strings, numbers only) with keys
  ``format`` (= ``"musicrep-model"``), ``format_version``, ``config`` (a
  :class:`~pipeline.models.base.ModelConfig` as a dict), ``labels`` (class names, in output
  order), ``state_dict`` and ``metadata`` (task, dataset, training summary);
- ``model.json``: the same config/labels in readable form plus ``sha256`` of ``model.pt``.

Loading checks the checksum first, then loads with ``weights_only=True`` (never arbitrary
pickles), then checks the format name and version, that the card's labels count equals its
config's outputs, that the weights were packaged with the card's config and labels, and that
the weights fit the model the card describes (strict shapes); anything else is refused with a
:class:`~pipeline.core.errors.UserError` (a corrupt ``model.json`` too).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch

from pipeline.core.errors import UserError
from pipeline.core.io_utils import atomic_path, sha256_file, write_json
from pipeline.models.base import AudioModel, ModelConfig
from pipeline.models.zoo import build_model

FORMAT = "musicrep-model"
FORMAT_VERSION = 1
WEIGHTS = "model.pt"
CARD = "model.json"


def save_model(model: AudioModel, directory: str | Path, labels: list[str], metadata: dict[str, Any] | None = None) -> Path:
    """Write ``model.pt`` and ``model.json`` atomically into ``directory``; return the directory."""
    directory = Path(directory)
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": dataclasses.asdict(model.config),
        "labels": list(labels),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "metadata": metadata or {},
    }
    with atomic_path(directory / WEIGHTS) as tmp, open(tmp, "wb") as fh:
        # a file object, not the path: torch.save names the zip's top folder after a path's file name,
        # and the temporary name is random, so the same weights would give other bytes (and DVC hashes)
        torch.save(payload, fh)
    card = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "sha256": sha256_file(directory / WEIGHTS),
        "config": payload["config"],
        "labels": payload["labels"],
        "metadata": payload["metadata"],
    }
    write_json(directory / CARD, card)
    return directory


def read_card(directory: str | Path) -> dict[str, Any]:
    """Return the parsed ``model.json`` of a packaged model directory."""
    path = Path(directory) / CARD
    if not path.exists():
        raise UserError(f"{directory} is not a trained model (no {CARD}); train one with `musicrep train` first.")
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        where = f" at line {exc.lineno} column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise UserError(
            f"{path} is corrupt (not readable JSON{where}); re-run training or re-download the model to rebuild it."
        ) from None
    if not isinstance(card, dict):
        raise UserError(f"{path} is corrupt (not a JSON object); re-run training or re-download the model to rebuild it.")
    return card


def _check_card(directory: Path, card: dict[str, Any], payload: dict[str, Any]) -> ModelConfig:
    """The card's config, once its labels, config and the weights' shapes agree (else :class:`UserError`)."""
    fix = "re-run training or re-download the model (model.json and model.pt must come from the same run)"
    labels, config = card.get("labels"), card.get("config")
    if not isinstance(labels, list) or not isinstance(config, dict):
        raise UserError(f"{directory / CARD} has no labels/config; {fix}.")
    try:
        cfg = ModelConfig(**config)
    except TypeError as exc:
        raise UserError(f"{directory / CARD} has an invalid config ({exc}); {fix}.") from None
    if cfg.n_classes != len(labels):
        raise UserError(f"{directory / CARD} lists {len(labels)} labels for a model with {cfg.n_classes} outputs; {fix}.")

    def plain(obj: Any) -> Any:  # tuples in the weights' config are lists in the card
        return json.loads(json.dumps(obj, sort_keys=True, default=str))

    if plain(payload.get("config")) != plain(config) or plain(list(payload.get("labels") or [])) != plain(labels):
        other = payload.get("config") or {}
        raise UserError(
            f"{directory / WEIGHTS} belongs to another model ({other.get('variant')!r} with "
            f"{len(payload.get('labels') or [])} labels) than {directory / CARD} describes "
            f"({cfg.variant!r} with {len(labels)} labels); {fix}."
        )
    return cfg


def load_model(directory: str | Path, map_location: str | torch.device = "cpu") -> tuple[AudioModel, dict[str, Any]]:
    """Verify and load a packaged model.

    Returns:
        ``(model in eval mode, card dict)``.

    Raises:
        UserError: missing files, checksum mismatch, unknown format or version.
    """

    directory = Path(directory)
    card = read_card(directory)
    weights = directory / WEIGHTS
    if not weights.exists():
        raise UserError(f"{weights} is missing; re-run training or re-download the model.")
    if card.get("format") != FORMAT or card.get("format_version") != FORMAT_VERSION:
        raise UserError(
            f"{directory} has format {card.get('format')!r} v{card.get('format_version')}, "
            f"this musicrep reads {FORMAT!r} v{FORMAT_VERSION}; retrain or use a matching musicrep version."
        )
    digest = sha256_file(weights)
    if digest != card.get("sha256"):
        raise UserError(f"{weights} fails its checksum (file was modified or truncated); re-run training to rebuild it.")
    try:
        payload = torch.load(weights, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad file
        raise UserError(f"{weights} could not be loaded safely ({type(exc).__name__}); re-run training to rebuild it.") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT or payload.get("format_version") != FORMAT_VERSION:
        raise UserError(f"{weights} is not a musicrep v{FORMAT_VERSION} model; retrain it with this version.")
    config = _check_card(directory, card, payload)
    model = build_model(config)
    try:
        model.load_state_dict(payload["state_dict"])
    except (RuntimeError, KeyError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise UserError(
            f"{weights} does not fit the {config.variant!r} model with {config.n_classes} outputs that "
            f"{directory / CARD} describes ({first}); re-run training to rebuild it."
        ) from None
    model.eval()
    return model, card


RUN_FILE = "mlflow_run.json"
"""The MLflow run a packaged model was trained in, beside the model and outside what DVC hashes
(``.dvcignore``): run ids are random, so inside the model card they would change the model's DVC
hash on every re-run of the same cell."""


def write_run_id(directory: Path, run_id: str | None) -> None:
    """Record (or, with ``None``, forget) the MLflow run of the packaged model in ``directory``."""
    path = Path(directory) / RUN_FILE
    if run_id is None:
        path.unlink(missing_ok=True)
        return
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps({"mlflow_run_id": run_id}) + "\n")


def read_run_id(directory: Path, card: dict | None = None) -> str | None:
    """The MLflow run id of the packaged model in ``directory`` (models packaged before
    :data:`RUN_FILE` kept it in the card's metadata); ``None`` when neither has one."""
    path = Path(directory) / RUN_FILE
    if path.exists():
        try:
            return json.loads(path.read_text()).get("mlflow_run_id")
        except (OSError, ValueError, AttributeError):
            return None
    return ((card or {}).get("metadata") or {}).get("mlflow_run_id")
