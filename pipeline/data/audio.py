"""Audio decoding: any common format -> mono float32 at 16 kHz.

soundfile (libsndfile 1.2.2, bundled in its wheel) decodes wav, flac, ogg and mp3 with no
system packages and was 3-10x faster than torchaudio+torchcodec here (STACK.md §5);
torchaudio 2.11 has no I/O of its own without FFmpeg. Resampling uses
``torchaudio.functional.resample``.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from pipeline import SAMPLE_RATE

log = logging.getLogger(__name__)
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".oga", ".aiff", ".aif")


class AudioError(Exception):
    """The file cannot be used as audio (unreadable, empty, truncated, silent...)."""


def read_audio(path: str | Path, start_s: float = 0.0, duration_s: float | None = None,
               sample_rate: int = SAMPLE_RATE) -> np.ndarray:
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
    try:
        with sf.SoundFile(str(path)) as f:
            sr = f.samplerate
            start = int(round(start_s * sr))
            if start:
                f.seek(min(start, f.frames))
            frames = -1 if duration_s is None or math.isnan(duration_s) else int(round(duration_s * sr))
            data = f.read(frames, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError, OSError) as exc:
        raise AudioError(f"cannot decode ({exc})") from exc
    if data.size == 0:
        raise AudioError("no audio samples")
    mono = data.mean(axis=1)
    if not np.all(np.isfinite(mono)):
        raise AudioError("non-finite samples")
    return resample(mono, sr, sample_rate, path)


def resample(wave: np.ndarray, orig_sr: int, new_sr: int = SAMPLE_RATE, path: str | Path = "") -> np.ndarray:
    """Resample a 1-D float32 array with torchaudio's band-limited sinc interpolation.

    Nearly coprime rates are first snapped to a nearby rate that reduces well
    (:func:`resampling_ratio`), so the sinc kernel stays small.
    """
    if orig_sr == new_sr:
        return np.ascontiguousarray(wave, dtype=np.float32)
    down, up = resampling_ratio(orig_sr, new_sr, path)
    out = AF.resample(torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32)), down, up)
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
                log.warning("%s: resampling its %d Hz as %d Hz (%.3f %% speed change) to keep the resampler small",
                            path, native, rate, 100 * abs(rate - native) / native)
            return down, up
    raise AssertionError("unreachable: step == target always reduces to 1/1")




def peak_dbfs(wave: np.ndarray) -> float:
    """Peak level in dB relative to full scale (-inf for digital silence)."""
    peak = float(np.max(np.abs(wave))) if wave.size else 0.0
    return 20 * math.log10(peak) if peak > 0 else -math.inf
