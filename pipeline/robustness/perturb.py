"""Audio perturbations for the robustness stage: deterministic, batched, device-agnostic.

Every perturbation is a plain function ``fn(waves, level, seed=None, **options) -> waves``:

- ``waves``: float tensor ``(batch, samples)`` of mono 16 kHz audio (float32 expected), on any
  device; the work runs on that device (CUDA when the tensor is there) and the result comes back
  on it, same dtype. ``(samples,)`` is accepted too and returns ``(samples,)``.
- ``level``: the perturbation amount, in the unit of :data:`INFO` (``INFO[name].unit``).
- ``seed``: ``int`` (row ``i`` uses a sub-seed derived from ``(seed, i)``), a sequence with one
  ``int`` per row (a row's output then does not depend on the batch it is in), or ``None``
  (same as ``0``). Deterministic perturbations ignore it. Random numbers are always drawn on
  the CPU with a per-row :class:`torch.Generator`, so the same seed gives the same output on
  CPU and CUDA (up to float rounding of the arithmetic).

Perturbations (see ``docs/robustness.md`` for the design notes and measured errors):

================== ============ ==========================================================
name               level unit   operation
================== ============ ==========================================================
white_noise        SNR dB       add Gaussian white noise at exactly that clip SNR
background_noise   SNR dB       add a (looped) segment of a real/synthetic noise at that SNR
pitch_shift        semitones    phase vocoder + rational resampling; duration kept
time_stretch       rate         phase vocoder; rate > 1 = faster/shorter, pitch kept
gain               dB           scale by 10^(dB/20) (RMS changes by exactly dB; no clipping)
dynamic_range      dB           4:1 compressor, threshold ``level`` dB below the clip's
                                loudest 10-ms frame, RMS restored afterwards
ref_white_noise    rate r       reference repo: (1-r)·x + r·n, n peak-normalised to max(x)
ref_dynamic_range  preset       reference repo: SoX ``compand`` preset (4 music std, 6 speech)
ref_time_stretch   rate         reference repo: librosa ``time_stretch`` (same algorithm)
ref_pitch_shift    semitones    reference repo: librosa ``pitch_shift`` (same algorithm)
================== ============ ==========================================================

Use :func:`apply` for name-based dispatch (it also accepts NumPy arrays).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

import numpy as np
import torch
import torchaudio.functional as AF
import torchaudio.transforms as T

SAMPLE_RATE = 16_000
N_FFT = 2048  # librosa's time_stretch / pitch_shift defaults (n_fft 2048, hop n_fft // 4)
HOP = 512

SeedLike = int | Sequence[int] | None
NoiseBank = Sequence[np.ndarray | torch.Tensor] | np.ndarray | torch.Tensor


# --------------------------------------------------------------------------------------------
# registry: a perturbation registers itself with @perturbation(...) where it is defined
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PerturbationInfo:
    """How a perturbation's level is read.

    Attributes:
        unit: level prefix used in metric names (``snr``, ``semitones``, ``rate``, ``db``, ``preset``).
        axis_label: x-axis label for plots (with units).
        identity: the level that leaves the audio unchanged (``inf`` for SNRs: placed at the
            "clean" end of a curve; ``None`` if there is none).
        example: a level that changes the audio, in range (the contract tests apply it).
        needs_noise: True if it takes a noise bank (``noise=``).
        random: True if the output depends on the seed.
        check: ``level -> None``, or what is wrong with it (``"rate must be > 0"``); :func:`check_level`
            adds the name and the level. ``None``: every finite level is allowed.
    """

    unit: str
    axis_label: str
    identity: float | None
    example: float
    needs_noise: bool = False
    random: bool = False
    check: Callable[[float], str | None] | None = None


PERTURBATIONS: dict[str, Callable[..., torch.Tensor]] = {}
"""Every perturbation by name, in definition order (filled by :func:`perturbation`; treat as read-only)."""
INFO: dict[str, PerturbationInfo] = {}
"""The :class:`PerturbationInfo` of every perturbation (filled by :func:`perturbation`; treat as read-only)."""

Perturbation = Callable[..., torch.Tensor]


def perturbation(
    unit: str,
    axis_label: str,
    identity: float | None,
    example: float,
    *,
    needs_noise: bool = False,
    random: bool = False,
    check: Callable[[float], str | None] | None = None,
) -> Callable[[Perturbation], Perturbation]:
    """Register the decorated function as perturbation ``fn.__name__`` (arguments: :class:`PerturbationInfo`).

    Raises:
        ValueError: the name is registered already.
    """

    def register(fn: Perturbation) -> Perturbation:
        if fn.__name__ in PERTURBATIONS:
            raise ValueError(f"perturbation {fn.__name__!r} is registered twice")
        PERTURBATIONS[fn.__name__] = fn
        INFO[fn.__name__] = PerturbationInfo(unit, axis_label, identity, example, needs_noise, random, check)
        return fn

    return register


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def _as_batch(waves: torch.Tensor) -> tuple[torch.Tensor, bool]:
    if not isinstance(waves, torch.Tensor):
        raise TypeError(f"waves must be a torch.Tensor, got {type(waves).__name__}; use apply() for NumPy input")
    if waves.ndim == 1:
        return waves[None], True
    if waves.ndim != 2:
        raise ValueError(f"waves must be (batch, samples) or (samples,), got shape {tuple(waves.shape)}")
    return waves, False


def _restore(out: torch.Tensor, squeezed: bool) -> torch.Tensor:
    return out[0] if squeezed else out


def row_seeds(seed: SeedLike, n: int) -> list[int]:
    """One 63-bit seed per row: derived from ``(seed, row)`` for an int, taken as is for a list."""
    if seed is None:
        seed = 0
    if isinstance(seed, (int, np.integer)):
        return [int(np.random.SeedSequence([int(seed) & (2**63 - 1), i]).generate_state(1, np.uint64)[0] >> 1) for i in range(n)]
    seeds = [int(s) for s in seed]
    if len(seeds) != n:
        raise ValueError(f"got {len(seeds)} seeds for {n} rows")
    return seeds


def _randn_rows(seeds: list[int], n: int, like: torch.Tensor) -> torch.Tensor:
    """``(rows, n)`` standard normal noise, one CPU generator per row, moved to ``like``'s device."""
    out = torch.empty(len(seeds), n, dtype=torch.float32)
    for i, s in enumerate(seeds):
        g = torch.Generator().manual_seed(s)
        out[i] = torch.randn(n, generator=g)
    return out.to(device=like.device)


