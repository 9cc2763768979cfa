"""Batched chunk-level inference shared by evaluate, robustness and predict, and the bf16 decision."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch

from pipeline.audio.chunking import eval_chunks
from pipeline.core.choices import BF16_MODES as BF16_CHOICES
from pipeline.models.base import AudioModel
from pipeline.models.zoo import resolve_variant


@functools.cache
def cpu_bf16_support() -> str | None:
    """The CPU's native bf16 instructions, best first: ``"amx_bf16"``, ``"avx512_bf16"``, or None.

    How: PyTorch's own CPU capability probes (``torch.cpu._is_amx_tile_supported``,
    ``torch.cpu._is_avx512_bf16_supported``, which read CPUID), else the ``amx_bf16`` /
    ``avx512_bf16`` flags of Linux ``/proc/cpuinfo``; and oneDNN must be built in
    (``torch.backends.mkldnn.is_available()``), since it runs the bf16 convolutions and matmuls.
    A CPU without these runs bf16 autocast by emulation, usually slower than fp32.
    """
    if not torch.backends.mkldnn.is_available():
        return None
    probes = {"amx_bf16": "_is_amx_tile_supported", "avx512_bf16": "_is_avx512_bf16_supported"}
    try:
        found = {name for name, probe in probes.items() if getattr(torch.cpu, probe)()}
    except (AttributeError, RuntimeError):  # private probes: fall back to the kernel's flags
        cpuinfo = Path("/proc/cpuinfo")
        flags = set(cpuinfo.read_text(errors="replace").split()) if cpuinfo.exists() else set()
        found = set(probes) & flags
    return next((name for name in probes if name in found), None)


def use_bf16(choice: str | bool, device: torch.device, variant: str) -> bool:
    """Whether to run ``variant`` under bf16 autocast on ``device`` (``train.bf16``).

    Args:
        choice: ``"on"`` / ``"off"`` force it (``True`` / ``False`` mean the same); ``"auto"``:
            always on CUDA; on CPU only when the CPU has native bf16 (:func:`cpu_bf16_support`)
            *and* the variant was measured faster with it (``VariantSpec.cpu_bf16``,
            ``benchmarks/bf16.py``, docs/benchmarks.md).
        device: where the model runs (only ``cuda`` and ``cpu`` autocast).
        variant: the model's registry variant (``model.config.variant``, e.g. ``"mfcc+short_cnn"``).
    """
    if isinstance(choice, bool):
        choice = "on" if choice else "off"
    if choice not in BF16_CHOICES:
        raise ValueError(f"bf16 must be one of {BF16_CHOICES}, got {choice!r}")
    if choice != "auto" or device.type not in ("cuda", "cpu"):
        return choice == "on" and device.type in ("cuda", "cpu")
    if device.type == "cuda":
        return True

    try:
        _, spec = resolve_variant(variant)
    except ValueError:
        return False
    return spec.cpu_bf16 and cpu_bf16_support() is not None


def autocast_for(device: torch.device, bf16: bool = True):
    """bf16 autocast on ``device`` (CUDA or CPU) when ``bf16``, else nothing (fp32).

    ``bf16`` is the decision already taken (:func:`use_bf16`). Under autocast, convolutions,
    matmuls and RNN layers run in bf16; callers cast the logits back with ``.float()`` so
    losses, scores and metrics stay fp32, and weights are never converted.
    """
    if bf16 and device.type in ("cuda", "cpu"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


def with_autocast(fn: Callable[[torch.Tensor], torch.Tensor], device: torch.device, bf16: bool):
    """``fn`` run under :func:`autocast_for` ``(device, bf16)`` (``fn`` itself when ``bf16`` is off)."""
    if not bf16:
        return fn

    def run(x: torch.Tensor) -> torch.Tensor:
        with autocast_for(device, True):
            return fn(x)

    return run


def activate(logits: torch.Tensor, multilabel: bool) -> torch.Tensor:
    """Sigmoid for multi-label, softmax for single-label."""
    return torch.sigmoid(logits) if multilabel else torch.softmax(logits, dim=-1)


class PinnedStage:
    """Moves CPU batches to ``device``; on CUDA through one page-locked host buffer reused for every batch.

    On CUDA a batch is copied into the pinned buffer and sent with an asynchronous host-to-device
    copy; before the buffer is overwritten, the CPU waits for the event recorded after the previous
    copy, so a batch never changes under a copy in flight. The buffer grows to the largest batch.
    On other devices the batch goes as it is (no pinning).
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.pinned = device.type == "cuda"
        self.buffer: torch.Tensor | None = None
        self._copied: torch.cuda.Event | None = None

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        if not self.pinned:
            return batch.to(self.device)
        if self._copied is not None:
            self._copied.synchronize()  # the previous copy has left the buffer
        if self.buffer is None or self.buffer.dtype != batch.dtype or self.buffer.numel() < batch.numel():
            self.buffer = torch.empty(batch.numel(), dtype=batch.dtype, pin_memory=True)
        staged = self.buffer[: batch.numel()].view(batch.shape)
        staged.copy_(batch)
        out = staged.to(self.device, non_blocking=True)
        self._copied = torch.cuda.Event()
        self._copied.record()
        return out


