"""The learned-filters figure of the learnable front-ends (leaf, sincnet, trainable_mel, pcen),
the counterpart of the harmonic-filterbank figure (:func:`pipeline.report.figures.harmonic_filterbank_figure`).

Learned values are drawn solid, the initial ones (the front-end rebuilt from the model's config,
whose initialisation is deterministic) dashed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pipeline.models.dsp.pcen import PCEN
from pipeline.models.frontends import LEARNABLE_FRONTENDS
from pipeline.models.zoo import build_model, resolve_variant
from pipeline.report.figures import DPI, _save, plt

if TYPE_CHECKING:
    from pipeline.models.base import AudioModel

PCEN_VALUES = (("alpha", "alpha"), ("delta", "delta"), ("root", "r = 1 / root"), ("smooth", "smoothing s"))


def _pcen(frontend) -> PCEN | None:
    return next((m for m in frontend.modules() if isinstance(m, PCEN)), None)


def _filter_panels(axes, learned, initial) -> None:
    """(a) centre frequency per filter; (b) a few responses; (c) all learned responses (dB)."""
    ax_c, ax_r, ax_h = axes
    centres = learned.center_frequencies().detach().cpu().numpy()
    ax_c.plot(initial.center_frequencies().detach().cpu().numpy(), "--", color="0.5", label="initial")
    ax_c.plot(centres, color="C0", label="learned")
    ax_c.set(xlabel="filter", ylabel="centre frequency (Hz)", yscale="log", title="(a) centre frequencies")
    ax_c.legend(fontsize=8)
    freqs, resp = learned.frequency_response()
    _, resp0 = initial.frequency_response()
    for i, k in enumerate(np.linspace(0, len(resp) - 1, 6).astype(int)):
        ax_r.plot(freqs, resp0[k], "--", color=f"C{i}", linewidth=0.8)
        ax_r.plot(freqs, resp[k], color=f"C{i}", linewidth=1.2)
    ax_r.set(
        xlabel="frequency (Hz)", ylabel="|H(f)|", xscale="log", xlim=(20, freqs[-1]), title="(b) six filters, learned vs initial"
    )
    db = 20 * np.log10(np.maximum(resp / max(resp.max(), 1e-12), 1e-4))
    image = ax_h.imshow(db, aspect="auto", origin="lower", extent=(freqs[0], freqs[-1], -0.5, len(resp) - 0.5), vmin=-60)
    ax_h.set(xlabel="frequency (Hz)", ylabel="filter", title="(c) learned responses (dB)")
    plt.colorbar(image, ax=ax_h)


def learnable_frontend_figure(model: AudioModel, title: str, out: str | Path) -> Path | None:
    """Learned vs initial filters (and PCEN values) of a learnable front-end; ``None`` for other models."""

    frontend = model.frontend
    if resolve_variant(model.config.variant)[0] not in LEARNABLE_FRONTENDS:
        return None
    initial = build_model(model.config).frontend
    has_filters = hasattr(frontend, "frequency_response")
    pcen = _pcen(frontend)
    rows = int(has_filters) + int(pcen is not None)
    fig, axes = plt.subplots(rows, 4 if pcen is not None else 3, figsize=(16, 3.6 * rows), dpi=DPI, squeeze=False)
    row = 0
    if has_filters:
        _filter_panels(axes[0][:3], frontend, initial)
        if axes.shape[1] == 4:
            axes[0][3].axis("off")
        row = 1
    if pcen is not None:
        learned, start = pcen.values(), _pcen(initial).values()
        for ax, (key, label) in zip(axes[row], PCEN_VALUES, strict=True):
            a, b = learned[key].detach().cpu().numpy(), start[key].detach().cpu().numpy()
            if key == "root":
                a, b = 1.0 / a, 1.0 / b
            ax.plot(b, "--", color="0.5", label="initial")
            ax.plot(a, color="C3", label="learned")
            ax.set(xlabel="channel", title=f"PCEN {label}")
        axes[row][0].legend(fontsize=8)
    fig.suptitle(f"{title}: learned {resolve_variant(model.config.variant)[0]} front-end", fontsize=13)
    fig.tight_layout()
    return _save(fig, out)
