"""Front-ends: waveform ``(batch, samples)`` -> features for a back-end.

=============  ===================================================  ===============
name           output                                               cacheable
=============  ===================================================  ===============
mel            log-mel dB ``(batch, 1, n_mels, frames)``            yes
linear         STFT magnitude ``(batch, 1, 257, frames)``           yes
log            log-magnitude STFT dB ``(batch, 1, 257, frames)``    yes
cqt            constant-Q dB ``(batch, 1, 84, frames)``             yes
mfcc           MFCC ``(batch, 1, n_mfcc, frames)``                  yes
harmonic       harmonic tensor dB ``(batch, H, B, frames)``         no (trainable)
raw            waveform ``(batch, 1, samples)``                     no
leaf           sPCEN of Gabor energies ``(batch, 1, 40, frames)``   no (trainable)
sincnet        normed sinc envelopes ``(batch, 1, 80, frames)``     no (trainable)
pcen           PCEN of mel energies ``(batch, 1, n_mels, frames)``  no (trainable)
trainable_mel  log-mel, learnt filterbank ``(batch, 1, n_mels, T)`` no (trainable)
=============  ===================================================  ===============

The four learnable front-ends (leaf, sincnet, pcen, trainable_mel) are compared in
``docs/frontends.md``.
"""

from types import MappingProxyType

from pipeline.models.frontends.harmonic import HarmonicFrontend
from pipeline.models.frontends.leaf import LeafFrontend
from pipeline.models.frontends.pcen import PCENFrontend
from pipeline.models.frontends.raw import RawFrontend
from pipeline.models.frontends.sincnet import SincNetFrontend
from pipeline.models.frontends.spectral import CQTFrontend, LinearFrontend, LogFrontend, MelFrontend, MFCCFrontend
from pipeline.models.frontends.trainable_mel import TrainableMelFrontend

FRONTENDS = MappingProxyType(
    {
        cls.name: cls
        for cls in (
            MelFrontend,
            LinearFrontend,
            LogFrontend,
            CQTFrontend,
            MFCCFrontend,
            HarmonicFrontend,
            RawFrontend,
            LeafFrontend,
            SincNetFrontend,
            PCENFrontend,
            TrainableMelFrontend,
        )
    }
)
"""Front-end classes by name (read-only)."""

LEARNABLE_FRONTENDS = ("leaf", "sincnet", "pcen", "trainable_mel")
"""The learnable front-ends of ``docs/frontends.md`` (each has a learned-filters figure in the report)."""

__all__ = [
    "FRONTENDS",
    "CQTFrontend",
    "HarmonicFrontend",
    "LEARNABLE_FRONTENDS",
    "LeafFrontend",
    "LinearFrontend",
    "LogFrontend",
    "MFCCFrontend",
    "MelFrontend",
    "PCENFrontend",
    "RawFrontend",
    "SincNetFrontend",
    "TrainableMelFrontend",
]
