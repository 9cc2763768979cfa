"""Export a packaged model to ONNX: ``musicrep export MODEL --format onnx --out F.onnx``.

The exported graph takes the **waveform** ``waveform`` ``(batch, samples)``, float32, mono, at
the model's sample rate (16 kHz), and returns two outputs:

1. ``logits`` ``(batch, n_classes)``: what :meth:`AudioModel.forward` returns (no activation;
   sigmoid for multi-label models, softmax for single-label ones, as the card says);
2. ``embedding`` ``(batch, embedding_dim)``: the pooled back-end feature before the classifier
   (:meth:`AudioModel.embed`, what ``musicrep embed`` and the probes use).

The front-end (STFT, mel or harmonic filters, or none for sample-level models) is inside the
graph, so a user needs nothing but onnxruntime and audio at the right rate.

**Dynamic axes.** The batch axis is always dynamic. The length axis is dynamic (any length from the model's
``input_length`` up) where
``torch.export`` can trace the architecture for any length *and* onnxruntime then reproduces
PyTorch at a second, odd length (1.5 times the model's input length plus one); otherwise the graph is exported
for the model's ``input_length`` only (feed chunks of exactly that many samples, as evaluation
does). Which variants get which is measured in ``docs/benchmarks.md`` ("ONNX export"): the
models whose pooling is shaped for one input length (FCN, for example) get a fixed length.

The exporter is PyTorch's ``torch.export``-based one (``dynamo=True``, it needs ``onnxscript``):
the older TorchScript exporter cannot export ``torch.stft`` with complex output, which every
spectrogram front-end uses. Every export is checked before it is kept: onnxruntime on random
audio must reproduce the PyTorch logits and embeddings within :data:`TOLERANCE`.

The card's facts travel in the ONNX file's ``metadata_props`` (``musicrep.labels`` as JSON,
``musicrep.sample_rate``, ``musicrep.input_length``, ``musicrep.variant``,
``musicrep.multilabel``, ``musicrep.dynamic_length``, ``musicrep.sha256`` of ``model.pt``).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from pipeline.core.errors import UserError
from pipeline.core.io_utils import atomic_path
from pipeline.core.locks import clean_leftovers
from pipeline.models.backends.base import Backend
from pipeline.models.base import AudioModel

log = logging.getLogger(__name__)

TOLERANCE = 1e-4
"""Largest absolute difference allowed between onnxruntime and PyTorch outputs."""
INPUT_NAME = "waveform"
OUTPUT_NAMES = ("logits", "embedding")


class _LogitsAndEmbedding(nn.Module):
    """``(batch, samples)`` -> ``(logits, embedding)``, in one pass through the model where the back-end allows.

    A back-end whose logits are its classifier applied to its embedding (the base
    :class:`~pipeline.models.backends.base.Backend`, and every back-end that keeps its ``classify``)
    runs once; one that pools frame-wise scores instead (``gated_crnn``, whose ``classify`` is not
    defined) runs its ``forward`` for the logits and its ``embed`` for the embedding.
    """

    def __init__(self, model: AudioModel) -> None:
        super().__init__()

        self.model = model
        self.one_pass = type(model.backend).classify is Backend.classify or type(model.backend).forward is Backend.forward

    def forward(self, waveform: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.model.frontend(waveform)
        embedding = self.model.backend.embed(features)
        logits = self.model.backend.classify(embedding) if self.one_pass else self.model.backend(features)
        return logits, embedding


@dataclass
class ExportResult:
    """What :func:`export_onnx` wrote.

    Attributes:
        path: the ``.onnx`` file.
        variant: the model's registry name.
        dynamic_length: True when any length is accepted, False when only ``input_length``.
        input_length: the model's chunk length in samples.
        sample_rate: Hz.
        max_abs_diff: largest difference to PyTorch over the checks (logits and embeddings).
        size_bytes: file size.
        length_note: why the length axis is fixed (empty when dynamic).
    """

    path: Path
    variant: str
    dynamic_length: bool
    input_length: int
    sample_rate: int
    max_abs_diff: float
    size_bytes: int
    length_note: str = ""

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "path": str(self.path)}


def _session(path: Path):
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_outputs(session, waves: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Run an exported model: ``(batch, samples)`` float32 -> ``(logits, embedding)``."""
    logits, embedding = session.run(list(OUTPUT_NAMES), {INPUT_NAME: np.ascontiguousarray(waves, dtype=np.float32)})
    return logits, embedding


