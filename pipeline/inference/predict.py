"""Use trained models on your own audio: ``musicrep predict`` and ``musicrep embed``.

Both commands take files or folders (searched recursively for
:data:`~pipeline.audio.io.AUDIO_EXTENSIONS`) of any format, sample rate, channel count
and length, and a model given as

- a packaged model directory (``models/<task>/<model>/seed<k>``, anything holding
  ``model.json`` and ``model.pt``; a folder of ``seed<k>`` folders uses the lowest seed),
- a short name ``<task>/<model>`` resolved under ``models/``, or
- an MLflow registry URI ``models:/<name>/<version>`` (also ``models:/<name>/latest`` and
  ``models:/<name>@<alias>``), downloaded to a local cache first (:mod:`pipeline.tracking.registry`).
- a published reference tagger ``sota:<dataset>/<model>`` (``sota:mtat/fcn``...), fetched and
  packaged on first use (:mod:`pipeline.models.pretrained`). Files longer than its input get the
  song-level protocol below: input-length chunks, scores averaged.

Every model is loaded through :func:`pipeline.models.checkpoint.load_model` (checksum, then
``weights_only`` loading, then format check), so a modified checkpoint is refused.

Audio is **streamed** (:mod:`pipeline.audio.stream`): a file is decoded block by block,
resampled to the model's rate exactly as ``segment`` resamples training data, and cut into
chunks of the model's input length (hop = chunk by default; the uncovered end of the file
gets one end-aligned chunk; files shorter than a chunk are centre-padded, as in
evaluation). At no point is the whole file held in memory, so hour-long recordings work.

Chunks are **batched across files** (:func:`iter_outputs`): the chunks of consecutive files
fill one batch of ``--batch-size`` chunks per forward pass, so a folder of one-second clips
runs at the speed of ``evaluate``. Only the current batch, the batch in flight and the
per-file sums of the files they touch are held; each file's result is handed on, in input
order, as soon as all its chunks are scored (``--json`` and ``--csv`` are written as they
come).

A file's scores are the chunk scores (sigmoid for multi-label models, softmax for
single-label ones) aggregated by ``mean`` (default, the evaluation protocol) or ``max``;
its embedding is the mean of the chunk embeddings (``model.embed``: the pooled back-end
feature before the classifier).

Unreadable files are reported one line each and skipped; the command succeeds (exit 0) when
at least one input worked and fails with exit status 2 when none did.
"""

from __future__ import annotations

import difflib
import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from pipeline.audio.io import AudioError
from pipeline.audio.stream import Chunk, ChunkStream, ErrorHandler, _log_error, _short, collect_inputs, stream_audio  # noqa: F401 - re-exported: pipeline.inference.predict's public names
from pipeline.config.project import Project
from pipeline.core.choices import AGGREGATES, BATCH_SIZE, LAYERS
from pipeline.core.errors import UserError
from pipeline.core.progress import track
from pipeline.data.registry import data_origin
from pipeline.models.checkpoint import load_model
from pipeline.models.inference import BF16_CHOICES, activate, with_autocast
from pipeline.models.pretrained import ensure, is_fetched, is_pretrained_name
from pipeline.models.pretrained_catalog import CATALOG, PREFIX
from pipeline.models.runtime import Runtime
from pipeline.tracking.registry import resolve_model_uri