def _power(x: torch.Tensor) -> torch.Tensor:
    """Mean square per row in float64, ``(batch, 1)``."""
    return x.double().pow(2).mean(dim=-1, keepdim=True)


def _mix_at_snr(x: torch.Tensor, noise: torch.Tensor, snr_db: float) -> torch.Tensor:
    """``x + g·noise`` with ``g`` such that ``10·log10(P_x / P_{g·noise}) = snr_db`` per row.

    :func:`torchaudio.functional.add_noise`, computed in float64 and cast back to ``x``'s
    dtype (bit-identical to the former hand-written ``sqrt(P_x / (P_n·10^(snr/10)))`` scaling,
    tested). Silent rows (``P_x = 0``) get no noise (the SNR is undefined) and come back unchanged.
    """
    if bool((_power(noise) <= 0).any()):
        raise ValueError("noise has zero power in at least one row")
    snr = torch.full(x.shape[:-1], float(snr_db), dtype=torch.float64, device=x.device)
    return AF.add_noise(x.double(), noise.double(), snr).to(x.dtype)


# --------------------------------------------------------------------------------------------
# additive noise
# --------------------------------------------------------------------------------------------
@perturbation("snr", "SNR (dB)", math.inf, 0.0, random=True)
def white_noise(waves: torch.Tensor, snr_db: float, seed: SeedLike = None) -> torch.Tensor:
    """Add Gaussian white noise at a target signal-to-noise ratio.

    Args:
        waves: ``(batch, samples)`` (or ``(samples,)``) float audio.
        snr_db: target SNR in dB, ``10·log10(P_signal / P_noise)`` with ``P`` the mean square over
            the whole clip; any real value (negative = noise louder than the signal). The noise
            is scaled per row after drawing, so the mixture's SNR equals the request exactly (up
            to float32 rounding of the sum, far below 0.01 dB).
        seed: see the module docstring.

    Returns:
        Same shape, dtype and device. Not clipped (the pipeline is float end to end).
    """
    x, sq = _as_batch(waves)
    noise = _randn_rows(row_seeds(seed, x.shape[0]), x.shape[1], x)
    return _restore(_mix_at_snr(x, noise, float(snr_db)), sq)


