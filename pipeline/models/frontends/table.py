"""The front-end table of ``musicrep models``: every front-end with its output and parameter count."""

from __future__ import annotations

from typing import Any

from pipeline.models.frontends import FRONTENDS


def frontend_table(sample_rate: int = 16_000) -> list[dict[str, Any]]:
    """One JSON-able row per front-end, built at its defaults.

    Keys: ``name, output`` (``spectrogram`` or ``waveform``), ``channels, bins`` (C and F of a
    ``(batch, C, F, frames)`` map; ``None`` for the waveform), ``hop`` (samples per frame),
    ``cacheable`` (its output may be cached by the ``features`` stage), ``params`` (trainable).
    Front-ends with mel settings take them from the variant when swapped in (``pcen+short_cnn``:
    128 bands), so their count there differs from this default (96 bands).
    """
    rows = []
    for name, cls in FRONTENDS.items():
        frontend = cls(sample_rate=sample_rate)
        rows.append(
            {
                "name": name,
                "output": cls.output_kind,
                "channels": int(frontend.out_channels),
                "bins": None if frontend.n_bins is None else int(frontend.n_bins),
                "hop": int(frontend.hop_length),
                "cacheable": frontend.cache_spec() is not None,
                "params": sum(p.numel() for p in frontend.parameters() if p.requires_grad),
            }
        )
    return rows