if TYPE_CHECKING:
    import torch

    from pipeline.models.base import AudioModel

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- model
def resolve_model_dir(spec: str, root: str | Path = ".", mirror: str | None = None) -> Path:
    """Turn a ``--model`` value into a local packaged-model directory.

    Args:
        spec: a directory holding ``model.json`` (or ``seed<k>/model.json`` folders: the
            lowest seed is used); ``<task>/<model>`` or ``<task>/<model>/seed<k>`` (looked up
            under ``<root>/models/``); ``models:/<name>/<version>`` (MLflow registry); or
            ``sota:<dataset>/<model>`` (a published reference model, fetched when absent).
        root: project root for short names (default: the current directory).
        mirror: where a ``sota:`` model not yet fetched comes from; default the project's
            ``pretrained.mirror``, else ``$MUSICREP_PRETRAINED_MIRROR`` (:func:`pipeline.config.project.pretrained_mirror`).

    Raises:
        UserError: nothing matches; the message lists the trained models found.
    """
    spec = str(spec).strip()
    if spec.startswith("models:/"):
        return resolve_model_uri(spec, Path(root))

    if is_pretrained_name(spec):
        if not is_fetched(spec):  # fetched from --mirror, else the project's pretrained.mirror, else the environment's
            mirror = Project(Path(root)).pretrained_mirror(mirror)
        return ensure(spec, mirror=mirror)
    for path in (Path(spec).expanduser(), Path(root) / "models" / spec):
        if (path / "model.json").exists():
            return path
        seeds = sorted(
            (p.parent for p in path.glob("seed*/model.json")),
            key=lambda d: int(d.name[4:] or 0) if d.name[4:].isdigit() else 1 << 40,
        )
        if seeds:
            return seeds[0]
    found = sorted(str(p.parent.relative_to(Path(root) / "models")) for p in (Path(root) / "models").glob("*/*/*/model.json"))
    close = difflib.get_close_matches(spec, [*found, *CATALOG, *(n.removeprefix(PREFIX) for n in CATALOG)], n=1, cutoff=0.75)
    if close:
        guess = PREFIX + close[0] if PREFIX + close[0] in CATALOG else close[0]
        raise UserError(f"--model {spec!r} is not a packaged model, trained TASK/MODEL or registry URI; did you mean {guess!r}?")
    hint = (
        f" Trained models here: {', '.join(found[:8])}{' ...' if len(found) > 8 else ''}."
        if found
        else " No trained models under models/ here; run `musicrep train TASK MODEL` or `dvc repro` first."
    )
    raise UserError(
        f"--model {spec!r} is not a packaged model directory (with model.json), a trained TASK/MODEL "
        f"under models/, or a registry URI models:/NAME/VERSION.{hint}"
    )


def load_for_inference(spec: str, runtime: Runtime, root: str | Path = ".") -> tuple[AudioModel, dict[str, Any], Path]:
    """Resolve, verify and load a model for inference on ``runtime.device``.

    Returns:
        ``(model in eval mode on the device, card, model directory)``.
    """

    model_dir = resolve_model_dir(spec, root)
    model, card = load_model(model_dir, map_location="cpu")
    model.to(runtime.device).eval()
    return model, card, model_dir


def _autocast(net: AudioModel, fn: Callable[[Any], Any], runtime: Runtime) -> Callable[[Any], Any]:
    """``fn`` under bf16 autocast when ``runtime`` says so for ``net`` (:meth:`Runtime.bf16_for`)."""

    if runtime.bf16 not in BF16_CHOICES:
        raise UserError(f"--bf16 must be one of {', '.join(BF16_CHOICES)}, got {runtime.bf16!r}.")
    return with_autocast(fn, runtime.device, runtime.bf16_for(net.config.variant))


# ----------------------------------------------------------------------------- core
@dataclass
class FileOutput:
    """What one file produced: aggregated ``vector``, and per-chunk rows when kept."""

    path: str
    duration_s: float
    n_chunks: int
    vector: np.ndarray
    chunks: list[tuple[int, float, float, np.ndarray]] = field(default_factory=list)


def _chunk_length(model: AudioModel, chunk_seconds: float | None, hop_seconds: float | None) -> tuple[int, int]:
    sr = model.config.sample_rate
    if chunk_seconds is not None and not chunk_seconds > 0:
        raise UserError(f"--chunk-seconds must be > 0, got {chunk_seconds}.")
    if hop_seconds is not None and not hop_seconds > 0:
        raise UserError(f"--hop-seconds must be > 0, got {hop_seconds}.")
    chunk = model.input_length if chunk_seconds is None else max(1, int(round(chunk_seconds * sr)))
    hop = chunk if hop_seconds is None else max(1, int(round(hop_seconds * sr)))
    if chunk != model.input_length:  # check the model accepts it before touching any file
        try:
            with torch.no_grad():
                model(torch.zeros(1, chunk, device=next(model.parameters()).device))
        except Exception as exc:  # noqa: BLE001 - shape errors differ per architecture
            raise UserError(
                f"this {model.config.variant} model cannot take {chunk / sr:g}-s chunks ({_short(exc)}); "
                f"use its default of {model.input_length / sr:g} s or a longer --chunk-seconds."
            ) from exc
    return chunk, hop


@dataclass(eq=False)
class _FileState:
    """A file whose result is not handed on yet: its running aggregate and chunks in flight."""

    path: Path
    total: np.ndarray | None = None
    count: int = 0
    outstanding: int = 0  # chunks queued or in flight
    decoded: bool = False  # its stream is exhausted
    failed: bool = False
    n_samples: int = 0
    rows: list[tuple[int, float, float, np.ndarray]] = field(default_factory=list)