def noise_segments(noise: NoiseBank, n_rows: int, length: int, seeds: list[int]) -> np.ndarray:
    """Draw ``(n_rows, length)`` float32 noise segments from a bank.

    Row ``i`` picks a noise file and a start offset with ``numpy.random.default_rng(seeds[i])``;
    a noise shorter than ``length`` (or a segment running past its end) is looped (tiled).
    All-zero segments are redrawn (up to 16 times) so that the SNR is defined.
    """
    bank = _as_bank(noise)
    out = np.empty((n_rows, length), dtype=np.float32)
    for i, s in enumerate(seeds):
        rng = np.random.default_rng(s)
        for _ in range(16):
            src = bank[int(rng.integers(len(bank)))]
            start = int(rng.integers(len(src)))
            idx = (start + np.arange(length)) % len(src)
            seg = src[idx]
            if np.any(seg != 0):
                break
        else:
            raise ValueError("the noise bank only yielded silent segments; check the noise files")
        out[i] = seg
    return out


def _as_bank(noise: NoiseBank | None) -> list[np.ndarray]:
    if noise is None:
        raise ValueError("background_noise needs a noise bank (noise=[...]); see pipeline.robustness.noises.load_noise")
    if isinstance(noise, (np.ndarray, torch.Tensor)) and np.ndim(noise) == 1:
        noise = [noise]
    bank = []
    for item in noise:
        arr = item.detach().cpu().numpy() if isinstance(item, torch.Tensor) else np.asarray(item)
        arr = np.asarray(arr, dtype=np.float32).reshape(-1)
        if arr.size and np.any(arr != 0):
            bank.append(arr)
    if not bank:
        raise ValueError("the noise bank is empty or silent")
    return bank


@perturbation("snr", "SNR (dB)", math.inf, 0.0, needs_noise=True, random=True)
def background_noise(waves: torch.Tensor, snr_db: float, seed: SeedLike = None, noise: NoiseBank | None = None) -> torch.Tensor:
    """Add a segment of a recorded/synthetic noise at a target SNR.

    Args:
        waves: ``(batch, samples)`` (or ``(samples,)``) float audio at 16 kHz.
        snr_db: target SNR in dB (as in :func:`white_noise`, measured over the whole clip).
        seed: chooses, per row, which noise of the bank and the start offset.
        noise: the bank, a list of 1-D 16 kHz arrays/tensors (e.g. from
            :func:`pipeline.robustness.noises.load_noise`). Noises shorter than the clip are looped.

    Returns:
        Same shape, dtype and device; not clipped.
    """
    x, sq = _as_batch(waves)
    segs = noise_segments(noise, x.shape[0], x.shape[1], row_seeds(seed, x.shape[0]))
    return _restore(_mix_at_snr(x, torch.from_numpy(segs).to(x.device), float(snr_db)), sq)


@perturbation(
    "rate", "noise mix rate r", 0.0, 0.1, random=True, check=lambda r: None if 0 <= r <= 1 else "rate must be in [0, 1]"
)
def ref_white_noise(waves: torch.Tensor, rate: float, seed: SeedLike = None) -> torch.Tensor:
    """Reference-repo white noise: ``(1 - r)·x + r·n``.

    ``n`` is standard normal noise (the reference's rfft → flat filter → irfft is an identity),
    peak-normalised (``n / max|n|``) and multiplied by ``max(x)`` (the signed maximum, as in the
    reference). ``rate`` r in [0, 1]; the reference used 0.1 ... 0.4. Differences: the noise is
    seeded here, and odd-length clips keep their length (the reference's irfft drops one sample).
    """
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"ref_white_noise rate must be in [0, 1], got {rate}")
    x, sq = _as_batch(waves)
    n = _randn_rows(row_seeds(seed, x.shape[0]), x.shape[1], x).to(x.dtype)
    n = n / n.abs().amax(dim=-1, keepdim=True).clamp_min(1e-12)
    n = n * x.amax(dim=-1, keepdim=True)
    return _restore((1.0 - rate) * x + rate * n, sq)


# --------------------------------------------------------------------------------------------
# time stretch / pitch shift (phase vocoder, librosa-equivalent)
# --------------------------------------------------------------------------------------------
@lru_cache(maxsize=8)
def _window(n_fft: int, device: str, dtype: torch.dtype) -> torch.Tensor:
    return torch.hann_window(n_fft, periodic=True, dtype=dtype, device=device)


