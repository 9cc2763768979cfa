"""Front-ends: waveform ``(batch, samples)`` -> features for a back-end.

=========  ==============================================  ===========
name       output                                          cacheable
=========  ==============================================  ===========
mel        log-mel dB ``(batch, 1, n_mels, frames)``       yes
linear     STFT magnitude ``(batch, 1, 257, frames)``      yes
log        log-magnitude STFT dB ``(batch, 1, 257, T)``    yes
cqt        constant-Q dB ``(batch, 1, 84, frames)``        yes
mfcc       MFCC ``(batch, 1, n_mfcc, frames)``             yes
harmonic   harmonic tensor dB ``(batch, H, B, frames)``    no (trainable)
raw        waveform ``(batch, 1, samples)``                no
=========  ==============================================  ===========
"""

from types import MappingProxyType

from pipeline.models.frontends.harmonic import HarmonicFrontend
from pipeline.models.frontends.raw import RawFrontend
from pipeline.models.frontends.spectral import CQTFrontend, LinearFrontend, LogFrontend, MelFrontend, MFCCFrontend

FRONTENDS = MappingProxyType(
    {
        cls.name: cls
        for cls in (MelFrontend, LinearFrontend, LogFrontend, CQTFrontend, MFCCFrontend, HarmonicFrontend, RawFrontend)
    }
)
"""Front-end classes by name (read-only)."""

__all__ = [
    "FRONTENDS",
    "CQTFrontend",
    "HarmonicFrontend",
    "LinearFrontend",
    "LogFrontend",
    "MFCCFrontend",
    "MelFrontend",
    "RawFrontend",
]
