"""Use trained models on your own audio: ``musicrep predict`` and ``musicrep embed``.

Both commands take files or folders (searched recursively for
:data:`~pipeline.data.audio.AUDIO_EXTENSIONS`) of any format, sample rate, channel count
and length, and a model given as

- a packaged model directory (``models/<task>/<model>``, anything holding ``model.json``
  and ``model.pt``),
- a short name ``<task>/<model>`` resolved under ``models/``, or
- an MLflow registry URI ``models:/<name>/<version>`` (also ``models:/<name>/latest`` and
  ``models:/<name>@<alias>``), downloaded to a local cache first (:mod:`pipeline.registry`).

Every model is loaded through :func:`pipeline.checkpoint.load_model` (checksum, then
``weights_only`` loading, then format check), so a modified checkpoint is refused.

Audio is **streamed**: a file is decoded block by block with :class:`soundfile.SoundFile`,
each block resampled to the model's rate with a context margin so that the result equals
resampling the whole file at once (:func:`stream_audio`), then cut into chunks of the
model's input length (hop = chunk by default; the uncovered end of the file gets one
end-aligned chunk; files shorter than a chunk are centre-padded, as in evaluation). At no
point is the whole file held in memory, so hour-long recordings work.

A file's scores are the chunk scores (sigmoid for multi-label models, softmax for
single-label ones) aggregated by ``mean`` (default, the evaluation protocol) or ``max``;
its embedding is the mean of the chunk embeddings (``model.embed``: the pooled back-end
feature before the classifier).

Unreadable files are reported one line each and skipped; the command succeeds (exit 0) when
at least one input worked and fails with exit status 2 when none did.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Callable, Iterable, Iterator, Optional, Sequence

import numpy as np
import typer

from pipeline.errors import UserError

if TYPE_CHECKING:
    import torch

    from pipeline.models.base import AudioModel

log = logging.getLogger(__name__)

AGGREGATES = ("mean", "max")
LAYERS = ("pooled", "logits")
LOWPASS_FILTER_WIDTH = 6  # torchaudio.functional.resample defaults
ROLLOFF = 0.99
ErrorHandler = Callable[[str, str], None]


# ----------------------------------------------------------------------------- model
def resolve_model_dir(spec: str, root: str | Path = ".") -> Path:
    """Turn a ``--model`` value into a local packaged-model directory.

    Args:
        spec: a directory holding ``model.json`` (or ``seed<k>/model.json`` folders: the
            lowest seed is used); ``<task>/<model>`` or ``<task>/<model>/seed<k>`` (looked up
            under ``<root>/models/``); or ``models:/<name>/<version>`` (MLflow registry).
        root: project root for short names (default: the current directory).

    Raises:
        UserError: nothing matches; the message lists the trained models found.
    """
    spec = str(spec).strip()
    if spec.startswith("models:/"):
        from pipeline.registry import resolve_model_uri

        return resolve_model_uri(spec)
    for path in (Path(spec).expanduser(), Path(root) / "models" / spec):
        if (path / "model.json").exists():
            return path
        seeds = sorted((p.parent for p in path.glob("seed*/model.json")), key=lambda d: int(d.name[4:] or 0)
                       if d.name[4:].isdigit() else 1 << 40)
        if seeds:
            return seeds[0]
    found = sorted(str(p.parent.relative_to(Path(root) / "models")) for p in (Path(root) / "models").glob("*/*/*/model.json"))
    hint = f" Trained models here: {', '.join(found[:8])}{' ...' if len(found) > 8 else ''}." if found else \
        " No trained models under models/ here; run `musicrep train TASK MODEL` or `dvc repro` first."
    raise UserError(f"--model {spec!r} is not a packaged model directory (with model.json), a trained TASK/MODEL "
                    f"under models/, or a registry URI models:/NAME/VERSION.{hint}")


def load_for_inference(spec: str, device: str = "auto", root: str | Path = ".") -> tuple["AudioModel", dict[str, Any], Path]:
    """Resolve, verify and load a model for inference.

    Returns:
        ``(model in eval mode on the device, card, model directory)``.
    """
    from pipeline.checkpoint import load_model
    from pipeline.inference import pick_device

    model_dir = resolve_model_dir(spec, root)
    dev = pick_device(device)
    model, card = load_model(model_dir, map_location="cpu")
    model.to(dev).eval()
    return model, card, model_dir


# ----------------------------------------------------------------------------- inputs
def collect_inputs(paths: Iterable[str | Path], on_error: ErrorHandler | None = None) -> list[Path]:
    """Expand files and folders into a sorted, de-duplicated list of audio files.

    Folders are searched recursively for :data:`AUDIO_EXTENSIONS` (case-insensitive).
    Files named explicitly are kept whatever their extension (the decoder decides). A path
    that does not exist, or a folder without audio, is passed to ``on_error``.
    """
    from pipeline.data.audio import AUDIO_EXTENSIONS

    report = on_error or _log_error
    out: list[Path] = []
    seen: set[Path] = set()
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
            if not found:
                report(str(path), f"folder holds no audio files ({', '.join(AUDIO_EXTENSIONS)})")
            files = found
        elif path.exists():
            files = [path]
        else:
            from pipeline.data.audio import path_problem

            problem = path_problem(path)
            report(str(path), "no such file or folder" if problem in (None, "file not found") else problem)
            files = []
        for f in files:
            key = f.resolve()
            if key not in seen:
                seen.add(key)
                out.append(f)
    return out


def _log_error(path: str, reason: str) -> None:
    log.error("%s: %s; skipped", path, reason)


# ----------------------------------------------------------------------------- streaming audio
def _mono(block: np.ndarray) -> np.ndarray:
    from pipeline.data.audio import AudioError

    mono = block.mean(axis=1, dtype=np.float32) if block.ndim == 2 else block.astype(np.float32)
    if not np.all(np.isfinite(mono)):
        raise AudioError("non-finite samples")
    return mono


def stream_audio(path: str | Path, sample_rate: int, block_seconds: float = 10.0) -> Iterator[np.ndarray]:
    """Decode ``path`` block by block as mono float32 at ``sample_rate``.

    Each native-rate block is resampled together with a margin of neighbouring samples
    (wider than the sinc kernel) and trimmed, with block starts on the resampling grid, so
    the concatenated output equals :func:`pipeline.data.audio.resample` of the whole file
    (up to float rounding) while memory stays ``O(block)``.

    Args:
        path: audio file (any format soundfile/libsndfile decodes: wav, flac, ogg, mp3, aiff).
        sample_rate: output rate in Hz.
        block_seconds: decoded seconds per block (default 10).

    Yields:
        ``(samples,)`` float32 arrays, in order.

    Raises:
        AudioError: the file cannot be decoded or holds non-finite samples. Errors may come
            mid-stream (a file truncated half-way).
    """
    import soundfile as sf

    from pipeline.data.audio import AudioError, _decode_reason, check_audio_path, resample, resampling_ratio, wav_truncation

    check_audio_path(path)  # a FIFO or device is refused here, never opened (opening a FIFO would block)
    cut = wav_truncation(path)
    if cut:
        raise AudioError(f"truncated (its header declares {cut[0]:,} data bytes, only {cut[1]:,} are present)")
    try:
        f = sf.SoundFile(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError, OSError) as exc:
        raise AudioError(_decode_reason(exc)) from exc
    with f:
        native = int(f.samplerate)
        if native <= 0:
            raise AudioError(f"invalid sample rate {native}")
        down, up = resampling_ratio(native, sample_rate, path)  # output sample j sits at input j * down / up
        block = max(down, down * round(block_seconds * native / down))

        def read(n: int) -> np.ndarray:
            try:
                data = f.read(n, dtype="float32", always_2d=True)
            except (sf.LibsndfileError, RuntimeError, ValueError, OSError) as exc:
                raise AudioError(f"decoding failed mid-file ({_short(exc, path)})") from exc
            return _mono(data)

        if down == up:
            while True:
                data = read(block)
                if not len(data):
                    return
                yield data
        width = math.ceil(LOWPASS_FILTER_WIDTH * down / (min(down, up) * ROLLOFF))
        margin = down * math.ceil((width + 2) / down)  # a multiple of `down`, wider than the kernel
        buf = np.zeros(0, dtype=np.float32)  # native samples [buf_start, buf_start + len(buf))
        buf_start, start, eof = 0, 0, False
        while True:
            while not eof and buf_start + len(buf) < start + block + margin:
                data = read(block)
                if not len(data):
                    eof = True
                    break
                buf = np.concatenate([buf, data])
            end = buf_start + len(buf)
            if start >= end:
                return
            lo = max(0, start - margin)
            hi = end if eof else start + block + margin
            out = resample(buf[lo - buf_start : hi - buf_start], down, up)
            skip = (start - lo) * up // down
            last = eof and start + block >= end
            yield out[skip:] if last else out[skip : skip + block * up // down]
            if last:
                return
            start += block
            drop = start - margin - buf_start
            if drop > 0:
                buf, buf_start = buf[drop:], buf_start + drop


@dataclass
class Chunk:
    """One model input cut from a file: ``samples`` (length = chunk) and its place in seconds."""

    index: int
    start_s: float
    end_s: float
    samples: np.ndarray


@dataclass
class ChunkStream:
    """Iterate the chunks of one file; ``n_samples`` holds the file length once exhausted.

    Args:
        path: audio file.
        sample_rate: model rate in Hz.
        chunk: chunk length in samples.
        hop: hop between chunk starts in samples.
        block_seconds: decoding block length.
    """

    path: Path
    sample_rate: int
    chunk: int
    hop: int
    block_seconds: float = 10.0
    n_samples: int = 0

    def __iter__(self) -> Iterator[Chunk]:
        from pipeline.chunking import pad_center
        from pipeline.data.audio import AudioError

        sr, chunk, hop = self.sample_rate, self.chunk, self.hop
        buf = np.zeros(0, dtype=np.float32)
        buf_start = 0
        next_start, last_start, index = 0, -1, 0
        block_seconds = max(self.block_seconds, chunk / sr)
        for block in stream_audio(self.path, sr, block_seconds):
            buf = np.concatenate([buf, block])
            end = buf_start + len(buf)
            while next_start + chunk <= end:
                s = next_start - buf_start
                yield Chunk(index, next_start / sr, (next_start + chunk) / sr, buf[s : s + chunk].copy())
                index, last_start = index + 1, next_start
                next_start += hop
            keep_from = max(buf_start, min(next_start, end - chunk))
            if keep_from > buf_start:
                buf, buf_start = buf[keep_from - buf_start :], keep_from
        n = buf_start + len(buf)
        self.n_samples = n
        if n == 0:
            raise AudioError("no audio samples")
        if index == 0:  # shorter than one chunk: centre-pad, as evaluation does
            yield Chunk(0, 0.0, n / sr, pad_center(buf, chunk))
        elif next_start < n and n - chunk > last_start:  # uncovered tail: one end-aligned chunk
            s = n - chunk - buf_start
            yield Chunk(index, (n - chunk) / sr, n / sr, buf[s : s + chunk].copy())


def _short(exc: BaseException, path: str | Path | None = None) -> str:
    """First line of an exception message, without the file name libsndfile repeats."""
    import re

    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if path is not None:
        text = re.sub(r"^Error opening '.*?':\s*", "", text).replace(str(path), "<file>")
    return text[:200] or type(exc).__name__


# ----------------------------------------------------------------------------- core
@dataclass
class FileOutput:
    """What one file produced: aggregated ``vector``, and per-chunk rows when kept."""

    path: str
    duration_s: float
    n_chunks: int
    vector: np.ndarray
    chunks: list[tuple[int, float, float, np.ndarray]] = field(default_factory=list)


def _chunk_length(model: "AudioModel", chunk_seconds: float | None, hop_seconds: float | None) -> tuple[int, int]:
    sr = model.config.sample_rate
    if chunk_seconds is not None and not chunk_seconds > 0:
        raise UserError(f"--chunk-seconds must be > 0, got {chunk_seconds}.")
    if hop_seconds is not None and not hop_seconds > 0:
        raise UserError(f"--hop-seconds must be > 0, got {hop_seconds}.")
    chunk = model.input_length if chunk_seconds is None else max(1, int(round(chunk_seconds * sr)))
    hop = chunk if hop_seconds is None else max(1, int(round(hop_seconds * sr)))
    if chunk != model.input_length:  # check the model accepts it before touching any file
        import torch

        try:
            with torch.no_grad():
                model(torch.zeros(1, chunk, device=next(model.parameters()).device))
        except Exception as exc:  # noqa: BLE001 - shape errors differ per architecture
            raise UserError(f"this {model.config.variant} model cannot take {chunk / sr:g}-s chunks ({_short(exc)}); "
                            f"use its default of {model.input_length / sr:g} s or a longer --chunk-seconds.") from exc
    return chunk, hop


def run_files(model: "AudioModel", files: Sequence[Path], fn: Callable[["torch.Tensor"], "torch.Tensor"], *,
              chunk: int, hop: int, aggregate: str = "mean", keep_chunks: bool = False, batch_size: int = 16,
              on_error: ErrorHandler | None = None, block_seconds: float = 10.0) -> list[FileOutput]:
    """Apply ``fn`` (a batch of chunks ``(batch, chunk)`` -> ``(batch, dim)``) to every file.

    Files are processed one at a time, their chunks in batches of ``batch_size``; the chunk
    outputs are aggregated (``mean`` or ``max``) into one vector per file. A file that
    fails to decode (at open or mid-stream) is passed to ``on_error`` and left out.
    """
    import torch

    from pipeline.data.audio import AudioError
    from pipeline.progress import track

    if aggregate not in AGGREGATES:
        raise UserError(f"--aggregate must be one of {', '.join(AGGREGATES)}, got {aggregate!r}.")
    report = on_error or _log_error
    device = next(model.parameters()).device
    results: list[FileOutput] = []
    model.eval()
    for path in track(files, total=len(files), description="audio files"):
        stream = ChunkStream(Path(path), model.config.sample_rate, chunk, hop, block_seconds)
        total: np.ndarray | None = None
        count = 0
        rows: list[tuple[int, float, float, np.ndarray]] = []
        pending: list[Chunk] = []

        def flush() -> None:
            nonlocal total, count
            if not pending:
                return
            with torch.inference_mode():
                out = fn(torch.from_numpy(np.stack([c.samples for c in pending])).to(device)).float().cpu().numpy()
            part = out.sum(0, dtype=np.float64) if aggregate == "mean" else out.max(0).astype(np.float64)
            total = part if total is None else (total + part if aggregate == "mean" else np.maximum(total, part))
            count += len(pending)
            if keep_chunks:
                rows.extend((c.index, c.start_s, c.end_s, o.astype(np.float32)) for c, o in zip(pending, out))
            pending.clear()

        try:
            for c in stream:
                pending.append(c)
                if len(pending) >= batch_size:
                    flush()
            flush()
        except (AudioError, MemoryError) as exc:
            report(str(path), str(exc) if isinstance(exc, AudioError) else "out of memory")
            continue
        vector = total / count if aggregate == "mean" else total
        results.append(FileOutput(str(path), stream.n_samples / model.config.sample_rate, count,
                                  np.asarray(vector, dtype=np.float32), rows))
    return results


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


def predict(paths: Iterable[str | Path], model: str, *, chunk_seconds: float | None = None,
            hop_seconds: float | None = None, aggregate: str = "mean", top_k: int = 5, batch_size: int = 16,
            device: str = "auto", root: str | Path = ".", on_error: ErrorHandler | None = None) -> Predictions:
    """Score audio files with a trained model.

    Args:
        paths: files and/or folders.
        model: packaged model directory, ``task/model`` or ``models:/name/version``.
        chunk_seconds: chunk length (default: the model's input length).
        hop_seconds: hop between chunks (default: the chunk length).
        aggregate: ``mean`` or ``max`` of the chunk scores.
        top_k: labels listed per file, best first.
        batch_size: chunks per forward pass.
        device: ``auto`` | ``cpu`` | ``cuda``.
        root: project root for ``task/model`` names.
        on_error: called with ``(path, reason)`` for every unusable input (default: log).

    Returns:
        :class:`Predictions`; each record is ``{"path", "duration_s", "n_chunks", "top":
        [{"label", "score"}...], "scores": {label: score}}``.
    """
    from pipeline.inference import activate

    failures: list[dict[str, str]] = []

    def fail(path: str, reason: str) -> None:
        failures.append({"path": path, "error": reason})
        (on_error or _log_error)(path, reason)

    if top_k < 1:
        raise UserError(f"--top-k must be >= 1, got {top_k}.")
    net, card, model_dir = load_for_inference(model, device, root)
    labels = list(card["labels"])
    multilabel = bool(net.config.multilabel)
    chunk, hop = _chunk_length(net, chunk_seconds, hop_seconds)
    files = collect_inputs(paths, fail)
    outputs = run_files(net, files, lambda x: activate(net(x).float(), multilabel), chunk=chunk, hop=hop,
                        aggregate=aggregate, batch_size=batch_size, on_error=fail)
    records = []
    for out in outputs:
        order = np.argsort(-out.vector, kind="stable")[:top_k]
        records.append({
            "path": out.path, "duration_s": round(out.duration_s, 4), "n_chunks": out.n_chunks,
            "top": [{"label": labels[i], "score": float(out.vector[i])} for i in order],
            "scores": {name: float(v) for name, v in zip(labels, out.vector)},
        })
    return Predictions(records, failures, labels, model_dir, multilabel, str(model))


def predictions_frame(pred: Predictions, top_k: int) -> "Any":
    """One row per file: ``path, duration_s, n_chunks, top1_label, top1_score, ...,
    score:<label>`` for every label (a pandas DataFrame)."""
    import pandas as pd

    rows = []
    for r in pred.records:
        row: dict[str, Any] = {"path": r["path"], "duration_s": r["duration_s"], "n_chunks": r["n_chunks"]}
        for i in range(top_k):
            item = r["top"][i] if i < len(r["top"]) else {"label": "", "score": math.nan}
            row[f"top{i + 1}_label"], row[f"top{i + 1}_score"] = item["label"], item["score"]
        row.update({f"score:{k}": v for k, v in r["scores"].items()})
        rows.append(row)
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- embed
@dataclass
class Embeddings:
    """Result of :func:`embed`: rows (file rows have ``chunk == -1``) and a ``(rows, dim)`` matrix."""

    index: "Any"  # DataFrame: file, chunk, start_s, end_s
    matrix: np.ndarray
    failures: list[dict[str, str]]
    model_dir: Path
    layer: str


def embed(paths: Iterable[str | Path], model: str, *, per_chunk: bool = False, layer: str = "pooled",
          chunk_seconds: float | None = None, hop_seconds: float | None = None, batch_size: int = 16,
          device: str = "auto", root: str | Path = ".", on_error: ErrorHandler | None = None) -> Embeddings:
    """One embedding per file (mean of the chunk embeddings), optionally one per chunk too.

    Args:
        layer: ``pooled`` (``model.embed``: the back-end's pooled feature before the
            classifier, default) or ``logits`` (the classifier's pre-activation outputs).
        per_chunk: also keep every chunk's embedding (rows with ``chunk >= 0``).
        (others as :func:`predict`)

    Returns:
        :class:`Embeddings` with index columns ``file, chunk, start_s, end_s``.
    """
    import pandas as pd

    failures: list[dict[str, str]] = []

    def fail(path: str, reason: str) -> None:
        failures.append({"path": path, "error": reason})
        (on_error or _log_error)(path, reason)

    if layer not in LAYERS:
        raise UserError(f"--layer must be one of {', '.join(LAYERS)}, got {layer!r}.")
    net, _card, model_dir = load_for_inference(model, device, root)
    chunk, hop = _chunk_length(net, chunk_seconds, hop_seconds)
    files = collect_inputs(paths, fail)
    fn = net.embed if layer == "pooled" else (lambda x: net(x))
    outputs = run_files(net, files, fn, chunk=chunk, hop=hop, aggregate="mean", keep_chunks=per_chunk,
                        batch_size=batch_size, on_error=fail)
    index, vectors = [], []
    for out in outputs:
        index.append({"file": out.path, "chunk": -1, "start_s": 0.0, "end_s": out.duration_s})
        vectors.append(out.vector)
        for i, s, e, v in out.chunks:
            index.append({"file": out.path, "chunk": i, "start_s": s, "end_s": e})
            vectors.append(v)
    dim = int(vectors[0].shape[0]) if vectors else 0
    frame = pd.DataFrame(index, columns=["file", "chunk", "start_s", "end_s"]).astype(
        {"file": str, "chunk": "int32", "start_s": "float64", "end_s": "float64"})
    matrix = np.stack(vectors).astype(np.float32) if vectors else np.zeros((0, dim), dtype=np.float32)
    return Embeddings(frame, matrix, failures, model_dir, layer)


def write_embeddings(emb: Embeddings, out: str | Path) -> list[Path]:
    """Write embeddings to ``.parquet`` or ``.npy`` (+ a sidecar ``.csv`` index); atomic.

    Parquet columns: ``file`` (string), ``chunk`` (int32, -1 for the file's own row),
    ``start_s``, ``end_s`` (float64 seconds), ``embedding`` (``fixed_size_list<float32>[dim]``);
    the schema metadata records the model directory, layer and dimension.
    ``.npy``: a ``(rows, dim)`` float32 matrix; ``<out>.csv`` holds ``row, file, chunk,
    start_s, end_s`` with ``row`` the matrix row.

    Returns:
        The files written.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipeline.io_utils import atomic_path

    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in (".parquet", ".npy"):
        raise UserError(f"--out {out} must end in .parquet or .npy.")
    out.parent.mkdir(parents=True, exist_ok=True)
    dim = int(emb.matrix.shape[1])
    if suffix == ".parquet":
        values = pa.array(emb.matrix.reshape(-1), type=pa.float32())
        table = pa.table({
            "file": pa.array(emb.index["file"].tolist(), type=pa.string()),
            "chunk": pa.array(emb.index["chunk"].to_numpy(np.int32), type=pa.int32()),
            "start_s": pa.array(emb.index["start_s"].to_numpy(np.float64), type=pa.float64()),
            "end_s": pa.array(emb.index["end_s"].to_numpy(np.float64), type=pa.float64()),
            "embedding": pa.FixedSizeListArray.from_arrays(values, dim),
        })
        table = table.replace_schema_metadata({"musicrep.model": str(emb.model_dir), "musicrep.layer": emb.layer,
                                               "musicrep.dim": str(dim)})
        with atomic_path(out) as tmp:
            pq.write_table(table, tmp)
        return [out]
    side = out.with_suffix(".csv")
    with atomic_path(out) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, emb.matrix)
    with atomic_path(side) as tmp:
        emb.index.rename_axis("row").reset_index().to_csv(tmp, index=False)
    return [out, side]


# ----------------------------------------------------------------------------- CLI
def _print_error(path: str, reason: str) -> None:
    typer.secho(f"error: {path}: {reason}; skipped", fg="red", err=True)


def _display_path(path: str) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return path


def _render_table(pred: Predictions, top_k: int) -> None:
    from rich.console import Console
    from rich.table import Table

    kind = "multi-label, sigmoid scores" if pred.multilabel else "single-label, softmax probabilities"
    table = Table(title=f"{pred.model or _display_path(str(pred.model_dir))} ({kind})", expand=True)
    table.add_column("file", overflow="fold", ratio=3)
    table.add_column("seconds", justify="right", no_wrap=True)
    table.add_column("chunks", justify="right", no_wrap=True)
    table.add_column(f"top {top_k} labels", ratio=2)
    for r in pred.records:
        tops = "\n".join(f"{t['label']} {t['score']:.3f}" for t in r["top"])
        table.add_row(_display_path(r["path"]), f"{r['duration_s']:.2f}", str(r["n_chunks"]), tops)
    Console().print(table)


ModelOpt = Annotated[str, typer.Option("--model", "-m", help="packaged model dir, TASK/MODEL under models/, or models:/NAME/VERSION")]
ChunkOpt = Annotated[Optional[float], typer.Option("--chunk-seconds", help="chunk length in s (default: the model's input length)")]
HopOpt = Annotated[Optional[float], typer.Option("--hop-seconds", help="hop between chunks in s (default: the chunk length)")]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto | cpu | cuda")]
BatchOpt = Annotated[int, typer.Option("--batch-size", min=1, help="chunks per forward pass")]
PathsArg = Annotated[list[Path], typer.Argument(help="audio files and/or folders (searched recursively)")]


def predict_cmd(
    paths: PathsArg,
    model: ModelOpt,
    chunk_seconds: ChunkOpt = None,
    hop_seconds: HopOpt = None,
    aggregate: Annotated[str, typer.Option("--aggregate", help="mean | max of the chunk scores")] = "mean",
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, help="labels shown per file")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON record per file (a list) to stdout")] = False,
    csv: Annotated[Optional[Path], typer.Option("--csv", help="also write one CSV row per file to this file")] = None,
    device: DeviceOpt = "auto",
    batch_size: BatchOpt = 16,
) -> None:
    """Tag/classify audio files with a trained model (top-k labels and all scores per file)."""
    from pipeline.io_utils import atomic_path

    pred = predict(paths, model, chunk_seconds=chunk_seconds, hop_seconds=hop_seconds, aggregate=aggregate,
                   top_k=top_k, batch_size=batch_size, device=device, on_error=_print_error)
    if not pred.records:
        raise UserError(f"none of the {len(pred.failures)} inputs could be used (see the errors above); "
                        "pass readable audio files (wav, flac, ogg, mp3, aiff) or folders of them.")
    if csv is not None:
        with atomic_path(csv) as tmp:
            predictions_frame(pred, top_k).to_csv(tmp, index=False)
        typer.echo(f"wrote {csv} ({len(pred.records)} files)", err=True)
    if as_json:
        typer.echo(json.dumps(pred.records, indent=2))
    else:
        _render_table(pred, top_k)
    if pred.failures:
        typer.echo(f"{len(pred.records)} files scored, {len(pred.failures)} skipped", err=True)

def embed_cmd(
    paths: PathsArg,
    model: ModelOpt,
    out: Annotated[Path, typer.Option("--out", "-o", help="FILE.parquet or FILE.npy (+ FILE.csv index)")],
    per_chunk: Annotated[bool, typer.Option("--per-chunk", help="also write one embedding per chunk")] = False,
    layer: Annotated[str, typer.Option("--layer", help="pooled (back-end feature before the classifier) | logits")] = "pooled",
    chunk_seconds: ChunkOpt = None,
    hop_seconds: HopOpt = None,
    device: DeviceOpt = "auto",
    batch_size: BatchOpt = 16,
) -> None:
    """Write one embedding per file (mean over chunks), optionally one per chunk."""
    if Path(out).suffix.lower() not in (".parquet", ".npy"):
        raise UserError(f"--out {out} must end in .parquet or .npy.")
    emb = embed(paths, model, per_chunk=per_chunk, layer=layer, chunk_seconds=chunk_seconds,
                hop_seconds=hop_seconds, batch_size=batch_size, device=device, on_error=_print_error)
    if emb.matrix.shape[0] == 0:
        raise UserError(f"none of the {len(emb.failures)} inputs could be used (see the errors above); "
                        "pass readable audio files (wav, flac, ogg, mp3, aiff) or folders of them.")
    written = write_embeddings(emb, out)
    n_files = int((emb.index["chunk"] == -1).sum())
    typer.echo(f"wrote {', '.join(map(str, written))}: {n_files} files, {len(emb.index)} rows, "
               f"dim {emb.matrix.shape[1]} ({layer})" + (f"; {len(emb.failures)} skipped" if emb.failures else ""))

def register_cmd(
    model: Annotated[str, typer.Argument(help="packaged model dir or TASK/MODEL under models/")],
    name: Annotated[Optional[str], typer.Option("--name", help="registered model name (default musicrep-TASK-MODEL)")] = None,
) -> None:
    """Register a trained model in the MLflow model registry (prints its models:/ URI)."""
    from pipeline.registry import register_model

    if str(model).startswith("models:/"):
        raise UserError(f"{model} is already a registry URI; pass a packaged model directory or TASK/MODEL.")
    reg_name, version = register_model(resolve_model_dir(model), name=name)
    typer.echo(f"models:/{reg_name}/{version}")

def register_commands(app: "typer.Typer") -> None:
    """Add ``predict``, ``embed`` and ``register`` to the ``musicrep`` typer app."""
    app.command("predict")(predict_cmd)
    app.command("embed")(embed_cmd)
    app.command("register")(register_cmd)
