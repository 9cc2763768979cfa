"""Audio inputs for inference: find files, decode them block by block, resample, cut chunks.

- :func:`collect_inputs` expands files and folders into the list of audio files.
- :func:`stream_audio` decodes a file with :class:`soundfile.SoundFile` block by block, each
  block resampled (:func:`pipeline.audio.io.resample`, torchaudio's sinc resampler, the
  one ``segment`` uses for the training data) with a context margin so that the result
  equals resampling the whole file at once. Memory stays ``O(block)``, so hour-long
  recordings work.
- :class:`ChunkStream` cuts that stream into chunks of the model's input length (hop = chunk
  by default; the uncovered end of the file gets one end-aligned chunk; files shorter than
  a chunk are centre-padded, as in evaluation).

Batching chunks across files and the model live in :mod:`pipeline.inference.predict`, the outputs in
:mod:`pipeline.inference.writers`.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from pipeline.audio.chunking import pad_center
from pipeline.audio.io import AUDIO_EXTENSIONS, AudioError, open_sound_file, path_problem, resample, resampling_ratio

log = logging.getLogger(__name__)

LOWPASS_FILTER_WIDTH = 6  # torchaudio.functional.resample defaults
ROLLOFF = 0.99
ErrorHandler = Callable[[str, str], None]


# ----------------------------------------------------------------------------- inputs
def collect_inputs(paths: Iterable[str | Path], on_error: ErrorHandler | None = None) -> list[Path]:
    """Expand files and folders into a sorted, de-duplicated list of audio files.

    Folders are searched recursively for :data:`AUDIO_EXTENSIONS` (case-insensitive).
    Files named explicitly are kept whatever their extension (the decoder decides). A path
    that does not exist, or a folder without audio, is passed to ``on_error``.
    """

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
    if block.ndim == 2:
        mono = block[:, 0] if block.shape[1] == 1 else block.mean(axis=1, dtype=np.float32)
    else:
        mono = block.astype(np.float32, copy=False)
    if not np.all(np.isfinite(mono)):
        raise AudioError("non-finite samples")
    return mono


def stream_audio(path: str | Path, sample_rate: int, block_seconds: float = 10.0) -> Iterator[np.ndarray]:
    """Decode ``path`` block by block as mono float32 at ``sample_rate``.

    Each native-rate block is resampled together with a margin of neighbouring samples
    (wider than the sinc kernel) and trimmed, with block starts on the resampling grid, so
    the concatenated output equals :func:`pipeline.audio.io.resample` of the whole file
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

    with open_sound_file(path) as f:  # a FIFO or device is refused there, never opened
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

    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if path is not None:
        text = re.sub(r"^Error opening '.*?':\s*", "", text).replace(str(path), "<file>")
    return text[:200] or type(exc).__name__