def max_difference(session, model: AudioModel, waves: np.ndarray) -> float:
    """Largest absolute difference between onnxruntime and PyTorch (logits and embeddings) on ``waves``."""
    with torch.no_grad():  # the model's own forward and embed, not the exported wrapper
        x = torch.from_numpy(np.ascontiguousarray(waves, dtype=np.float32))
        ref = (model(x), model.embed(x))
    got = onnx_outputs(session, waves)
    return float(max(np.abs(g - r.numpy()).max() for g, r in zip(got, ref)))


def _torch_export(model: AudioModel, path: Path, dynamic_length: bool) -> None:
    """``torch.onnx.export`` with a dynamic batch (and length); its progress lines go to the debug log."""
    length = model.input_length
    dims: dict[int, Any] = {0: torch.export.Dim("batch", min=1, max=1 << 16)}
    if dynamic_length:
        dims[1] = torch.export.Dim("samples", min=length, max=1 << 26)
    chatter = io.StringIO()
    quiet = [
        logging.getLogger(name)
        for name in ("torch.export", "torch._export", "torch.onnx", "torch._dynamo", "torch._guards", "torch.fx")
    ]
    levels = [lg.level for lg in quiet]
    try:
        for lg in quiet:
            lg.setLevel(logging.CRITICAL)
        with contextlib.redirect_stdout(chatter), contextlib.redirect_stderr(chatter):
            torch.onnx.export(
                _LogitsAndEmbedding(model).eval(),
                (torch.zeros(2, length),),
                str(path),
                input_names=[INPUT_NAME],
                output_names=list(OUTPUT_NAMES),
                dynamic_shapes={"waveform": dims},
                dynamo=True,
                external_data=False,
                verbose=False,
            )
    finally:
        for lg, level in zip(quiet, levels):
            lg.setLevel(level)
        log.debug("torch.onnx.export said: %s", chatter.getvalue()[-4000:])


def _first_line(exc: BaseException) -> str:
    text = str(exc.__cause__ or exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


def _set_metadata(path: Path, model: AudioModel, card: dict[str, Any], dynamic_length: bool) -> None:
    proto = onnx.load(str(path))
    config = model.config
    facts = {
        "musicrep.labels": json.dumps(card.get("labels", [])),
        "musicrep.sample_rate": str(config.sample_rate),
        "musicrep.input_length": str(config.input_length),
        "musicrep.variant": config.variant,
        "musicrep.multilabel": str(bool(config.multilabel)).lower(),
        "musicrep.dynamic_length": str(dynamic_length).lower(),
        "musicrep.sha256": str(card.get("sha256", "")),
    }
    del proto.metadata_props[:]
    for key, value in facts.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, str(path))


def written_by_musicrep(path: Path) -> bool:
    """True when ``path`` is an ONNX file carrying the metadata :func:`export_onnx` writes."""

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001 - anything that does not parse as ONNX is not ours
        return False
    return any(prop.key == "musicrep.variant" for prop in proto.metadata_props)


def _refuse_foreign_file(out: Path, force: bool) -> None:
    """Refuse to replace an existing ``out`` that an export did not write (``--force`` allows it)."""
    if force or not (out.exists() or out.is_symlink()):
        return
    if out.is_dir():
        raise UserError(f"--out {out} is a folder; pass a file name like {out / 'model.onnx'}.")
    if not written_by_musicrep(out):
        raise UserError(
            f"--out {out} already exists and was not written by `musicrep export`; choose another name, "
            "or pass --force to overwrite it."
        )