class _Batcher:
    """Run chunks of many files through ``fn`` in batches of ``batch_size``.

    On CUDA the input goes through pinned memory with a non-blocking copy, and the output
    comes back the same way; a batch's result is read one batch later, so the host cuts
    the next batch while the device computes (at most two batches in flight). On CPU each
    batch is read at once.
    """

    def __init__(
        self,
        fn: Callable[[torch.Tensor], torch.Tensor],
        device: torch.device,
        batch_size: int,
        aggregate: str,
        keep_chunks: bool,
        on_error: ErrorHandler,
    ) -> None:
        self.fn, self.device, self.batch_size = fn, device, max(1, int(batch_size))
        self.on_error = on_error
        self.mean, self.keep_chunks = aggregate == "mean", keep_chunks
        self.cuda = device.type == "cuda"
        self.queue: list[tuple[_FileState, Chunk]] = []
        self.inflight: deque[tuple[list[tuple[_FileState, Chunk]], Any, Any]] = deque()

    def add(self, state: _FileState, chunk: Chunk) -> None:
        self.queue.append((state, chunk))
        state.outstanding += 1
        if len(self.queue) >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        if not self.queue:
            return
        items, self.queue = self.queue, []
        try:
            self._launch(items)
        except MemoryError:  # every file with a chunk in this batch is reported, the run goes on
            for state in dict.fromkeys(s for s, _ in items):
                state.outstanding -= sum(1 for s, _ in items if s is state)
                if not state.failed:
                    state.failed = True
                    self.on_error(str(state.path), "out of memory")

    def _launch(self, items: list[tuple[_FileState, Chunk]]) -> None:
        x = torch.from_numpy(np.stack([c.samples for _, c in items]))
        with torch.inference_mode():
            if self.cuda:
                try:
                    self._launch_cuda(items, x)
                except torch.OutOfMemoryError as exc:
                    raise MemoryError from exc
            else:
                self.inflight.append((items, self.fn(x.to(self.device)).float(), None))
                self._finish()

    def _launch_cuda(self, items: list[tuple[_FileState, Chunk]], x: torch.Tensor) -> None:
        out = self.fn(x.pin_memory().to(self.device, non_blocking=True)).float()
        host = torch.empty(out.shape, dtype=torch.float32, pin_memory=True)
        host.copy_(out, non_blocking=True)
        event = torch.cuda.Event()
        event.record()
        self.inflight.append((items, host, event))
        if len(self.inflight) > 1:
            self._finish()

    def drain(self) -> None:
        self.flush()
        while self.inflight:
            self._finish()

    def _finish(self) -> None:
        items, host, event = self.inflight.popleft()
        if event is not None:
            event.synchronize()
        out = host.numpy()
        i = 0
        while i < len(items):  # one file's chunks are consecutive in a batch
            state = items[i][0]
            j = i + 1
            while j < len(items) and items[j][0] is state:
                j += 1
            if not state.failed:
                part = out[i:j]
                if self.mean:
                    s = part.sum(0, dtype=np.float64)
                    state.total = s if state.total is None else state.total + s
                else:
                    s = part.max(0).astype(np.float64)
                    state.total = s if state.total is None else np.maximum(state.total, s)
                state.count += j - i
                if self.keep_chunks:
                    state.rows.extend((c.index, c.start_s, c.end_s, o.astype(np.float32)) for (_, c), o in zip(items[i:j], part))
            state.outstanding -= j - i
            i = j


def iter_outputs(
    model: AudioModel,
    files: Sequence[Path],
    fn: Callable[[torch.Tensor], torch.Tensor],
    *,
    chunk: int,
    hop: int,
    aggregate: str = "mean",
    keep_chunks: bool = False,
    batch_size: int = BATCH_SIZE,
    on_error: ErrorHandler | None = None,
    block_seconds: float = 10.0,
) -> Iterator[FileOutput]:
    """Apply ``fn`` (a batch of chunks ``(batch, chunk)`` -> ``(batch, dim)``) to every file.

    Files are decoded one after the other and their chunks fill shared batches of
    ``batch_size`` (a batch may hold the end of one file and the start of the next); the
    chunk outputs are aggregated (``mean`` or ``max``) into one vector per file. Results
    are yielded in the order of ``files``, each as soon as all its chunks are scored. A
    file that fails to decode (at open or mid-stream) is passed to ``on_error`` and left
    out; its chunks already queued are discarded.

    Memory: one batch being cut, at most one in flight, and the running sums (plus the
    per-chunk rows when ``keep_chunks``) of the files those batches touch.
    """

    if aggregate not in AGGREGATES:
        raise UserError(f"--aggregate must be one of {', '.join(AGGREGATES)}, got {aggregate!r}.")
    report = on_error or _log_error
    model.eval()
    batcher = _Batcher(fn, next(model.parameters()).device, batch_size, aggregate, keep_chunks, report)
    waiting: deque[_FileState] = deque()  # files not handed on yet, in input order
    sr = model.config.sample_rate

    def ready() -> Iterator[FileOutput]:
        while waiting and (waiting[0].failed or (waiting[0].decoded and not waiting[0].outstanding)):
            state = waiting.popleft()
            if state.failed:
                continue
            vector = state.total / state.count if aggregate == "mean" else state.total
            yield FileOutput(str(state.path), state.n_samples / sr, state.count, np.asarray(vector, dtype=np.float32), state.rows)

    for path in track(files, total=len(files), description="audio files"):
        state = _FileState(Path(path))
        waiting.append(state)
        stream = ChunkStream(state.path, sr, chunk, hop, block_seconds)
        try:
            for c in stream:
                batcher.add(state, c)
        except (AudioError, MemoryError) as exc:
            if not state.failed:
                state.failed = True
                report(str(path), str(exc) if isinstance(exc, AudioError) else "out of memory")
        else:
            state.decoded, state.n_samples = True, stream.n_samples
        yield from ready()
    batcher.drain()
    yield from ready()


