"""Start a grid variant from a trained model: ``variants: {NAME: {model, init, freeze}}``.

``init`` names a published reference model (``sota:mtat/musicnn``, :mod:`pipeline.models.pretrained`)
or a packaged-model directory; ``freeze`` is ``none`` (fine-tune all layers, default),
``frontend`` or ``backbone``. :func:`apply_init` is the one place training calls, with the variant's
``init``/``freeze`` (:func:`pipeline.config.params.grid_model`) and the resolved mirror:

- **Weights.** Every tensor of the new model is copied from the init model, except the
  classifier head (``backend.head``) when the label sets differ: the head is then the new
  model's own fresh one (replaced, not trimmed). Any other tensor whose name or shape differs
  (another variant, width or front-end) is refused with a :class:`~pipeline.core.errors.UserError`.
- **Freezing.** ``frontend``: the model's front-end plus the back-end's input norm and, where
  the back-end has one, its ``front`` (musicnn's timbral/temporal filters). ``backbone``:
  everything except ``backend.head``. Frozen parameters get ``requires_grad = False`` and
  frozen modules are put back in eval mode before every forward pass (a forward pre-hook), so
  their batch-norm running statistics never move, though the training loop calls
  ``model.train()`` every epoch.
- **Record.** The returned dict (``init``, ``init_sha256``, ``freeze``, ``head``, counts) goes
  into the model card (``metadata.init``) and into the MLflow run's tags (``init.*``).
- **DVC.** :func:`init_dependencies` gives the files whose content fixes the init weights (the
  pinned catalogue for ``sota:`` names, the ``model.pt`` of a directory); the cell depends on them.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.core.errors import UserError
from pipeline.core.io_utils import sha256_file
from pipeline.models.pretrained import is_pretrained_name, load_packaged_or_pretrained

if TYPE_CHECKING:
    from torch import nn

    from pipeline.models.base import AudioModel

log = logging.getLogger(__name__)

FREEZE = ("none", "frontend", "backbone")
HEAD = "backend.head"


def _frozen_modules(model: AudioModel, freeze: str) -> list[nn.Module]:
    if freeze == "none":
        return []
    if freeze == "backbone":
        return [model.frontend, *(m for name, m in model.backend.named_children() if name != "head")]
    backend = model.backend
    return [model.frontend, *(getattr(backend, n) for n in ("input_norm", "front") if hasattr(backend, n))]


def _keep_eval(modules: list[nn.Module]):
    def hook(_module: nn.Module, _inputs: Any) -> None:
        for m in modules:
            m.eval()

    return hook


def apply_init(
    model: AudioModel, labels: list[str], init: str | None, freeze: str = "none", mirror: str | None = None
) -> dict[str, str]:
    """Load ``init``'s weights into ``model`` and freeze the parts ``freeze`` names.

    Args:
        model: the freshly built grid model (any device; weights are copied in place).
        labels: the task's labels, in output order.
        init: ``sota:<dataset>/<model>``, a packaged-model directory, or None (nothing to do
            except freezing, which then needs an init).
        freeze: ``none``, ``frontend`` or ``backbone``.
        mirror: where a ``sota:`` init not yet fetched comes from (``pretrained.mirror``, else the environment's).

    Returns:
        String record for the model card and MLflow tags (empty when ``init`` is None).

    Raises:
        UserError: unknown ``freeze``, ``freeze`` without ``init``, or weights that do not fit.
    """
    if freeze not in FREEZE:
        raise UserError(f"freeze: {freeze!r} is not one of {', '.join(FREEZE)}; fix it in the variant's params.")
    if init is None:
        if freeze != "none":
            raise UserError(f"freeze: {freeze} needs an init model to keep; add init: sota:mtat/musicnn (or a model folder).")
        return {}

    source, card = load_packaged_or_pretrained(init, mirror=mirror)
    same_labels = list(card["labels"]) == list(labels)
    ours, theirs = model.state_dict(), source.state_dict()
    copied, kept = {}, []
    for key, value in ours.items():
        if not same_labels and key.startswith(HEAD + "."):
            kept.append(key)
            continue
        if key not in theirs or theirs[key].shape != value.shape:
            got = tuple(theirs[key].shape) if key in theirs else "missing"
            raise UserError(
                f"init {init} ({card['config'].get('variant')}, width {card['config'].get('width')}) does not fit this "
                f"{model.config.variant} model at {key} ({got} for {tuple(value.shape)}); use an init of the same variant and width."
            )
        copied[key] = theirs[key].to(value.device, value.dtype)
    model.load_state_dict({**ours, **copied})
    frozen = _frozen_modules(model, freeze)
    for m in frozen:
        for p in m.parameters():
            p.requires_grad_(False)
    if frozen:
        model.register_forward_pre_hook(_keep_eval(frozen))
    directory = None if is_pretrained_name(init) else Path(init)
    record = {
        "init": str(init),
        "init_sha256": str(
            card.get("metadata", {}).get("pretrained", {}).get("sha256") or sha256_file(Path(directory) / "model.pt")
        ),
        "init_model_sha256": str(card.get("sha256")),
        "freeze": freeze,
        "head": "kept (same labels)" if same_labels else f"replaced ({len(card['labels'])} -> {len(labels)} outputs)",
        "trainable_params": str(sum(p.numel() for p in model.parameters() if p.requires_grad)),
        "frozen_params": str(sum(p.numel() for p in model.parameters() if not p.requires_grad)),
    }
    log.info("initialised from %s (head %s, freeze %s)", init, record["head"], freeze)
    return record


def init_dependencies(init: str | None) -> list[str]:
    """Files whose content fixes the weights of ``init``: DVC dependencies of the cell."""
    if not init:
        return []

    code = ["pipeline/models/transfer.py", "pipeline/models/pretrained.py"]  # only cells with an init depend on them
    if is_pretrained_name(init):
        return [*code, "pipeline/models/pretrained_catalog.py"]  # holds the pinned SHA-256 of every published file
    return [*code, str(Path(init) / "model.pt")]


__all__ = ["FREEZE", "apply_init", "init_dependencies"]