def _phase_vocoder(spec: torch.Tensor, rate: float, hop: int) -> torch.Tensor:
    """librosa's ``phase_vocoder`` on ``(batch, freq, frames)`` complex STFTs.

    Same algorithm (linear magnitude interpolation between frames ``floor(t)`` and
    ``floor(t)+1`` at ``t = 0, rate, 2·rate, ...``, phase advanced by the measured instantaneous
    frequency), but the phase is accumulated modulo 2π in float64, so long clips do not lose
    phase precision as a float32 running sum does.
    """
    n_freq, n_frames = spec.shape[-2], spec.shape[-1]
    steps = torch.arange(0, n_frames, rate, dtype=torch.float64, device=spec.device)
    i0 = steps.floor().long()
    alpha = (steps - i0).to(spec.real.dtype)
    padded = torch.nn.functional.pad(spec, (0, 2))
    c0, c1 = padded[..., i0], padded[..., i0 + 1]
    mag = (1 - alpha) * c0.abs() + alpha * c1.abs()
    advance = torch.linspace(0, math.pi * hop, n_freq, dtype=torch.float64, device=spec.device)[:, None]
    dphase = c1.angle().double() - c0.angle().double() - advance
    dphase = dphase - 2 * math.pi * torch.round(dphase / (2 * math.pi))
    step = torch.remainder(advance, 2 * math.pi) + dphase
    phase = torch.cumsum(step, dim=-1) - step  # exclusive: frame t uses the phase before its own update
    phase = torch.remainder(phase + spec[..., :1].angle().double(), 2 * math.pi).to(spec.real.dtype)
    return torch.polar(mag, phase)


@perturbation("rate", "stretch rate (x, >1 = faster)", 1.0, 1.25, check=lambda rate: "rate must be > 0" if rate <= 0 else None)
def time_stretch(
    waves: torch.Tensor, rate: float, seed: SeedLike = None, *, n_fft: int = N_FFT, hop_length: int = HOP
) -> torch.Tensor:
    """Change tempo, keep pitch (phase vocoder, as ``librosa.effects.time_stretch``).

    Args:
        waves: ``(batch, samples)`` (or ``(samples,)``) float audio.
        rate: speed factor > 0; ``rate > 1`` = faster and shorter. The output has
            ``round(samples / rate)`` samples (librosa's length rule).
        n_fft, hop_length: STFT size and hop (librosa's defaults 2048 / 512, periodic Hann,
            centred frames with zero padding).

    Returns:
        ``(batch, round(samples / rate))``, same dtype and device.
    """
    rate = float(rate)
    if not rate > 0:
        raise ValueError(f"time_stretch rate must be > 0, got {rate}")
    x, sq = _as_batch(waves)
    length = int(round(x.shape[-1] / rate))
    if rate == 1.0:
        return _restore(x.clone(), sq)
    window = _window(n_fft, str(x.device), x.dtype)
    spec = torch.stft(x, n_fft, hop_length, n_fft, window, center=True, pad_mode="constant", return_complex=True)
    stretched = _phase_vocoder(spec, rate, hop_length)
    out = torch.istft(stretched, n_fft, hop_length, n_fft, window, center=True, length=length)
    return _restore(out.to(x.dtype), sq)


def pitch_ratio(semitones: float, max_den: int = 1024, tol_cents: float = 0.1) -> tuple[int, int]:
    """Rational ``p/q`` ≈ ``2^(semitones/12)`` with ``q <= max_den``.

    Returns the smallest ``q`` whose error is within ``tol_cents`` (else the best one), so the
    resampling kernel stays small (±1 semitone: 89/84; ±2: 55/49; q ≤ 1024 always gives ≤ 0.1
    cent in ±12 semitones) (``F.pitch_shift``'s near-coprime 16000↔14254 Hz kernel is what
    makes it take ~14 s per 10-s clip). See :func:`pitch_error_cents`.
    """
    f = 2.0 ** (float(semitones) / 12.0)
    best: tuple[int, int, float] | None = None
    for q in range(1, max_den + 1):
        p = max(1, round(f * q))
        err = abs(1200.0 * math.log2(p / q / f))
        if best is None or err < best[2] - 1e-12:
            best = (p, q, err)
        if err <= tol_cents:
            break
    assert best is not None
    frac = Fraction(best[0], best[1])
    return frac.numerator, frac.denominator