def export_onnx(
    model: AudioModel,
    card: dict[str, Any],
    out: str | Path,
    *,
    dynamic_length: bool | None = None,
    seed: int = 0,
    force: bool = False,
) -> ExportResult:
    """Export ``model`` to ``out`` (``.onnx``) and check it in onnxruntime.

    Works in a temporary folder ``.<out name>.tmp-*`` beside ``out``; a killed export's folder is
    removed by the next export to the same file (hold its lock, ``musicrep export`` does).

    Args:
        model: the loaded model (any device; exported from a CPU copy in eval mode).
        card: its ``model.json`` (labels and checksum go into the file's metadata).
        out: the file to write (its folder is created; written atomically).
        dynamic_length: ``None`` (default): try a dynamic length axis, fall back to the fixed
            ``input_length`` when the architecture does not allow it; ``False``: fixed length
            only; ``True``: dynamic or fail.
        seed: seed of the random check audio.
        force: overwrite ``out`` even when it is not an ONNX file that ``musicrep export`` wrote.

    Returns:
        :class:`ExportResult`.

    Raises:
        UserError: the architecture cannot be exported (the message names the reason), or
            ``dynamic_length=True`` and the length axis cannot be dynamic.
        RuntimeError: onnxruntime does not reproduce PyTorch within :data:`TOLERANCE` (a bug).
    """
    out = Path(out)
    if out.suffix != ".onnx":
        raise UserError(f"--out {out} must end in .onnx; pass a file name like model.onnx.")
    _refuse_foreign_file(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    clean_leftovers(out.parent, recursive=False, only=out.name)  # a killed export's .<name>.tmp-* folder
    model = model.to("cpu").eval()
    length, sr = model.input_length, model.config.sample_rate
    rng = np.random.default_rng(seed)
    check = (0.1 * rng.standard_normal((3, length))).astype(np.float32)
    check_long = (0.1 * rng.standard_normal((2, length + length // 2 + 1))).astype(
        np.float32
    )  # odd: any length, not just multiples
    fixed_note = ""
    attempts = [True, False] if dynamic_length is None else [bool(dynamic_length)]
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.tmp-", dir=out.parent) as work:
        for dynamic in attempts:
            tmp = Path(work) / f"{'dynamic' if dynamic else 'fixed'}.onnx"
            diff, note = _export_and_check(model, tmp, dynamic, check, check_long)
            if not note:
                _set_metadata(tmp, model, card, dynamic)
                with atomic_path(out) as final:
                    shutil.copyfile(tmp, final)
                return ExportResult(out, model.config.variant, dynamic, length, sr, diff, out.stat().st_size, fixed_note)
            if not dynamic:
                raise UserError(f"the {model.config.variant} model cannot be exported to ONNX ({note}); please report it.")
            if len(attempts) == 1:
                raise UserError(
                    f"the {model.config.variant} model cannot take a dynamic length in ONNX ({note}); drop --dynamic-length."
                )
            log.info("%s: no dynamic length (%s); exporting for %d samples", model.config.variant, note, length)
            fixed_note = note
    raise AssertionError("unreachable")  # pragma: no cover


def _export_and_check(
    model: AudioModel, path: Path, dynamic: bool, check: np.ndarray, check_long: np.ndarray
) -> tuple[float, str]:
    """Export to ``path`` and compare with PyTorch: ``(max difference, "")``, or ``(inf, why it failed)``.

    Raises:
        RuntimeError: the export ran but onnxruntime differs from PyTorch at the model's own
            input length (a bug in the exporter or the model, not a property of the architecture).
    """
    try:
        _torch_export(model, path, dynamic)
    except Exception as exc:  # noqa: BLE001 - torch.export's errors differ per architecture
        return float("inf"), f"torch.export fails: {_first_line(exc)}"
    session = _session(path)
    diff = max_difference(session, model, check)
    if diff > TOLERANCE:
        raise RuntimeError(f"onnxruntime differs from PyTorch by {diff:.2e} (> {TOLERANCE:g}) on {model.config.variant}")
    if not dynamic:
        return diff, ""
    samples = check_long.shape[1]
    try:
        long_diff = max_difference(session, model, check_long)
    except Exception as exc:  # noqa: BLE001 - onnxruntime rejects the shape the export specialised away
        return float("inf"), f"the traced graph rejects {samples} samples: {_first_line(exc)[:160]}"
    if long_diff > TOLERANCE:
        return float("inf"), f"at {samples} samples onnxruntime differs from PyTorch by {long_diff:.1e}"
    return max(diff, long_diff), ""
