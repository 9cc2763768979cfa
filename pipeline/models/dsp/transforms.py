"""Time-frequency transforms used by the front-ends (and by the feature cache).

Small ``nn.Module``\\ s in torchaudio style: each holds its parameters and constant buffers
(windows, filterbanks) and delegates the math to ``torchaudio.functional`` or to the small
functions below. Every module accepts a waveform ``(..., samples)`` (float32, 16 kHz by
default) and returns ``(..., bins, frames)``; the harmonic filterbank returns
``(..., harmonics, bands, frames)``.

Conventions shared by every STFT-based transform (spec section 1.1):

- STFT: ``n_fft`` 512, window 512 (periodic Hann), hop 256, centred with reflect padding
  -> ``n_fft // 2 + 1`` bins and ``1 + samples // hop`` frames.
- mel: HTK scale, 0 Hz to ``sample_rate / 2``, no filter-area normalisation.
- dB: ``10 * log10(max(P, 1e-10))`` for a power ``P`` (reference 1, no top-dB clip).

Constant buffers are registered with ``persistent=False``: they are rebuilt from the
constructor arguments and never stored in checkpoints.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import torch
import torchaudio.functional as AF
from torch import nn

from pipeline.models.dsp.mel import MelSettings, mel_filterbank

logger = logging.getLogger(__name__)

__all__ = [
    "A4_HZ",
    "C1_MIDI",
    "ConstantQTransform",
    "HarmonicFilterbank",
    "LEARN_BW_MODES",
    "LogMelSpectrogram",
    "LogSpectrogram",
    "MFCC",
    "Spectrogram",
    "cqt_frequencies",
    "erb_bandwidth",
    "harmonic_pitch_grid",
    "hz_to_midi",
    "midi_to_hz",
    "power_to_db",
    "stft_bin_frequencies",
    "triangular_filterbank",
]

A4_HZ = 440.0
C1_MIDI = 24
AMIN_POWER = 1e-10
"""Floor of a power value before the log: -100 dB."""
HANN_BANDWIDTH = 1.50018310546875
"""Equivalent noise bandwidth of the Hann window in bins (as ``librosa.filters.window_bandwidth``)."""


# --------------------------------------------------------------------------- helpers


def power_to_db(power: torch.Tensor, amin: float = AMIN_POWER) -> torch.Tensor:
    """``10 * log10(max(power, amin))``: power to dB, reference 1, no top-dB clip.

    Args:
        power: non-negative tensor of any shape (a power spectrogram).
        amin: floor applied before the log (default 1e-10 -> -100 dB).

    Returns:
        Tensor of the same shape, in dB.
    """
    return AF.amplitude_to_DB(power, multiplier=10.0, amin=amin, db_multiplier=0.0, top_db=None)


def hz_to_midi(hz: np.ndarray | float) -> np.ndarray:
    """Frequency in Hz -> (fractional) MIDI note number, A4 = 440 Hz = 69."""
    return 69.0 + 12.0 * np.log2(np.asarray(hz, dtype=np.float64) / A4_HZ)


def midi_to_hz(midi: np.ndarray | float) -> np.ndarray:
    """(Fractional) MIDI note number -> frequency in Hz."""
    return A4_HZ * 2.0 ** ((np.asarray(midi, dtype=np.float64) - 69.0) / 12.0)


def stft_bin_frequencies(sample_rate: int, n_fft: int) -> torch.Tensor:
    """Centre frequencies of the ``n_fft // 2 + 1`` one-sided STFT bins, 0 .. sample_rate/2 Hz."""
    return torch.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1, dtype=torch.float64)


def _check_positive(**values: float) -> None:
    for name, value in values.items():
        if value is None or value <= 0:
            raise ValueError(f"{name} must be > 0, got {value!r}")


# --------------------------------------------------------------------------- STFT family