# ----------------------------------------------------------------------------- predict
@dataclass
class Predictions:
    """Result of :func:`predict`: one record per readable file, plus the failures."""

    records: list[dict[str, Any]]
    failures: list[dict[str, str]]
    labels: list[str]
    model_dir: Path
    multilabel: bool
    model: str = ""  # the --model value as given


def predict(
    paths: Iterable[str | Path],
    model: str,
    *,
    chunk_seconds: float | None = None,
    hop_seconds: float | None = None,
    aggregate: str = "mean",
    top_k: int = 5,
    batch_size: int = BATCH_SIZE,
    device: str = "auto",
    bf16: str = "off",
    root: str | Path = ".",
    on_error: ErrorHandler | None = None,
    on_record: Callable[[dict[str, Any]], None] | None = None,
) -> Predictions:
    """Score audio files with a trained model.

    Args:
        paths: files and/or folders.
        model: packaged model directory, ``task/model`` or ``models:/name/version``.
        chunk_seconds: chunk length (default: the model's input length).
        hop_seconds: hop between chunks (default: the chunk length).
        aggregate: ``mean`` or ``max`` of the chunk scores.
        top_k: labels listed per file, best first.
        batch_size: chunks per forward pass (chunks of several files share a batch).
        device: ``auto`` | ``cpu`` | ``cuda``.
        bf16: ``off`` (default, as the CLI's ``--bf16``: fp32 scores) | ``auto`` | ``on``: bf16 autocast,
            as ``train.bf16`` (:func:`pipeline.models.inference.use_bf16`); scores are returned in fp32.
        root: project root for ``task/model`` names.
        on_error: called with ``(path, reason)`` for every unusable input (default: log).
        on_record: called with each record as soon as it is ready, in input order (for
            writers that stream).

    Returns:
        :class:`Predictions`; each record is ``{"path", "duration_s", "n_chunks", "top":
        [{"label", "score"}...], "scores": {label: score}}``.
    """

    failures: list[dict[str, str]] = []

    def fail(path: str, reason: str) -> None:
        failures.append({"path": path, "error": reason})
        (on_error or _log_error)(path, reason)

    if top_k < 1:
        raise UserError(f"--top-k must be >= 1, got {top_k}.")
    if aggregate not in AGGREGATES:
        raise UserError(f"--aggregate must be one of {', '.join(AGGREGATES)}, got {aggregate!r}.")
    runtime = Runtime.resolve(device, bf16)
    net, card, model_dir = load_for_inference(model, runtime, root)
    labels = list(card["labels"])
    multilabel = bool(net.config.multilabel)
    chunk, hop = _chunk_length(net, chunk_seconds, hop_seconds)
    origin = model_origin(card)
    if note := synthetic_note(card, str(model)):
        log.warning(note)
    files = collect_inputs(paths, fail)
    records = []
    forward = _autocast(net, net, runtime)
    for out in iter_outputs(
        net,
        files,
        lambda x: activate(forward(x).float(), multilabel),
        chunk=chunk,
        hop=hop,
        aggregate=aggregate,
        batch_size=batch_size,
        on_error=fail,
    ):
        order = np.argsort(-out.vector, kind="stable")[:top_k]
        record = {
            "path": out.path,
            "duration_s": round(out.duration_s, 4),
            "n_chunks": out.n_chunks,
            "top": [{"label": labels[i], "score": float(out.vector[i])} for i in order],
            "scores": {name: float(v) for name, v in zip(labels, out.vector)},
            "model_origin": origin,
        }
        records.append(record)
        if on_record is not None:
            on_record(record)
    return Predictions(records, failures, labels, model_dir, multilabel, str(model))