def pitch_error_cents(semitones: float) -> float:
    """Signed error (cents) of the pitch factor actually applied by :func:`pitch_shift`."""
    p, q = pitch_ratio(semitones)
    return 1200.0 * math.log2(p / q) - 100.0 * float(semitones)


@lru_cache(maxsize=32)
def _resampler(orig: int, new: int, device: str, dtype: torch.dtype) -> T.Resample:
    # resampy "kaiser_best" settings (as in torchaudio's resampling tutorial); kernel is cached.
    return T.Resample(
        orig,
        new,
        resampling_method="sinc_interp_kaiser",
        lowpass_filter_width=64,
        rolloff=0.9475937167399596,
        beta=14.769656459379492,
        dtype=dtype,
    ).to(device)


@perturbation("semitones", "pitch shift (semitones)", 0.0, 2.0)
def pitch_shift(
    waves: torch.Tensor, semitones: float, seed: SeedLike = None, *, n_fft: int = N_FFT, hop_length: int = HOP
) -> torch.Tensor:
    """Shift pitch by ``semitones``, keep duration (librosa's algorithm with a rational ratio).

    As ``librosa.effects.pitch_shift``: time-stretch by ``q/p`` with the phase vocoder, then
    resample from ``p`` to ``q`` (band-limited Kaiser sinc, cached kernel), then crop/zero-pad to
    the input length. ``p/q`` is :func:`pitch_ratio`, within 0.1 cent of ``2^(semitones/12)``
    for any shift in ±12 semitones (see :func:`pitch_error_cents`); the small ``p, q`` (89/84
    for +1 semitone) make the resampler cheap.

    Args:
        waves: ``(batch, samples)`` (or ``(samples,)``) float audio.
        semitones: shift in semitones (positive = up), any real value.

    Returns:
        Same shape, dtype and device.
    """
    x, sq = _as_batch(waves)
    p, q = pitch_ratio(float(semitones))
    if p == q:
        return _restore(x.clone(), sq)
    n = x.shape[-1]
    stretched = time_stretch(x, q / p, n_fft=n_fft, hop_length=hop_length)
    out = _resampler(p, q, str(x.device), x.dtype)(stretched)
    if out.shape[-1] >= n:
        out = out[..., :n]
    else:
        out = torch.nn.functional.pad(out, (0, n - out.shape[-1]))
    return _restore(out.contiguous(), sq)


# --------------------------------------------------------------------------------------------
# level and dynamics
# --------------------------------------------------------------------------------------------
@perturbation("db", "gain (dB)", 0.0, -6.0)
def gain(waves: torch.Tensor, db: float, seed: SeedLike = None, *, clip: bool = False) -> torch.Tensor:
    """Multiply by ``10^(db/20)``: the RMS changes by exactly ``db`` dB.

    Clipping policy: none by default (audio stays float, values may exceed ±1, which is what
    the models see after decoding anyway). ``clip=True`` hard-clips to [-1, 1], as a 16-bit
    export would; the RMS change is then no longer exact.
    """
    x, sq = _as_batch(waves)
    out = x * (10.0 ** (float(db) / 20.0))
    if clip:
        out = out.clamp(-1.0, 1.0)
    return _restore(out, sq)


