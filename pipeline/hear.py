"""The HEAR 2021 API for musicrep models: ``import pipeline.hear as hear``.

HEAR (Holistic Evaluation of Audio Representations, hearbenchmark.com) evaluates an audio
representation through three functions and three attributes; this module provides them for any
packaged musicrep model, so HEAR's kits (``hear-eval-kit``, ``hearvalidator``) can use it::

    model = hear.load_model("models/synth_keywords/fcn/seed0")   # or a pretrained name
    scene = hear.get_scene_embeddings(audio, model)               # (n_sounds, scene_embedding_size)
    emb, ts = hear.get_timestamp_embeddings(audio, model)         # (n_sounds, n_timestamps, size), (n_sounds, n_timestamps) ms

``audio`` is a float32 tensor ``(n_sounds, n_samples)`` at ``model.sample_rate`` (16,000 Hz),
of any length (shorter than one model input too), on any device; the outputs are float32 on the
input's device.

What the embeddings are (the embedding is :meth:`AudioModel.embed`, the pooled back-end feature
before the classifier, size ``backend.embedding_dim``):

- **timestamp embeddings**: one per timestamp ``t_k = k * hop`` (``hop`` = :data:`HOP_MS`
  = 50 ms, HEAR's suggested maximum, ``k = 0 .. floor(duration / hop)``), each the embedding of
  one model input (``input_length`` samples) *centred* on ``t_k``, the audio zero-padded by half
  an input on both sides. Timestamps come from whole sample positions (``hop`` is a whole number
  of samples at 16 kHz), so they do not drift on long audio.
- **scene embeddings**: the mean of the embeddings of consecutive model inputs tiling the sound
  (hop = one input; an uncovered tail gets one end-aligned input; a sound shorter than one input
  is centre-padded): the chunk pooling of ``musicrep embed``.

``load_model`` takes a packaged model folder (or its ``model.json``/``model.pt``), a short name
``TASK/MODEL[/seedK]`` under ``./models``, a registry URI ``models:/NAME/VERSION``, or a
published reference tagger ``sota:<dataset>/<model>``, or another *pretrained name* ``PREFIX:NAME`` handled by a loader registered with
:func:`register_pretrained` (the seam through which pretrained models, e.g. ``sota:...``, plug
in: a loader returns a :class:`HearModel`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from pipeline.core.errors import UserError
from pipeline.inference.predict import resolve_model_dir
from pipeline.models.checkpoint import load_model as load_packaged
from pipeline.models.pretrained_catalog import is_pretrained_name

HOP_MS = 50.0
"""Spacing of the timestamp embeddings in milliseconds (HEAR suggests at most 50 ms)."""
BATCH_SIZE = 32
"""Model inputs per forward pass."""

_PRETRAINED: dict[str, Callable[[str], HearModel]] = {}


class HearModel(nn.Module):
    """A frozen embedding network with the HEAR attributes.

    Args:
        network: module with ``embed(wave (batch, input_length)) -> (batch, embedding_size)``
            (an :class:`~pipeline.models.base.AudioModel`, or a pretrained network's wrapper).
        sample_rate: Hz of the audio ``network`` takes.
        input_length: samples per model input.
        embedding_size: width of ``network.embed``'s output.
        name: what the model is (shown in logs and ``repr``).
        hop_ms: spacing of the timestamp embeddings (default :data:`HOP_MS`).

    Attributes:
        sample_rate, scene_embedding_size, timestamp_embedding_size: ints, as HEAR requires.
    """

    def __init__(
        self, network: nn.Module, sample_rate: int, input_length: int, embedding_size: int, name: str = "", hop_ms: float = HOP_MS
    ) -> None:
        super().__init__()
        self.network = network.eval()
        self.sample_rate = int(sample_rate)
        self.input_length = int(input_length)
        self.scene_embedding_size = int(embedding_size)
        self.timestamp_embedding_size = int(embedding_size)
        self.name = name
        self.hop_samples = max(1, round(hop_ms * self.sample_rate / 1000))

    @classmethod
    def from_packaged(cls, directory: str | Path, hop_ms: float = HOP_MS) -> HearModel:
        """Load a packaged musicrep model (checksum and format checked) as a :class:`HearModel`."""

        model, card = load_packaged(directory)
        meta = card.get("metadata", {})
        name = f"{meta.get('task', '?')}/{meta.get('model_name', model.config.variant)}"
        return cls(model, model.config.sample_rate, model.input_length, model.backend.embedding_dim, name, hop_ms)

    def extra_repr(self) -> str:
        return f"name={self.name!r}, sample_rate={self.sample_rate}, input_length={self.input_length}, size={self.scene_embedding_size}"

    @torch.no_grad()
    def embed_windows(self, windows: torch.Tensor) -> torch.Tensor:
        """``(n, input_length)`` -> ``(n, embedding_size)`` float32, in batches of :data:`BATCH_SIZE`."""
        device = next(self.network.parameters()).device
        outputs = [self.network.embed(windows[i : i + BATCH_SIZE].to(device)).float() for i in range(0, len(windows), BATCH_SIZE)]
        if not outputs:
            return torch.zeros(0, self.scene_embedding_size, device=windows.device)
        return torch.cat(outputs).to(windows.device)


def register_pretrained(prefix: str, loader: Callable[[str], HearModel]) -> None:
    """Let ``load_model("PREFIX:NAME")`` call ``loader("NAME")`` (e.g. ``register_pretrained("sota", ...)``)."""
    _PRETRAINED[prefix] = loader


def load_model(model_file_path: str = "") -> HearModel:
    """HEAR's ``load_model``: a packaged model, a ``TASK/MODEL`` short name, a registry URI or ``PREFIX:NAME``.

    Raises:
        UserError: nothing matches (the message says what is accepted).
    """
    spec = str(model_file_path or "").strip()
    if not spec:
        raise UserError(
            "load_model needs a model: a packaged model folder, TASK/MODEL under models/, or a pretrained PREFIX:NAME."
        )
    prefix, sep, name = spec.partition(":")
    if sep and prefix in _PRETRAINED:
        return _PRETRAINED[prefix](name)
    if is_pretrained_name(spec):  # a published reference tagger, fetched when absent
        return HearModel.from_packaged(resolve_model_dir(spec, Path.cwd()))
    if sep and prefix != "models" and not Path(spec).exists():
        known = ", ".join(f"{p}:" for p in ["sota", *sorted(_PRETRAINED)])
        raise UserError(
            f"no pretrained loader for {prefix!r} in {spec!r} (known prefixes: {known}); pass a packaged model folder instead."
        )
    path = Path(spec)
    if path.is_file() and path.name in ("model.json", "model.pt"):
        path = path.parent
    return HearModel.from_packaged(resolve_model_dir(str(path), Path.cwd()))


def _as_batch(audio: torch.Tensor, model: HearModel) -> torch.Tensor:
    if not isinstance(audio, torch.Tensor) or audio.ndim != 2:
        raise UserError(
            f"audio must be a tensor (n_sounds, n_samples) at {model.sample_rate} Hz, got {getattr(audio, 'shape', type(audio))}."
        )
    return audio.float()


def get_timestamp_embeddings(audio: torch.Tensor, model: HearModel) -> tuple[torch.Tensor, torch.Tensor]:
    """``(n_sounds, n_samples)`` -> ``(embeddings (n_sounds, n_timestamps, size), timestamps (n_sounds, n_timestamps) ms)``.

    Timestamp ``k`` is at ``k * hop`` ms (``k = 0 .. floor(n_samples / hop)``); its embedding is
    that of one model input centred there (module docstring).
    """
    audio = _as_batch(audio, model)
    n_sounds, n = audio.shape
    length, hop = model.input_length, model.hop_samples
    n_stamps = n // hop + 1
    left, span = length // 2, (n_stamps - 1) * hop + length  # window k covers [k hop - left, k hop - left + length)
    padded = nn.functional.pad(audio, (left, max(0, span - left - n)))[:, :span]
    windows = padded.unfold(1, length, hop)  # (n_sounds, n_stamps, length)
    emb = model.embed_windows(windows.reshape(-1, length)).reshape(n_sounds, n_stamps, -1)
    stamps = torch.arange(n_stamps, device=audio.device, dtype=torch.float64) * (hop * 1000.0 / model.sample_rate)
    return emb, stamps.float().expand(n_sounds, n_stamps).contiguous()


def tile_starts(n: int, length: int) -> list[int]:
    """Starts of the inputs tiling ``n`` samples: hop = ``length``, plus an end-aligned one for an uncovered tail."""
    if n <= length:
        return [0]
    starts = list(range(0, n - length + 1, length))
    if starts[-1] + length < n:
        starts.append(n - length)
    return starts


def get_scene_embeddings(audio: torch.Tensor, model: HearModel) -> torch.Tensor:
    """``(n_sounds, n_samples)`` -> ``(n_sounds, scene_embedding_size)``: the mean of the tiling inputs' embeddings."""
    audio = _as_batch(audio, model)
    length = model.input_length
    n = audio.shape[1]
    if n < length:
        left = (length - n) // 2
        audio, n = nn.functional.pad(audio, (left, length - n - left)), length
    starts = tile_starts(n, length)
    windows = torch.stack([audio[:, s : s + length] for s in starts], 1)  # (n_sounds, n_windows, length)
    emb = model.embed_windows(windows.reshape(-1, length)).reshape(audio.shape[0], len(starts), -1)
    return emb.mean(1)
