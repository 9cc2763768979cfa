"""Batched chunk-level inference shared by evaluate, robustness and predict."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import nullcontext

import numpy as np
import torch

from pipeline.chunking import eval_chunks
from pipeline.models.base import AudioModel


def pick_device(requested: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU."""
    if requested == "cuda" or (requested == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def autocast_for(device: torch.device, bf16: bool = True):
    """bf16 autocast on CUDA, nothing on CPU."""
    if device.type == "cuda" and bf16:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def activate(logits: torch.Tensor, multilabel: bool) -> torch.Tensor:
    """Sigmoid for multi-label, softmax for single-label."""
    return torch.sigmoid(logits) if multilabel else torch.softmax(logits, dim=-1)


@torch.no_grad()
def predict_clips(
    model: AudioModel,
    waves: Iterable[np.ndarray],
    *,
    n_chunks: int,
    batch_size: int = 32,
    device: torch.device | None = None,
    bf16: bool = True,
    input_length: int | None = None,
) -> np.ndarray:
    """Score whole clips with the evaluation protocol.

    Each clip is cut into ``n_chunks`` chunks of the model's input length (docs/spec.md §1.2), the
    chunks run in batches of ``batch_size``, and the activated chunk scores are averaged.

    Args:
        model: trained model (set to eval mode here).
        waves: 1-D float32 arrays at 16 kHz.
        n_chunks: chunks per clip.
        batch_size: chunks per forward pass.
        device: where to run (default: the model's device).
        bf16: use bf16 autocast on CUDA.
        input_length: chunk length in samples (default ``model.input_length``).

    Returns:
        ``(clips, classes)`` float32 scores.
    """
    model.eval()
    device = device or next(model.parameters()).device
    length = input_length or model.input_length
    multilabel = model.config.multilabel
    non_blocking = device.type == "cuda"
    owners: list[int] = []
    pending: list[np.ndarray] = []
    outputs: list[torch.Tensor] = []  # activated chunk scores, kept on the device until the end
    n_clips = 0

    def flush() -> None:
        if not pending:
            return
        batch = torch.from_numpy(np.stack(pending))
        if non_blocking:
            batch = batch.pin_memory()
        with autocast_for(device, bf16):
            outputs.append(activate(model(batch.to(device, non_blocking=non_blocking)).float(), multilabel))
        pending.clear()

    for i, wave in enumerate(waves):
        n_clips = i + 1
        for chunk in eval_chunks(np.asarray(wave, dtype=np.float32), length, n_chunks):
            pending.append(chunk)
            owners.append(i)
            if len(pending) >= batch_size:
                flush()
    flush()
    sums = np.zeros((n_clips, model.config.n_classes), dtype=np.float64)
    if outputs:
        np.add.at(sums, np.asarray(owners), torch.cat(outputs).cpu().numpy())  # one host copy per call
    counts = np.bincount(np.asarray(owners, dtype=np.int64), minlength=n_clips)
    return (sums / np.maximum(1, counts)[:, None]).astype(np.float32)


def label_matrix(labels: Sequence[Sequence[str]], vocabulary: Sequence[str], multilabel: bool) -> np.ndarray:
    """Multi-hot ``(clips, classes)`` for multi-label, class indices ``(clips,)`` otherwise."""
    index = {name: i for i, name in enumerate(vocabulary)}
    if multilabel:
        y = np.zeros((len(labels), len(vocabulary)), dtype=np.int64)
        for r, names in enumerate(labels):
            for name in names:
                if name in index:
                    y[r, index[name]] = 1
        return y
    return np.array([index[names[0]] for names in labels], dtype=np.int64)