class Spectrogram(nn.Module):
    """``|STFT|^power`` with a periodic Hann window, centred reflect padding.

    Args:
        n_fft: FFT size (default 512).
        hop_length: hop in samples (default 256).
        win_length: window length (default ``n_fft``).
        power: 2.0 for power (default), 1.0 for magnitude.

    Shape:
        ``(..., samples)`` -> ``(..., n_fft // 2 + 1, 1 + samples // hop_length)``.
    """

    def __init__(self, n_fft: int = 512, hop_length: int = 256, win_length: int | None = None, power: float = 2.0) -> None:
        super().__init__()
        win_length = n_fft if win_length is None else win_length
        _check_positive(n_fft=n_fft, hop_length=hop_length, win_length=win_length, power=power)
        if win_length > n_fft:
            raise ValueError(f"win_length ({win_length}) must be <= n_fft ({n_fft})")
        self.n_fft = int(n_fft)
        self.hop_length = int(hop_length)
        self.win_length = int(win_length)
        self.power = float(power)
        self.register_buffer("window", torch.hann_window(self.win_length, periodic=True), persistent=False)

    @property
    def n_bins(self) -> int:
        return self.n_fft // 2 + 1

    def n_frames(self, n_samples: int) -> int:
        """Frames produced for ``n_samples`` input samples (centred STFT)."""
        return 1 + n_samples // self.hop_length

    def params(self) -> dict[str, Any]:
        """JSON-able description of every parameter (used for feature-cache keys)."""
        return {
            "n_fft": self.n_fft,
            "hop_length": self.hop_length,
            "win_length": self.win_length,
            "window": "hann_periodic",
            "center": True,
            "pad_mode": "reflect",
            "power": self.power,
        }

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return AF.spectrogram(
            wave,
            pad=0,
            window=self.window,
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            win_length=self.win_length,
            power=self.power,
            normalized=False,
            center=True,
            pad_mode="reflect",
            onesided=True,
        )

    def extra_repr(self) -> str:
        return f"n_fft={self.n_fft}, hop_length={self.hop_length}, win_length={self.win_length}, power={self.power}"


class LogSpectrogram(nn.Module):
    """Log-magnitude STFT: ``10 log10(max(|STFT|^2, 1e-10))`` (= 20 log10 |STFT|).

    Args:
        n_fft, hop_length, win_length: as :class:`Spectrogram`.

    Shape:
        ``(..., samples)`` -> ``(..., n_fft // 2 + 1, frames)`` in dB.
    """

    def __init__(self, n_fft: int = 512, hop_length: int = 256, win_length: int | None = None) -> None:
        super().__init__()
        self.spectrogram = Spectrogram(n_fft, hop_length, win_length, power=2.0)

    @property
    def n_bins(self) -> int:
        return self.spectrogram.n_bins

    def n_frames(self, n_samples: int) -> int:
        return self.spectrogram.n_frames(n_samples)

    def params(self) -> dict[str, Any]:
        return {**self.spectrogram.params(), "db": {"multiplier": 10.0, "amin": AMIN_POWER, "top_db": None}}

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return power_to_db(self.spectrogram(wave))


