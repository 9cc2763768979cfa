"""Audio decoding: any common format -> mono float32 at 16 kHz.

soundfile (libsndfile 1.2.2, bundled in its wheel) decodes wav, flac, ogg and mp3 with no
system packages and was 3-10x faster than torchaudio+torchcodec here (docs/spec.md §10.2);
torchaudio 2.11 has no I/O of its own without FFmpeg. Resampling uses torchaudio's
band-limited sinc resampler (:class:`torchaudio.transforms.Resample`, the kernel of
``torchaudio.functional.resample`` built once per rate pair and cached) on one torch thread:
on these short 1-D signals one thread was up to 14x faster than two on a busy 2-core machine
(docs/benchmarks.md, "Segmenting throughput").
"""

from __future__ import annotations

import errno
import logging
import math
import os
import re
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.transforms as T

from pipeline import SAMPLE_RATE

log = logging.getLogger(__name__)
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".oga", ".aiff", ".aif")


class AudioError(Exception):
    """The file cannot be used as audio (unreadable, empty, truncated, silent...)."""


def path_problem(path: str | Path) -> str | None:
    """Why ``path`` cannot be opened as an audio file, or ``None`` when it is a readable regular file.

    Only ``lstat``/``stat``/``access`` are used: a FIFO or a device is named, never opened
    (opening a FIFO blocks until a writer appears).
    """
    path = Path(path)
    try:
        st = path.lstat()
    except FileNotFoundError:
        return "file not found"
    except PermissionError:
        return "permission denied on its folder (make the folder readable, e.g. chmod a+rx)"
    except OSError as exc:
        return f"cannot be examined ({exc.strerror or exc})"
    if stat.S_ISLNK(st.st_mode):
        try:
            st = path.stat()
        except FileNotFoundError:
            return f"dangling symbolic link (its target {os.readlink(path)} does not exist)"
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return "symbolic link loop (the link points back to itself)"
            return f"symbolic link that cannot be followed ({exc.strerror or exc})"
    kind = st.st_mode
    if stat.S_ISDIR(kind):
        return "is a folder, not an audio file"
    if stat.S_ISFIFO(kind):
        return "is a named pipe (FIFO), not a regular file; it was not opened"
    if stat.S_ISSOCK(kind):
        return "is a socket, not a regular file"
    if stat.S_ISCHR(kind) or stat.S_ISBLK(kind):
        return "is a device, not a regular file; it was not opened"
    if not stat.S_ISREG(kind):
        return "is not a regular file"
    if not os.access(path, os.R_OK):
        return "permission denied (the file is not readable; fix its permissions, e.g. chmod a+r)"
    return None


def check_audio_path(path: str | Path) -> None:
    """Raise :class:`AudioError` naming why ``path`` cannot be read (see :func:`path_problem`)."""
    problem = path_problem(path)
    if problem:
        raise AudioError(problem)


def wav_truncation(path: str | Path) -> tuple[int, int] | None:
    """``(declared, present)`` data bytes when a RIFF/WAVE file's ``data`` chunk is cut short, else ``None``."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            size = os.fstat(f.fileno()).st_size
            pos = 12
            while pos + 8 <= size:
                f.seek(pos)
                chunk = f.read(8)
                cid, n = chunk[:4], int.from_bytes(chunk[4:8], "little")
                if cid == b"data":
                    present = size - pos - 8
                    if n not in (0, 0xFFFFFFFF) and n > present:  # 0 / all ones: a stream of unknown length
                        return n, present
                    return None
                pos += 8 + n + (n & 1)
    except OSError:
        return None
    return None


def _decode_reason(exc: BaseException) -> str:
    """A user-facing reason for a libsndfile open failure (its 'possibly a pipe?' text misleads)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    text = re.sub(r"^Error opening '.*?':\s*", "", text)
    if isinstance(exc, (sf.LibsndfileError, RuntimeError)) or "not a regular file" in text or "not recognised" in text:
        return "not a decodable audio file (cannot decode it as wav, flac, ogg, mp3 or aiff)"
    return f"cannot decode ({text[:200]})"


def open_sound_file(path: str | Path) -> sf.SoundFile:
    """Open ``path`` for decoding, after refusing what cannot be read safely.

    Raises:
        AudioError: not a regular readable file (a FIFO or device is refused, never opened:
            opening a FIFO would block), a WAV shorter than its header says, or a file
            libsndfile cannot open.
    """
    check_audio_path(path)
    cut = wav_truncation(path)
    if cut:
        raise AudioError(f"truncated (its header declares {cut[0]:,} data bytes, only {cut[1]:,} are present)")
    try:
        return sf.SoundFile(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError, OSError) as exc:
        raise AudioError(_decode_reason(exc)) from exc