def model_origin(card: dict[str, Any]) -> dict[str, Any]:
    """Where a model comes from, for ``--json`` output: published weights (source, repository, commit,
    sha256) or the training cell (task, model, seed) and whether its dataset is embedded synthetic data."""
    meta = card.get("metadata", {})
    published = meta.get("pretrained")
    if published:
        keys = ("name", "source_url", "repository", "commit", "license", "sha256")
        return {"kind": "published", **{k: published.get(k) for k in keys}}
    task = meta.get("task")
    return {
        "kind": "trained",
        "task": task,
        "model": meta.get("model_name"),
        "seed": meta.get("seed"),
        "synthetic": _synthetic(task),
    }


def _synthetic(task: str | None) -> bool:
    """Whether ``task`` is an embedded dataset that is not recordings (generated or rendered)."""
    return bool(task) and data_origin(str(task)) != "real"


def synthetic_note(card: dict[str, Any], model: str) -> str | None:
    """The one line ``predict`` and ``embed`` print for a model trained on an embedded synthetic dataset."""
    origin = model_origin(card)
    if not origin.get("synthetic"):
        return None
    return (
        f"note: {model} was trained on {origin['task']}, an embedded synthetic dataset: its labels and scores "
        "say little about real recordings."
    )


# ----------------------------------------------------------------------------- embed
@dataclass
class Embeddings:
    """Result of :func:`embed`: rows (file rows have ``chunk == -1``) and a ``(rows, dim)`` matrix."""

    index: Any  # DataFrame: file, chunk, start_s, end_s
    matrix: np.ndarray
    failures: list[dict[str, str]]
    model_dir: Path
    layer: str


def embed(
    paths: Iterable[str | Path],
    model: str,
    *,
    per_chunk: bool = False,
    layer: str = "pooled",
    chunk_seconds: float | None = None,
    hop_seconds: float | None = None,
    batch_size: int = BATCH_SIZE,
    device: str = "auto",
    bf16: str = "off",
    root: str | Path = ".",
    on_error: ErrorHandler | None = None,
) -> Embeddings:
    """One embedding per file (mean of the chunk embeddings), optionally one per chunk too.

    Args:
        layer: ``pooled`` (``model.embed``: the back-end's pooled feature before the
            classifier, default) or ``logits`` (the classifier's pre-activation outputs).
        per_chunk: also keep every chunk's embedding (rows with ``chunk >= 0``).
        (others as :func:`predict`)

    Returns:
        :class:`Embeddings` with index columns ``file, chunk, start_s, end_s``.
    """

    failures: list[dict[str, str]] = []

    def fail(path: str, reason: str) -> None:
        failures.append({"path": path, "error": reason})
        (on_error or _log_error)(path, reason)

    if layer not in LAYERS:
        raise UserError(f"--layer must be one of {', '.join(LAYERS)}, got {layer!r}.")
    runtime = Runtime.resolve(device, bf16)
    net, card, model_dir = load_for_inference(model, runtime, root)
    if note := synthetic_note(card, str(model)):
        log.warning(note)
    chunk, hop = _chunk_length(net, chunk_seconds, hop_seconds)
    files = collect_inputs(paths, fail)
    fn = _autocast(net, net.embed if layer == "pooled" else net, runtime)
    outputs = iter_outputs(
        net, files, fn, chunk=chunk, hop=hop, aggregate="mean", keep_chunks=per_chunk, batch_size=batch_size, on_error=fail
    )
    index, vectors = [], []
    for out in outputs:
        index.append({"file": out.path, "chunk": -1, "start_s": 0.0, "end_s": out.duration_s})
        vectors.append(out.vector)
        for i, s, e, v in out.chunks:
            index.append({"file": out.path, "chunk": i, "start_s": s, "end_s": e})
            vectors.append(v)
    dim = int(vectors[0].shape[0]) if vectors else 0
    frame = pd.DataFrame(index, columns=["file", "chunk", "start_s", "end_s"]).astype(
        {"file": str, "chunk": "int32", "start_s": "float64", "end_s": "float64"}
    )
    matrix = np.stack(vectors).astype(np.float32) if vectors else np.zeros((0, dim), dtype=np.float32)
    return Embeddings(frame, matrix, failures, model_dir, layer)
