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

A front-end registers itself: every :class:`~pipeline.models.base.Frontend` subclass with a
``name`` defined in a module of this package is found by a scan (module order, then definition
order), and the contract tests (``tests/test_contracts.py``) run over all of them.
"""

import importlib
import pkgutil
from types import MappingProxyType

from pipeline.models.base import Frontend


def _discover() -> dict[str, type[Frontend]]:
    """Every named :class:`Frontend` subclass defined in a module of this package, by name."""
    found: dict[str, type[Frontend]] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        for obj in vars(module).values():
            if isinstance(obj, type) and issubclass(obj, Frontend) and obj.__module__ == module.__name__ and obj.name:
                if obj.name in found:
                    raise ValueError(f"front-end {obj.name!r} is defined twice (second time in {module.__name__})")
                found[obj.name] = obj
    return found


FRONTENDS = MappingProxyType(_discover())
"""Front-end classes by name (read-only)."""

LEARNABLE_FRONTENDS = tuple(name for name, cls in FRONTENDS.items() if cls.learnable)
"""The learnable front-ends of ``docs/frontends.md`` (each has a learned-filters figure in the report)."""

__all__ = ["FRONTENDS", "LEARNABLE_FRONTENDS", "Frontend"]