class LogMelSpectrogram(nn.Module):
    """Log-mel spectrogram in dB (docs/spec.md §1.1): HTK mel, no area norm, no top-dB.

    Args:
        settings: the mel settings (:class:`~pipeline.models.dsp.mel.MelSettings`: sample
            rate, FFT size, hop, bands, band edges, power; 96 bands by default). With power 2.0
            the mel is of the power spectrum, with 1.0 of the magnitude spectrum; either way the
            output is ``(20 / power) * log10(max(mel, 1e-10 ** (power/2)))``, i.e. dB with a
            -100 dB floor.

    Shape:
        ``(..., samples)`` -> ``(..., n_mels, 1 + samples // hop_length)``.
    """

    def __init__(self, settings: MelSettings = MelSettings()) -> None:
        super().__init__()
        sample_rate, n_mels, f_min, power = settings.sample_rate, settings.n_mels, settings.f_min, settings.power
        f_max = sample_rate / 2.0 if settings.f_max is None else float(settings.f_max)
        _check_positive(sample_rate=sample_rate, n_mels=n_mels, f_max=f_max)
        if not 0.0 <= f_min < f_max <= sample_rate / 2.0:
            raise ValueError(f"need 0 <= f_min < f_max <= sample_rate/2, got f_min={f_min}, f_max={f_max}")
        if power not in (1.0, 2.0):
            raise ValueError(f"power must be 1.0 (magnitude) or 2.0 (power), got {power}")
        self.sample_rate = int(sample_rate)
        self.n_mels = int(n_mels)
        self.f_min = float(f_min)
        self.f_max = f_max
        self.spectrogram = Spectrogram(settings.n_fft, settings.hop_length, power=power)
        fb = mel_filterbank(sample_rate, settings.n_fft, n_mels, f_min, f_max).float()
        self.register_buffer("mel_fb", fb, persistent=False)

    @property
    def n_bins(self) -> int:
        return self.n_mels

    def n_frames(self, n_samples: int) -> int:
        return self.spectrogram.n_frames(n_samples)

    def params(self) -> dict[str, Any]:
        power = self.spectrogram.power
        return {
            **self.spectrogram.params(),
            "sample_rate": self.sample_rate,
            "n_mels": self.n_mels,
            "f_min": self.f_min,
            "f_max": self.f_max,
            "mel_scale": "htk",
            "mel_norm": None,
            "db": {"multiplier": 20.0 / power, "amin": AMIN_POWER ** (power / 2.0), "top_db": None},
        }

    def mel(self, wave: torch.Tensor) -> torch.Tensor:
        """Linear-amplitude mel spectrogram ``(..., n_mels, frames)``."""
        spec = self.spectrogram(wave)
        return torch.matmul(spec.transpose(-1, -2), self.mel_fb).transpose(-1, -2)

    def to_db(self, mel: torch.Tensor) -> torch.Tensor:
        """A linear-amplitude mel spectrogram in dB (the floor and multiplier of :meth:`params`)."""
        power = self.spectrogram.power
        return AF.amplitude_to_DB(mel, multiplier=20.0 / power, amin=AMIN_POWER ** (power / 2.0), db_multiplier=0.0, top_db=None)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.to_db(self.mel(wave))


class MFCC(nn.Module):
    """MFCCs: type-II orthonormal DCT (torchaudio's ``create_dct``) of the dB log-mel.

    Same mel as :class:`LogMelSpectrogram` and, unlike ``torchaudio.transforms.MFCC``, no
    80-dB top clip before the DCT (so the coefficients are the DCT of exactly the log-mel
    the mel front-ends see).

    Args:
        n_mfcc: number of coefficients kept (default 40, must be <= n_mels).
        settings: the mel settings, as :class:`LogMelSpectrogram` (default 128 bands).

    Shape:
        ``(..., samples)`` -> ``(..., n_mfcc, frames)``.
    """

    def __init__(self, n_mfcc: int = 40, settings: MelSettings = MelSettings(n_mels=128)) -> None:
        super().__init__()
        if not 1 <= n_mfcc <= settings.n_mels:
            raise ValueError(f"n_mfcc must be in [1, n_mels={settings.n_mels}], got {n_mfcc}")
        self.n_mfcc = int(n_mfcc)
        self.log_mel = LogMelSpectrogram(settings)
        self.register_buffer("dct", AF.create_dct(n_mfcc, settings.n_mels, norm="ortho"), persistent=False)

    @property
    def n_bins(self) -> int:
        return self.n_mfcc

    def n_frames(self, n_samples: int) -> int:
        return self.log_mel.n_frames(n_samples)

    def params(self) -> dict[str, Any]:
        return {**self.log_mel.params(), "n_mfcc": self.n_mfcc, "dct": "II-ortho"}

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return torch.matmul(self.log_mel(wave).transpose(-1, -2), self.dct).transpose(-1, -2)


# --------------------------------------------------------------------------- constant-Q


def cqt_frequencies(n_bins: int, f_min: float, bins_per_octave: int) -> np.ndarray:
    """Geometrically spaced centre frequencies ``f_min * 2 ** (k / bins_per_octave)``."""
    return f_min * 2.0 ** (np.arange(n_bins, dtype=np.float64) / bins_per_octave)