def read_audio(
    path: str | Path, start_s: float = 0.0, duration_s: float | None = None, sample_rate: int = SAMPLE_RATE
) -> np.ndarray:
    """Decode ``path`` to a mono float32 waveform at ``sample_rate``.

    Args:
        path: audio file (wav, flac, ogg, mp3, aiff).
        start_s: offset in seconds.
        duration_s: seconds to read; ``None`` or NaN reads to the end.
        sample_rate: output rate in Hz (default 16,000).

    Returns:
        ``(samples,)`` float32 in [-1, 1].

    Raises:
        AudioError: the file cannot be decoded or holds no samples.
    """
    f = open_sound_file(path)
    try:
        with f:
            sr = f.samplerate
            start = int(round(start_s * sr))
            if start:
                f.seek(min(start, f.frames))
            frames = -1 if duration_s is None or math.isnan(duration_s) else int(round(duration_s * sr))
            data = f.read(frames, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError, OSError) as exc:
        raise AudioError(
            f"truncated or corrupt (decoding failed: {str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__})"
        ) from exc
    if data.size == 0:
        raise AudioError("no audio samples")
    mono = data.mean(axis=1)
    if not np.all(np.isfinite(mono)):
        raise AudioError("non-finite samples")
    return resample(mono, sr, sample_rate, path)


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` torch intra-op threads, then restore the previous count."""
    before = torch.get_num_threads()
    if before == n:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


RESAMPLE_THREADS = 1  # torch threads for resampling (0: the caller's count); 1 measured fastest (docs/benchmarks.md)


@lru_cache(maxsize=16)
def _resampler(down: int, up: int) -> torch.nn.Module:
    """torchaudio's resampler for ``down -> up``, its sinc kernel built once (float32, as
    ``torchaudio.functional.resample`` builds it for float32 input: identical output)."""

    return T.Resample(down, up, dtype=torch.float32)


def resample(wave: np.ndarray, orig_sr: int, new_sr: int = SAMPLE_RATE, path: str | Path = "") -> np.ndarray:
    """Resample a 1-D float32 array with torchaudio's band-limited sinc interpolation.

    Nearly coprime rates are first snapped to a nearby rate that reduces well
    (:func:`resampling_ratio`), so the sinc kernel stays small. The kernel is cached per
    rate pair and the work runs on :data:`RESAMPLE_THREADS` torch thread(s), the previous
    thread count restored afterwards.
    """
    if orig_sr == new_sr:
        return np.ascontiguousarray(wave, dtype=np.float32)
    down, up = resampling_ratio(orig_sr, new_sr, path)
    with torch_threads(RESAMPLE_THREADS or torch.get_num_threads()), torch.inference_mode():
        out = _resampler(down, up)(torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32)))
    return out.numpy()


MAX_RATIO_TERM = 1_000


def resampling_ratio(native: int, target: int, path: str | Path = "") -> tuple[int, int]:
    """Reduced ``(down, up)`` with ``native * up / down == target`` for resampling.

    torchaudio's sinc resampler builds a kernel of ``up x (down + 2 width)`` taps, which is
    huge for nearly coprime rates (44,101 Hz -> 16 kHz: 16,000 x 44,135). When ``down`` or
    ``up`` exceed :data:`MAX_RATIO_TERM`, the native rate is treated as the nearest rate on a
    10/20/25/50/100... Hz grid that reduces well (44,101 -> 44,100 Hz: a 0.002 % speed
    change, logged).
    """
    for step in (1, 10, 20, 25, 50, 100, 160, 200, 250, 400, 500, 1000, 2000, 4000, 8000, 16000):
        rate = max(step, int(round(native / step)) * step)
        g = math.gcd(rate, target)
        down, up = rate // g, target // g
        if max(down, up) <= MAX_RATIO_TERM:
            if rate != native:
                log.warning(
                    "%s: resampling its %d Hz as %d Hz (%.3f %% speed change) to keep the resampler small",
                    path,
                    native,
                    rate,
                    100 * abs(rate - native) / native,
                )
            return down, up
    raise AssertionError("unreachable: step == target always reduces to 1/1")


def peak_dbfs(wave: np.ndarray) -> float:
    """Peak level in dB relative to full scale (-inf for digital silence)."""
    peak = float(np.max(np.abs(wave))) if wave.size else 0.0
    return 20 * math.log10(peak) if peak > 0 else -math.inf