class ChunkScores:
    """Runs batches of evaluation chunks and averages the activated chunk scores of each clip.

    Args:
        model: trained model (set to eval mode here).
        device: where it runs.
        bf16: ``train.bf16`` (``auto`` | ``on`` | ``off``, or the decision as a bool; :func:`use_bf16`).

    Scores stay on the device until :meth:`result` (one host copy per call); a clip's score is the
    mean of its chunks' scores, whatever batches its chunks fell into.
    """

    def __init__(self, model: AudioModel, device: torch.device, bf16: str | bool) -> None:
        model.eval()
        self.model, self.device = model, device
        self.multilabel = model.config.multilabel
        self.bf16 = use_bf16(bf16, device, model.config.variant)
        self.stage = PinnedStage(device)
        self.owners: list[np.ndarray] = []
        self.outputs: list[torch.Tensor] = []

    @torch.no_grad()
    def add(self, batch: torch.Tensor, owners: np.ndarray) -> None:
        """Score ``batch`` ``(chunks, samples)``; ``owners[i]`` is the clip of chunk ``i``."""
        with autocast_for(self.device, self.bf16):
            self.outputs.append(activate(self.model(self.stage(batch)).float(), self.multilabel))
        self.owners.append(np.asarray(owners, dtype=np.int64))

    def result(self, n_clips: int) -> np.ndarray:
        """``(n_clips, classes)`` float32 mean chunk scores (0 for a clip without chunks)."""
        owners = np.concatenate(self.owners) if self.owners else np.zeros(0, dtype=np.int64)
        sums = np.zeros((n_clips, self.model.config.n_classes), dtype=np.float64)
        if self.outputs:
            np.add.at(sums, owners, torch.cat(self.outputs).cpu().numpy())  # one host copy per call
        counts = np.bincount(owners, minlength=n_clips)
        return (sums / np.maximum(1, counts)[:, None]).astype(np.float32)


def predict_clips(
    model: AudioModel,
    waves: Iterable[np.ndarray],
    *,
    n_chunks: int,
    batch_size: int = 32,
    device: torch.device | None = None,
    bf16: str | bool = "auto",
    input_length: int | None = None,
) -> np.ndarray:
    """Score whole clips with the evaluation protocol.

    Each clip is cut into ``n_chunks`` chunks of the model's input length (docs/spec.md §1.2), the
    chunks (of several clips) run in batches of ``batch_size``, and the activated chunk scores are
    averaged. Stored clips are scored faster, with the chunks cut in DataLoader workers, by
    :class:`pipeline.models.stored_scoring.StoredClips` (the same batches, the same scores).

    Args:
        model: trained model (set to eval mode here).
        waves: 1-D float32 arrays at 16 kHz.
        n_chunks: chunks per clip.
        batch_size: chunks per forward pass.
        device: where to run (default: the model's device).
        bf16: ``train.bf16``: ``auto`` | ``on`` | ``off`` (:func:`use_bf16` decides per device and variant).
        input_length: chunk length in samples (default ``model.input_length``).

    Returns:
        ``(clips, classes)`` float32 scores.
    """
    device = device or next(model.parameters()).device
    length = input_length or model.input_length
    scores = ChunkScores(model, device, bf16)
    owners: list[int] = []
    pending: list[np.ndarray] = []
    n_clips = 0

    def flush() -> None:
        if pending:
            scores.add(torch.from_numpy(np.stack(pending)), np.asarray(owners[-len(pending) :]))
            pending.clear()

    for i, wave in enumerate(waves):
        n_clips = i + 1
        for chunk in eval_chunks(np.asarray(wave, dtype=np.float32), length, n_chunks):
            pending.append(chunk)
            owners.append(i)
            if len(pending) >= batch_size:
                flush()
    flush()
    return scores.result(n_clips)


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