@perturbation(
    "db", "compression depth below peak (dB, 4:1)", 0.0, 20.0, check=lambda db: "depth must be >= 0 dB" if db < 0 else None
)
def dynamic_range(
    waves: torch.Tensor,
    depth_db: float,
    seed: SeedLike = None,
    *,
    ratio: float = 4.0,
    frame_ms: float = 10.0,
    attack_ms: float = 10.0,
    release_ms: float = 100.0,
    sample_rate: int = SAMPLE_RATE,
) -> torch.Tensor:
    """Downward compressor (feed-forward, RMS detector) with loudness restored.

    Design, per row:

    1. level ``L[f]`` = 10·log10(mean square) of non-overlapping ``frame_ms`` frames (dB);
    2. threshold ``T = max_f L[f] - depth_db`` (relative to the clip's loudest frame, so the
       same level means the same amount of squashing for quiet and loud clips);
    3. static curve: gain reduction ``GR[f] = max(0, L[f] - T)·(1 - 1/ratio)`` dB;
    4. ballistics: one-pole smoothing of ``GR`` over frames, time constant ``attack_ms`` while
       GR rises and ``release_ms`` while it falls;
    5. the frame gains are linearly interpolated to samples and applied, then the whole clip is
       scaled back to its original RMS (make-up gain), so only the dynamics change.

    ``depth_db = 0`` is the identity; larger = stronger compression (the top ``depth_db`` dB of
    the clip's level range is reduced ``ratio``-fold).

    Args:
        waves: ``(batch, samples)`` (or ``(samples,)``) float audio.
        depth_db: threshold depth below the loudest frame, dB (>= 0).
        ratio: compression ratio above the threshold (> 1).

    Returns:
        Same shape, dtype and device; not clipped.
    """
    depth_db = float(depth_db)
    if depth_db < 0:
        raise ValueError(f"dynamic_range depth must be >= 0 dB, got {depth_db}")
    if ratio < 1:
        raise ValueError(f"dynamic_range ratio must be >= 1, got {ratio}")
    x, sq = _as_batch(waves)
    if depth_db == 0 or ratio == 1:
        return _restore(x.clone(), sq)
    b, n = x.shape
    hop = max(1, int(round(frame_ms * sample_rate / 1000)))
    n_frames = -(-n // hop)
    xp = torch.nn.functional.pad(x.double(), (0, n_frames * hop - n))
    power = xp.pow(2).reshape(b, n_frames, hop).sum(-1) / torch.tensor(
        [hop] * (n_frames - 1) + [n - (n_frames - 1) * hop], dtype=torch.float64, device=x.device
    )
    level = 10 * torch.log10(power + 1e-12)
    thresh = level.amax(dim=1, keepdim=True) - depth_db
    gr = (level - thresh).clamp_min(0) * (1 - 1 / ratio)
    a_att = math.exp(-frame_ms / attack_ms) if attack_ms > 0 else 0.0
    a_rel = math.exp(-frame_ms / release_ms) if release_ms > 0 else 0.0
    smooth = torch.empty_like(gr)
    state = gr[:, 0]
    for f in range(n_frames):
        target = gr[:, f]
        coef = torch.where(target > state, a_att, a_rel)
        state = coef * state + (1 - coef) * target
        smooth[:, f] = state
    centres = (torch.arange(n_frames, dtype=torch.float64, device=x.device) + 0.5) * hop
    pos = torch.arange(n, dtype=torch.float64, device=x.device)
    gain_db = _interp(pos, centres, smooth)
    y = x.double() * torch.pow(10.0, -gain_db / 20)
    makeup = torch.sqrt(_power(x) / _power(y).clamp_min(1e-30))
    return _restore((y * makeup).to(x.dtype), sq)


def _interp(x: torch.Tensor, xp: torch.Tensor, fp: torch.Tensor) -> torch.Tensor:
    """``np.interp`` along the last axis: ``x`` (n,), ``xp`` (k,) increasing, ``fp`` (batch, k)."""
    if xp.numel() == 1:
        return fp[:, :1].expand(fp.shape[0], x.numel())
    idx = torch.searchsorted(xp, x).clamp(1, xp.numel() - 1)
    x0, x1 = xp[idx - 1], xp[idx]
    w = ((x - x0) / (x1 - x0)).clamp(0, 1)
    return fp[:, idx - 1] * (1 - w) + fp[:, idx] * w


# --------------------------------------------------------------------------------------------
# SoX compand (reference repo's dynamic range compression)
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CompandPreset:
    """Arguments of a SoX ``compand`` call: times in s, transfer points (in dB, out dB)."""

    name: str
    attack: float
    decay: float
    points: tuple[tuple[float, float], ...]
    gain_db: float = 0.0
    initial_db: float = 0.0
    delay: float = 0.0


# The reference repository's presets (robustness.py, borrowed from MUDA), keyed by its `rate`.
SOX_PRESETS: dict[int, CompandPreset] = {
    1: CompandPreset("radio", 0.01, 1.0, ((-90, -90), (-70, -70), (-60, -20), (0, 0)), -5.0),
    2: CompandPreset(
        "film standard", 0.1, 0.3, ((-90, -90), (-70, -64), (-43, -37), (-31, -31), (-21, -21), (0, -20)), 0, 0, 0.1
    ),
    3: CompandPreset("film light", 0.1, 0.3, ((-90, -90), (-70, -64), (-53, -47), (-41, -41), (-21, -21), (0, -20)), 0, 0, 0.1),
    4: CompandPreset(
        "music standard", 0.1, 0.3, ((-90, -90), (-70, -58), (-55, -43), (-31, -31), (-21, -21), (0, -20)), 0, 0, 0.1
    ),
    5: CompandPreset("music light", 0.1, 0.3, ((-90, -90), (-70, -58), (-65, -53), (-41, -41), (-21, -21), (0, -11)), 0, 0, 0.1),
    6: CompandPreset("speech", 0.1, 0.3, ((-90, -90), (-70, -55), (-50, -35), (-31, -31), (-21, -21), (0, -20)), 0, 0, 0.1),
}


def _sox_coef(time_s: float, sample_rate: int) -> float:
    return 1.0 - math.exp(-1.0 / (sample_rate * time_s)) if time_s > 1.0 / sample_rate else 1.0


def compand_envelope(
    mag: torch.Tensor, attack: float, decay: float, initial: float, sample_rate: int = SAMPLE_RATE, max_step: float = 0.02
) -> torch.Tensor:
    """SoX's "leaky pump" volume ``v[n] = v[n-1] + c·(|x[n]| - v[n-1])`` (c = attack if rising).

    Approximation: ``v`` is advanced block by block, each block of ``B`` samples adding
    ``Σ c_k·(|x_k| - v)`` with ``v`` frozen at the block start and ``c_k`` chosen per sample by
    the sign of ``|x_k| - v``; ``B`` is the largest with ``B·max(c) <= max_step`` (32 samples for
    the 0.1 s/0.3 s presets at 16 kHz). The per-sample ``v`` is linearly interpolated between
    block ends. Relative error of each update is about ``B·c/2`` (1 %), i.e. far below 0.1 dB.

    Args:
        mag: ``(batch, samples)`` ``|x|``.

    Returns:
        ``(batch, samples)`` envelope after each sample, float64.
    """
    a, d = _sox_coef(attack, sample_rate), _sox_coef(decay, sample_rate)
    b, n = mag.shape
    block = max(1, int(max_step / max(a, d)))
    n_blocks = -(-n // block)
    s = mag.double()
    v = torch.full((b,), float(initial), dtype=torch.float64, device=mag.device)
    ends = torch.empty(b, n_blocks + 1, dtype=torch.float64, device=mag.device)
    ends[:, 0] = v
    for k in range(n_blocks):
        diff = s[:, k * block : (k + 1) * block] - v[:, None]
        v = v + torch.where(diff > 0, a * diff, d * diff).sum(-1)
        ends[:, k + 1] = v
    knots = torch.clamp(torch.arange(n_blocks + 1, dtype=torch.float64, device=mag.device) * block, max=n)
    pos = torch.arange(1, n + 1, dtype=torch.float64, device=mag.device)  # v after sample n-1 ↔ position n
    return _interp(pos, knots, ends)


def sox_compand(waves: torch.Tensor, preset: CompandPreset, sample_rate: int = SAMPLE_RATE, clip: bool = True) -> torch.Tensor:
    """Approximate SoX ``compand`` (mono, one attack/decay pair) in torch.

    Exact parts: the attack/decay coefficients ``1 - exp(-1/(sr·t))``, the initial volume,
    the transfer function (gain in dB interpolated linearly between the points, constant below
    the first point and beyond the last, plus ``gain_db``), the delay (the gain computed from the
    envelope ``delay`` s later is applied to the current sample; the last ``delay`` s use the
    final envelope, as SoX's drain does) and the output clipping to ±1.
    Approximations: the envelope update (see :func:`compand_envelope`), SoX's 0.01-dB soft knee
    (ignored), and no 16-bit quantisation of the input (the reference wrote a PCM-16 wav first).
    """
    x, sq = _as_batch(waves)
    n = x.shape[-1]
    env = compand_envelope(x.abs(), preset.attack, preset.decay, 10 ** (preset.initial_db / 20), sample_rate)
    delay = int(preset.delay * sample_rate)
    if delay:
        idx = torch.clamp(torch.arange(n, device=x.device) + delay, max=n - 1)
        env = env[:, idx]
    xin = torch.tensor([p[0] for p in preset.points], dtype=torch.float64, device=x.device)
    gdb = torch.tensor([[p[1] - p[0] for p in preset.points]], dtype=torch.float64, device=x.device)
    level = 20 * torch.log10(env.clamp_min(1e-300)).reshape(-1)
    g = _interp(level, xin, gdb).reshape(env.shape) + preset.gain_db
    y = x.double() * torch.pow(10.0, g / 20)
    if clip:
        y = y.clamp(-1.0, 1.0)
    return _restore(y.to(x.dtype), sq)


@perturbation(
    "preset",
    "SoX compand preset (4 music, 6 speech)",
    None,
    4,
    check=lambda p: None if p == round(p) and int(p) in SOX_PRESETS else f"preset must be one of {sorted(SOX_PRESETS)}",
)
def ref_dynamic_range(waves: torch.Tensor, preset: float, seed: SeedLike = None) -> torch.Tensor:
    """Reference-repo dynamic range compression: SoX ``compand`` preset ``preset``.

    ``preset`` is the reference's ``rate``: 1 radio, 2 film standard, 3 film light, 4 music
    standard, 5 music light, 6 speech (the reference evaluated 4 and 6). See :func:`sox_compand`
    for what is approximated.
    """
    key = int(round(float(preset)))
    if key != float(preset) or key not in SOX_PRESETS:
        raise ValueError(f"ref_dynamic_range preset must be one of {sorted(SOX_PRESETS)}, got {preset}")
    return sox_compand(waves, SOX_PRESETS[key])


@perturbation("rate", "stretch rate (x, >1 = faster)", 1.0, 1.25, check=lambda rate: "rate must be > 0" if rate <= 0 else None)
def ref_time_stretch(waves: torch.Tensor, rate: float, seed: SeedLike = None) -> torch.Tensor:
    """Reference-repo time stretch: ``librosa.effects.time_stretch(x, rate)`` (rate 2^-0.5 ... 2^0.5).

    Same algorithm and parameters as :func:`time_stretch` (n_fft 2048, hop 512, zero-padded
    centred frames, output ``round(n / rate)`` samples).
    """
    return time_stretch(waves, rate)


@perturbation("semitones", "pitch shift (semitones)", 0.0, 1.0)
def ref_pitch_shift(waves: torch.Tensor, semitones: float, seed: SeedLike = None) -> torch.Tensor:
    """Reference-repo pitch shift: ``librosa.effects.pitch_shift(x, sr=16000, n_steps)`` (−1 ... +1).

    Same stretch-then-resample algorithm as :func:`pitch_shift`; differences from librosa: the
    ratio is rational (≤ 0.1 cent off) and the resampler is a Kaiser sinc (librosa: soxr_hq).
    """
    return pitch_shift(waves, semitones)


def check_level(name: str, level: float) -> None:
    """Raise ``ValueError`` if ``name`` is unknown or ``level`` is out of its range (``INFO[name].check``)."""
    if name not in PERTURBATIONS:
        raise ValueError(f"unknown perturbation {name!r}; allowed: {', '.join(PERTURBATIONS)}")
    level = float(level)
    if not math.isfinite(level):
        raise ValueError(f"{name} level must be finite, got {level}")
    check = INFO[name].check
    problem = check(level) if check is not None else None
    if problem:
        raise ValueError(f"{name} {problem}, got {level}")


def apply(
    name: str, waves: torch.Tensor | np.ndarray, level: float, seed: SeedLike = None, noise: NoiseBank | None = None
) -> torch.Tensor | np.ndarray:
    """Apply perturbation ``name`` at ``level``.

    Args:
        name: a key of :data:`PERTURBATIONS`.
        waves: ``(batch, samples)`` or ``(samples,)`` tensor (any device) or NumPy array.
        level: amount in ``INFO[name].unit``.
        seed: int, one int per row, or None (see module docstring).
        noise: noise bank for ``background_noise`` (ignored by the others).

    Returns:
        The perturbed audio, same type (tensor on the same device, or float32 NumPy array) and
        rank as ``waves``. Only ``time_stretch``/``ref_time_stretch`` change the length.
    """
    check_level(name, level)
    fn = PERTURBATIONS[name]
    is_numpy = not isinstance(waves, torch.Tensor)
    x = torch.from_numpy(np.ascontiguousarray(waves, dtype=np.float32)) if is_numpy else waves
    out = fn(x, float(level), seed, noise=noise) if INFO[name].needs_noise else fn(x, float(level), seed)
    return out.cpu().numpy() if is_numpy else out