class ConstantQTransform(nn.Module):
    """Constant-Q magnitude by recursive octave decimation (Schoerkhuber et al. 2014).

    Octaves are processed from the top down. Each octave correlates the zero-padded signal
    with complex Hann-windowed kernels at hop ``hop / 2^d``, where the signal has been
    decimated ``d`` times by 2 (``torchaudio.functional.resample`` 2 -> 1, Kaiser sinc,
    width 16, roll-off 0.8); ``d`` grows by one per octave while the hop stays an integer
    (at most the number of factors 2 in ``hop_length``), after which the kernels grow
    instead - the same scheme as ``librosa.cqt``. Kernel design and scaling follow
    ``librosa.cqt`` (v0.11) so magnitudes are comparable: relative bandwidth
    ``alpha = (2^(2/b) - 1) / (2^(2/b) + 1)``, ``Q = filter_scale / alpha``, kernel length
    ``Q * sr_d / f``, L1-normalised, response scaled by ``sqrt(Q * sr / f)``
    ("scale=True"). Padding is zeros (librosa's default ``pad_mode="constant"``). Parity
    with ``librosa.cqt`` is tested in ``tests/test_transforms.py``.

    Args:
        sample_rate: Hz (default 16,000).
        hop_length: hop in samples (default 256).
        f_min: lowest centre frequency in Hz (default C1 = 32.70 Hz).
        n_bins: number of bins (default 84 = 7 octaves, C1..B7, top 3,951 Hz).
        bins_per_octave: default 12.
        filter_scale: kernel length multiplier (default 1).

    Shape:
        ``(..., samples)`` -> magnitude ``(..., n_bins, 1 + samples // hop_length)``,
        bins in ascending frequency.
    """

    DECIMATION_ROLLOFF = 0.8

    def __init__(
        self,
        sample_rate: int = 16_000,
        hop_length: int = 256,
        f_min: float = float(midi_to_hz(C1_MIDI)),
        n_bins: int = 84,
        bins_per_octave: int = 12,
        filter_scale: float = 1.0,
    ) -> None:
        super().__init__()
        _check_positive(
            sample_rate=sample_rate,
            hop_length=hop_length,
            f_min=f_min,
            n_bins=n_bins,
            bins_per_octave=bins_per_octave,
            filter_scale=filter_scale,
        )
        self.sample_rate = int(sample_rate)
        self.hop_length = int(hop_length)
        self.f_min = float(f_min)
        self.n_bins = int(n_bins)
        self.bins_per_octave = int(bins_per_octave)
        self.filter_scale = float(filter_scale)
        self.n_octaves = math.ceil(n_bins / bins_per_octave)
        freqs = cqt_frequencies(n_bins, f_min, bins_per_octave)
        alpha = (2.0 ** (2.0 / bins_per_octave) - 1.0) / (2.0 ** (2.0 / bins_per_octave) + 1.0)
        q = filter_scale / alpha
        cutoff = freqs[-1] * (1.0 + 0.5 * HANN_BANDWIDTH / q)  # librosa's filter_cutoff rule
        limit = sample_rate / 2.0 * (self.DECIMATION_ROLLOFF if self.n_octaves > 1 else 1.0)
        if cutoff > limit:
            raise ValueError(
                f"CQT top bin {freqs[-1]:.0f} Hz (filter cutoff {cutoff:.0f} Hz) is too close to the Nyquist "
                f"frequency {sample_rate / 2:.0f} Hz (limit {limit:.0f} Hz); reduce n_bins or f_min"
            )
        twos = (hop_length & -hop_length).bit_length() - 1  # factors 2 in the hop
        self.decimations = [min(octave, twos) for octave in range(self.n_octaves)]
        for octave in range(self.n_octaves):
            stop = n_bins - octave * bins_per_octave
            octave_freqs = freqs[max(0, stop - bins_per_octave) : stop]
            rate = sample_rate / 2 ** self.decimations[octave]
            bank = self._kernel_bank(octave_freqs, q, rate, sample_rate)
            self.register_buffer(f"kernels_{octave}", bank, persistent=False)

    @staticmethod
    def _kernel_bank(freqs: np.ndarray, q: float, rate: float, sample_rate: int) -> torch.Tensor:
        """Real and imaginary kernels ``(2 * len(freqs), 1, width)``, centred, width odd.

        Kernel ``k`` is ``sqrt(Q sr / f) * hann * exp(2 pi i f t / rate) / sum(hann)`` with
        ``Q * rate / f`` taps.
        """
        kernels = []
        for f in freqs:
            length = q * rate / f
            t = np.arange(-length // 2, length // 2, dtype=np.float64)
            window = np.hanning(len(t) + 1)[:-1]  # periodic Hann
            kernel = window * np.exp(2j * np.pi * f * t / rate) / window.sum()
            kernels.append(kernel * np.sqrt(q * sample_rate / f))
        width = max(len(k) for k in kernels)
        width += 1 - width % 2
        bank = np.zeros((2 * len(kernels), 1, width), dtype=np.float64)
        for i, kernel in enumerate(kernels):
            start = (width - len(kernel)) // 2
            bank[i, 0, start : start + len(kernel)] = kernel.real
            bank[len(kernels) + i, 0, start : start + len(kernel)] = kernel.imag
        return torch.from_numpy(bank).float()

    def n_frames(self, n_samples: int) -> int:
        return 1 + n_samples // self.hop_length

    def params(self) -> dict[str, Any]:
        return {
            "sample_rate": self.sample_rate,
            "hop_length": self.hop_length,
            "f_min": self.f_min,
            "n_bins": self.n_bins,
            "bins_per_octave": self.bins_per_octave,
            "filter_scale": self.filter_scale,
            "window": "hann",
            "pad_mode": "constant",
            "decimation": f"torchaudio.resample kaiser w16 rolloff{self.DECIMATION_ROLLOFF}",
        }

    @staticmethod
    def _magnitude(signal: torch.Tensor, bank: torch.Tensor, hop: int, n_frames: int) -> torch.Tensor:
        """``(batch, n)`` -> ``|response|`` ``(batch, bank.shape[0] // 2, n_frames)``; frame t centred at ``t hop``."""
        half = bank.shape[-1] // 2
        padded = nn.functional.pad(signal.unsqueeze(1), (half, half + hop))
        response = nn.functional.conv1d(padded, bank, stride=hop)[..., :n_frames]
        real, imag = response.chunk(2, dim=1)
        return torch.sqrt(real.square() + imag.square())

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        shape = wave.shape
        signal = wave.reshape(-1, shape[-1])
        n_frames = self.n_frames(shape[-1])
        octaves, done = [], 0
        for octave, decimation in enumerate(self.decimations):
            for _ in range(decimation - done):
                signal = AF.resample(
                    signal, 2, 1, lowpass_filter_width=16, rolloff=self.DECIMATION_ROLLOFF, resampling_method="sinc_interp_kaiser"
                )
            done = decimation
            bank = getattr(self, f"kernels_{octave}")
            octaves.append(self._magnitude(signal, bank, self.hop_length // 2**decimation, n_frames))
        cqt = torch.cat(octaves[::-1], dim=1)
        return cqt.reshape(*shape[:-1], self.n_bins, n_frames)

    def extra_repr(self) -> str:
        return (
            f"sample_rate={self.sample_rate}, hop_length={self.hop_length}, f_min={self.f_min:.2f}, "
            f"n_bins={self.n_bins}, bins_per_octave={self.bins_per_octave}"
        )


# --------------------------------------------------------------------------- harmonic filterbank

LEARN_BW_MODES = ("only_Q", "fix", "full")
ERB_ALPHA = 0.1079
ERB_BETA = 24.7


def harmonic_pitch_grid(sample_rate: int = 16_000, n_harmonics: int = 6, semitone_scale: int = 2) -> np.ndarray:
    """Fundamental frequencies of the harmonic filterbank (docs/spec.md §3.1), in Hz.

    Semitone grid from C1 (MIDI 24) up to, excluding, the note nearest ``sample_rate /
    (2 n_harmonics)``, ``semitone_scale`` bands per semitone. For 16 kHz, 6 harmonics, 2
    bands/semitone: 128 bands, 32.70 .. 1280.97 Hz in 50-cent steps.

    Returns:
        ``(B,)`` float64 array, ``B = (m_hi - m_lo) * semitone_scale``.
    """
    _check_positive(sample_rate=sample_rate, n_harmonics=n_harmonics, semitone_scale=semitone_scale)
    high_midi = int(np.round(hz_to_midi(sample_rate / (2.0 * n_harmonics))))
    n_bands = (high_midi - C1_MIDI) * semitone_scale
    if n_bands < 1:
        raise ValueError(f"n_harmonics={n_harmonics} leaves no band above C1 at {sample_rate} Hz")
    return midi_to_hz(C1_MIDI + np.arange(n_bands) / semitone_scale)


def erb_bandwidth(
    freq: torch.Tensor, q: torch.Tensor | float, alpha: torch.Tensor | float = ERB_ALPHA, beta: torch.Tensor | float = ERB_BETA
) -> torch.Tensor:
    """ERB-form bandwidth ``(alpha * f + beta) / Q`` in Hz (Glasberg-Moore ERB at Q = 1)."""
    return (alpha * freq + beta) / q


def triangular_filterbank(bin_freqs: torch.Tensor, centers: torch.Tensor, bandwidths: torch.Tensor) -> torch.Tensor:
    """Unnormalised triangles: 1 at the centre, 0 at ``centre +- bandwidth / 2``.

    ``w(f_k) = max(0, min(1 + 2 (f_k - f_c) / BW, 1 - 2 (f_k - f_c) / BW))``.

    Args:
        bin_freqs: ``(K,)`` STFT bin frequencies in Hz.
        centers: ``(M,)`` filter centres in Hz.
        bandwidths: ``(M,)`` full support widths in Hz.

    Returns:
        ``(K, M)`` filter matrix (differentiable w.r.t. ``centers`` and ``bandwidths``).
    """
    rel = 2.0 * (bin_freqs.unsqueeze(1) - centers.unsqueeze(0)) / bandwidths.unsqueeze(0)
    return torch.clamp(torch.minimum(1.0 + rel, 1.0 - rel), min=0.0)


class HarmonicFilterbank(nn.Module):
    """Data-driven harmonic filterbank (Won et al., ICASSP 2020; spec section 3).

    ``|STFT|^2`` ``(K, T)`` -> ``W^T S`` with W the ``K x (H*B)`` triangular filters centred
    at ``h * f0_j`` (harmonic-major: all B bands of h=1, then h=2, ...) with ERB-form
    bandwidth ``(alpha f + beta) / Q`` -> reshape ``(H, B, T)`` -> dB. W is rebuilt from the
    parameters on every forward pass, so gradients reach Q (and f0 when learnt).

    Args:
        sample_rate: Hz (default 16,000).
        n_fft: FFT size (default 512 -> 257 bins, 31.25 Hz apart).
        hop_length: hop (default 256).
        n_harmonics: H (default 6).
        semitone_scale: bands per semitone s (default 2).
        learn_bw: ``"only_Q"`` (default; one trainable scalar Q shared by all filters, as
            the released code), ``"fix"`` (Q constant, no trainable parameter) or ``"full"``
            (alpha, beta and Q trainable, an earlier option of the reference code).
        learn_f0: if True the B fundamentals are trainable, parametrised as
            ``log f0_j`` (positive, scale-free steps); harmonics stay tied at ``h * f0_j``.
        bw_q: initial Q (default 1.0).
        bw_floor: if True, floor every bandwidth at one STFT bin spacing so no filter is
            empty (default False = faithful: at Q = 1 one of 768 filters catches no bin).

    Shape:
        ``(..., samples)`` -> ``(..., H, B, 1 + samples // hop_length)`` in dB.
    """

    def __init__(
        self,
        sample_rate: int = 16_000,
        n_fft: int = 512,
        hop_length: int = 256,
        n_harmonics: int = 6,
        semitone_scale: int = 2,
        learn_bw: str = "only_Q",
        learn_f0: bool = False,
        bw_q: float = 1.0,
        bw_floor: bool = False,
    ) -> None:
        super().__init__()
        if learn_bw not in LEARN_BW_MODES:
            raise ValueError(f"learn_bw must be one of {LEARN_BW_MODES}, got {learn_bw!r}")
        if not isinstance(learn_f0, bool) or not isinstance(bw_floor, bool):
            raise ValueError(f"learn_f0 and bw_floor must be booleans, got {learn_f0!r}, {bw_floor!r}")
        for name, value in {"n_harmonics": n_harmonics, "semitone_scale": semitone_scale}.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        _check_positive(bw_q=bw_q)
        self.sample_rate = int(sample_rate)
        self.n_harmonics = int(n_harmonics)
        self.semitone_scale = int(semitone_scale)
        self.learn_bw = learn_bw
        self.learn_f0 = learn_f0
        self.bw_floor = bw_floor
        self.spectrogram = Spectrogram(n_fft, hop_length, power=2.0)
        fundamentals = harmonic_pitch_grid(sample_rate, n_harmonics, semitone_scale)
        self.n_bands = len(fundamentals)
        if fundamentals[-1] * n_harmonics > sample_rate / 2.0:
            raise ValueError("the highest harmonic centre exceeds the Nyquist frequency")
        self.bin_spacing = sample_rate / 2.0 / (n_fft // 2)
        self.register_buffer("bin_freqs", stft_bin_frequencies(sample_rate, n_fft).float(), persistent=False)
        self.register_buffer("harmonics", torch.arange(1, n_harmonics + 1, dtype=torch.float32), persistent=False)
        log_f0 = torch.log(torch.from_numpy(fundamentals)).float()
        if learn_f0:
            self.log_f0 = nn.Parameter(log_f0)
        else:
            self.register_buffer("log_f0", log_f0, persistent=False)
        self.bw_q: torch.Tensor
        self.bw_alpha: torch.Tensor
        self.bw_beta: torch.Tensor
        q = torch.tensor(float(bw_q))
        if learn_bw == "fix":
            self.register_buffer("bw_q", q, persistent=False)
        else:
            self.bw_q = nn.Parameter(q)
        if learn_bw == "full":
            self.bw_alpha = nn.Parameter(torch.tensor(ERB_ALPHA))
            self.bw_beta = nn.Parameter(torch.tensor(ERB_BETA))
        else:
            self.register_buffer("bw_alpha", torch.tensor(ERB_ALPHA), persistent=False)
            self.register_buffer("bw_beta", torch.tensor(ERB_BETA), persistent=False)

    @property
    def n_bins(self) -> int:
        """Bands per harmonic (B)."""
        return self.n_bands

    def n_frames(self, n_samples: int) -> int:
        return self.spectrogram.n_frames(n_samples)

    def fundamentals(self) -> torch.Tensor:
        """Current fundamentals ``f0_j`` in Hz, ``(B,)``."""
        return torch.exp(self.log_f0)

    def center_frequencies(self) -> torch.Tensor:
        """Filter centres ``h * f0_j``, harmonic-major, ``(H * B,)`` in Hz."""
        return (self.harmonics.unsqueeze(1) * self.fundamentals().unsqueeze(0)).reshape(-1)

    def bandwidths(self, centers: torch.Tensor | None = None) -> torch.Tensor:
        """ERB-form bandwidths ``(alpha f + beta) / Q`` of the filters, ``(H * B,)`` in Hz."""
        centers = self.center_frequencies() if centers is None else centers
        bw = erb_bandwidth(centers, self.bw_q, self.bw_alpha, self.bw_beta)
        return torch.clamp(bw, min=self.bin_spacing) if self.bw_floor else bw

    def filterbank(self) -> torch.Tensor:
        """The current filter matrix W, ``(n_fft // 2 + 1, H * B)``."""
        centers = self.center_frequencies()
        return triangular_filterbank(self.bin_freqs, centers, self.bandwidths(centers))

    def params(self) -> dict[str, Any]:
        return {
            **self.spectrogram.params(),
            "sample_rate": self.sample_rate,
            "n_harmonics": self.n_harmonics,
            "semitone_scale": self.semitone_scale,
            "learn_bw": self.learn_bw,
            "learn_f0": self.learn_f0,
            "bw_floor": self.bw_floor,
        }

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        spec = self.spectrogram(wave)  # (..., K, T)
        filtered = torch.matmul(spec.transpose(-1, -2), self.filterbank()).transpose(-1, -2)  # (..., H*B, T)
        filtered = filtered.reshape(*filtered.shape[:-2], self.n_harmonics, self.n_bands, filtered.shape[-1])
        return power_to_db(filtered)

    def extra_repr(self) -> str:
        return (
            f"n_harmonics={self.n_harmonics}, n_bands={self.n_bands}, semitone_scale={self.semitone_scale}, "
            f"learn_bw={self.learn_bw!r}, learn_f0={self.learn_f0}, bw_floor={self.bw_floor}"
        )
