"""The DSP layer of the front-ends, built on torchaudio.

- :mod:`~pipeline.models.dsp.transforms`: the fixed transforms (STFT, log, log-mel, MFCC, CQT)
  and the harmonic filterbank;
- :mod:`~pipeline.models.dsp.mel`: the mel scale, in one place;
- learnable primitives: :mod:`~pipeline.models.dsp.gabor` (Gabor filters, Gaussian pooling),
  :mod:`~pipeline.models.dsp.sinc` (sinc band-pass filters), :mod:`~pipeline.models.dsp.pcen`
  (PCEN), with their shared plumbing in :mod:`~pipeline.models.dsp.convolution`.

A front-end (:mod:`pipeline.models.frontends`) wraps these into the ``(batch, C, F, T)`` contract;
no front-end module imports another.
"""
