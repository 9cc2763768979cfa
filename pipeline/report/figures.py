"""Figures of trained models for the report (matplotlib Agg, PNG, written atomically).

- :func:`harmonic_filterbank_figure`: HCNN's learned harmonic filterbank: bandwidth per
  filter against its centre frequency, learned vs initial (Q), a few filter responses, and
  the shift of the fundamentals when they are learnt.
- :func:`attention_figure`: CNN-SA's self-attention over time for one clip (the CLS token's
  attention to every time step, per layer and head) under the clip's log-mel input, next
  to the clip's top tag scores.
- :func:`confusion_matrix_figure`: single-label tasks, from ``predictions.parquet``.
- :func:`per_class_auc_figure`: multi-label tasks, from ``per_class_auc.json``.
- :func:`training_curve_figure`: loss and validation metrics per epoch (also the MLflow training-run plot).

Each returns the PNG path, or ``None`` when the model/data has nothing to draw (e.g. the
attention figure for a model without self-attention).
"""

from __future__ import annotations

import inspect
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")  # headless, before pyplot
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from pipeline.audio.chunking import eval_chunks  # noqa: E402
from pipeline.core.io_utils import atomic_path  # noqa: E402
from pipeline.models.inference import activate  # noqa: E402
from pipeline.models.zoo import build_model  # noqa: E402

if TYPE_CHECKING:
    from pipeline.models.base import AudioModel

log = logging.getLogger(__name__)
DPI = 110


def _save(fig: plt.Figure, out: str | Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return out


# ----------------------------------------------------------------------------- harmonic filterbank
def find_harmonic_filterbank(model: AudioModel) -> Any | None:
    """The module of ``model`` with ``center_frequencies()``/``bandwidths()``/``bw_q`` (HCNN), or None."""
    for module in model.modules():
        if all(hasattr(module, a) for a in ("center_frequencies", "bandwidths", "bw_q", "n_harmonics", "n_bands")):
            return module
    return None


def _initial_filterbank(model: AudioModel) -> Any | None:
    """The filterbank of a freshly built model with the same config (= its initial state)."""

    try:
        return find_harmonic_filterbank(build_model(model.config))
    except Exception as exc:  # noqa: BLE001 - a config the zoo no longer builds
        log.warning("cannot rebuild %s for its initial filterbank (%s)", model.config.variant, exc)
        return None


def _response_panel(ax, centres, bws, W, W0, freqs, H: int, B: int) -> None:
    """Panel (c) of :func:`harmonic_filterbank_figure`: summed responses of the H filters of the
    bands nearest 110 and 440 Hz, learned (solid) vs initial (dashed, when ``W0`` is given)."""
    f0 = centres[:B]
    picks = sorted({int(np.argmin(np.abs(f0 - target))) for target in (110.0, 440.0)})
    colors = ["tab:blue", "tab:orange", "tab:green"]
    top = 0.0
    for n, j in enumerate(picks):
        cols = [h * B + j for h in range(H)]
        top = max(top, float(centres[cols].max() + bws[cols].max()))
        ax.plot(freqs, W[:, cols].sum(1), color=colors[n], linewidth=1.6, label=f"band f0 = {f0[j]:.0f} Hz, learned")
        if W0 is not None:
            ax.plot(
                freqs,
                W0[:, cols].sum(1),
                color=colors[n],
                linewidth=1.0,
                linestyle="--",
                label=f"band f0 = {f0[j]:.0f} Hz, initial",
            )
    ax.set_xlim(0, float(min(freqs[-1], top * 1.05)))
    ax.set_xlabel("frequency (Hz), sampled at the STFT bins")
    ax.set_ylabel("filter weight (linear)")
    ax.set_title(f"(c) responses of the {H} harmonic filters of two bands", fontsize=10)
    ax.grid(alpha=0.3)
    ax.set_ylim(0, 1.35)
    ax.legend(fontsize=8, loc="upper center", ncol=2)


def _f0_panel(ax, fb, centres, c0, q: float, q0: float, H: int, B: int, learn_f0: bool) -> None:
    """Panel (d) of :func:`harmonic_filterbank_figure`: the learned f0 shift in cents, or the settings."""
    if learn_f0:
        cents = 1200 * np.log2(centres[:B] / c0[:B])
        ax.plot(c0[:B], cents, marker=".", linewidth=1)
        ax.axhline(0, color="grey", linestyle="--", linewidth=1)
        ax.set_xscale("log")
        ax.set_xlabel("initial fundamental f0 (Hz)")
        ax.set_ylabel("learned shift (cents)")
        ax.set_title("(d) learned shift of each band's fundamental", fontsize=10)
        ax.grid(alpha=0.3, which="both")
    else:
        ax.axis("off")
        lines = [
            f"harmonics H = {H}, bands B = {B} ({getattr(fb, 'semitone_scale', '?')} per semitone)",
            f"fundamentals: {centres[0]:.1f} .. {centres[B - 1]:.1f} Hz (fixed)",
            f"trainable: {getattr(fb, 'learn_bw', '?')}" + (" + f0" if getattr(fb, "learn_f0", False) else ""),
            f"Q: initial {q0:.3f} -> learned {q:.3f}",
        ]
        ax.text(0.02, 0.95, "\n".join(lines), va="top", fontsize=11, family="monospace", transform=ax.transAxes)
        ax.set_title("(d) filterbank settings", fontsize=10)


def harmonic_filterbank_figure(model: AudioModel, title: str, out: str | Path) -> Path | None:
    """Learned vs initial harmonic filterbank of an HCNN-type model; ``None`` for other models.

    Panels: (a) bandwidth (Hz) of every filter against its centre frequency (Hz), one colour
    per harmonic, learned (solid) vs initial (dashed) — the learnable Q scales all
    bandwidths; (b) frequency responses of a few harmonic-1 filters, learned vs initial;
    (c, only when the fundamentals are learnt) shift of each band's f0 in cents.
    """

    fb = find_harmonic_filterbank(model)
    if fb is None:
        return None
    init = _initial_filterbank(model)
    with torch.no_grad():
        centres = fb.center_frequencies().float().cpu().numpy()
        bws = fb.bandwidths().float().cpu().numpy()
        q = float(fb.bw_q)
        W = fb.filterbank().float().cpu().numpy()  # (bins, H*B)
        freqs = fb.bin_freqs.float().cpu().numpy()
        if init is not None:
            c0, b0, q0 = init.center_frequencies().float().numpy(), init.bandwidths().float().numpy(), float(init.bw_q)
            W0 = init.filterbank().float().numpy()
        else:
            c0 = b0 = W0 = None
            q0 = math.nan
    H, B = int(fb.n_harmonics), int(fb.n_bands)
    learn_f0 = bool(getattr(fb, "learn_f0", False)) and c0 is not None
    fig, axes = plt.subplots(2, 2, figsize=(13, 9.2))
    (ax_c, ax_b), (ax_r, ax_f) = axes
    cmap = plt.get_cmap("viridis", H + 1)
    band = np.arange(B)
    for h in range(H):
        sl = slice(h * B, (h + 1) * B)
        ax_c.plot(band, centres[sl], color=cmap(h), linewidth=1.5, label=f"harmonic {h + 1}")
        ax_c.fill_between(
            band, np.maximum(centres[sl] - bws[sl] / 2, 1.0), centres[sl] + bws[sl] / 2, color=cmap(h), alpha=0.25, linewidth=0
        )
        if c0 is not None:
            ax_c.plot(band, c0[sl] - b0[sl] / 2, color=cmap(h), linewidth=0.8, linestyle=":")
            ax_c.plot(band, c0[sl] + b0[sl] / 2, color=cmap(h), linewidth=0.8, linestyle=":")
    ax_c.set_yscale("log")
    ax_c.set_xlabel("band index j (fundamental f0_j, low to high)")
    ax_c.set_ylabel("frequency (Hz)")
    ax_c.set_title("(a) filter centres h * f0_j; shaded: learned bandwidth, dotted: initial", fontsize=10)
    ax_c.grid(alpha=0.3, which="both")
    ax_c.legend(fontsize=8, loc="upper left", ncol=2)

    order = np.argsort(centres)
    ax_b.plot(centres[order], bws[order], color="tab:blue", linewidth=2, label=f"learned (Q = {q:.3f})")
    if c0 is not None:
        o0 = np.argsort(c0)
        ax_b.plot(c0[o0], b0[o0], color="black", linestyle="--", linewidth=1.2, label=f"initial (Q = {q0:.2f})")
        ratio = float(np.median(bws / np.maximum(b0, 1e-9)))
        ax_b.text(
            0.97,
            0.05,
            f"learned / initial bandwidth: x{ratio:.3f}",
            transform=ax_b.transAxes,
            ha="right",
            va="bottom",
            fontsize=9,
            bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "grey"},
        )
    ax_b.axhline(
        float(fb.bin_spacing),
        color="tab:red",
        linewidth=0.8,
        linestyle="-.",
        label=f"STFT bin spacing ({float(fb.bin_spacing):.2f} Hz)",
    )
    ax_b.set_xscale("log")
    ax_b.set_yscale("log")
    ax_b.set_xlabel("filter centre frequency (Hz)")
    ax_b.set_ylabel("filter bandwidth (Hz)")
    ax_b.set_title(f"(b) bandwidth (alpha f + beta) / Q of all {H * B} filters", fontsize=10)
    ax_b.grid(alpha=0.3, which="both")
    ax_b.legend(fontsize=8, loc="upper left")

    _response_panel(ax_r, centres, bws, W, W0, freqs, H, B)
    _f0_panel(ax_f, fb, centres, c0, q, q0, H, B, learn_f0)
    fig.suptitle(f"{title}: learned harmonic filterbank", fontsize=13)
    fig.tight_layout()
    return _save(fig, out)


# ----------------------------------------------------------------------------- self-attention
def attention_maps(model: AudioModel, wave: np.ndarray) -> tuple[np.ndarray, list[np.ndarray], np.ndarray] | None:
    """Run one chunk through a self-attention back-end.

    Returns:
        ``(scores (classes,), [attention (heads, tokens, tokens) per layer], features
        (channels, bins, frames))`` or ``None`` when the back-end has no
        ``forward(..., return_attention=True)``.
    """

    try:
        if "return_attention" not in inspect.signature(model.backend.forward).parameters:
            return None
    except (TypeError, ValueError):
        return None
    model.eval()
    device = next(model.parameters()).device
    with torch.no_grad():
        feats = model.frontend(torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))[None].to(device))
        logits, maps = model.backend(feats, return_attention=True)
        scores = activate(logits.float(), model.config.multilabel)[0].cpu().numpy()
    return scores, [m[0].float().cpu().numpy() for m in maps], feats[0].float().cpu().numpy()


def attention_figure(
    model: AudioModel,
    wave: np.ndarray,
    labels: Sequence[str],
    title: str,
    out: str | Path,
    *,
    true_labels: Sequence[str] = (),
    top_k: int = 10,
) -> Path | None:
    """Self-attention of the CLS token over time for one clip, next to its tag scores.

    Left: the clip's front-end output (log-mel, dB) over time; below it, one heatmap row per
    (layer, head): the attention weight the CLS token gives each time step (rows sum to 1
    over the tokens; the CLS self-weight is left out). Right: the clip's top-``top_k`` scores,
    true labels marked. ``None`` for back-ends without attention.
    """

    chunk = eval_chunks(np.asarray(wave, dtype=np.float32), model.input_length, 1)[0]
    result = attention_maps(model, chunk)
    if result is None:
        return None
    scores, maps, feats = result
    seconds = len(chunk) / model.config.sample_rate
    rows, names = [], []
    for li, layer in enumerate(maps):
        for hi, head in enumerate(layer):
            rows.append(head[0, 1:])
            names.append(f"layer {li + 1} head {hi + 1}")
    att = np.stack(rows)  # (layers*heads, T)
    n_tokens = att.shape[1]
    fig = plt.figure(figsize=(13, 3.0 + 0.22 * len(rows) + 2.2))
    grid = fig.add_gridspec(
        2, 2, width_ratios=[3.2, 1.3], height_ratios=[2.2, max(1.5, 0.22 * len(rows))], hspace=0.18, wspace=0.3
    )
    ax_spec = fig.add_subplot(grid[0, 0])
    ax_att = fig.add_subplot(grid[1, 0], sharex=ax_spec)
    ax_bar = fig.add_subplot(grid[:, 1])
    spec = feats.mean(0) if feats.ndim == 3 else feats
    lo, hi = np.percentile(spec, [2, 99.8])
    im = ax_spec.imshow(
        spec, origin="lower", aspect="auto", extent=(0, seconds, 0, spec.shape[0]), cmap="magma", vmin=lo, vmax=hi
    )
    kind = getattr(model.frontend, "name", "") or type(model.frontend).__name__
    ax_spec.set_ylabel("mel band" if kind == "mel" else "frequency bin")
    ax_spec.set_title(f"input: {kind} front-end output (first {seconds:.2f} s of the clip)", fontsize=10)
    fig.colorbar(im, ax=ax_spec, pad=0.01, label="dB")
    plt.setp(ax_spec.get_xticklabels(), visible=False)
    im = ax_att.imshow(att, aspect="auto", extent=(0, seconds, len(rows) - 0.5, -0.5), cmap="viridis", interpolation="nearest")
    ax_att.set_yticks(range(len(rows)))
    ax_att.set_yticklabels(names, fontsize=7 if len(rows) > 12 else 8)
    ax_att.set_xlabel("time (s)")
    ax_att.set_title(f"CLS-token attention over {n_tokens} time steps ({seconds / n_tokens * 1000:.0f} ms each)", fontsize=10)
    fig.colorbar(im, ax=ax_att, pad=0.01, label="attention weight")
    order = np.argsort(-scores)[:top_k][::-1]
    truth = set(true_labels)
    colors = ["tab:orange" if labels[i] in truth else "tab:blue" for i in order]
    ax_bar.barh(range(len(order)), scores[order], color=colors)
    ax_bar.set_yticks(range(len(order)))
    ax_bar.set_yticklabels([labels[i] + (" (true)" if labels[i] in truth else "") for i in order], fontsize=9)
    ax_bar.set_xlim(0, 1)
    ax_bar.set_xlabel("sigmoid score" if model.config.multilabel else "softmax probability")
    for i, v in enumerate(scores[order]):
        ax_bar.text(min(v + 0.02, 0.8), i, f"{v:.2f}", va="center", fontsize=8)
    ax_bar.set_title(f"top {len(order)} scores (orange: true label)", fontsize=10)
    ax_bar.grid(alpha=0.3, axis="x")
    fig.suptitle(f"{title}: self-attention for one clip ({seconds:.2f} s chunk)", fontsize=12)
    return _save(fig, out)


# ----------------------------------------------------------------------------- evaluation figures
def confusion_matrix_figure(predictions: pd.DataFrame, labels: Sequence[str], title: str, out: str | Path) -> Path:
    """Row-normalised confusion matrix of a single-label task (rows: true class).

    Args:
        predictions: ``predictions.parquet`` (``labels``: list with the true class,
            ``scores``: per-class scores in ``labels`` order).
        labels: class names in score order.
    """
    labels = list(labels)
    index = {n: i for i, n in enumerate(labels)}
    keep = [len(v) > 0 and v[0] in index for v in predictions["labels"]]
    pred = predictions[keep]
    y = np.array([index[v[0]] for v in pred["labels"]], dtype=int)
    p = np.stack([np.asarray(s, dtype=float) for s in pred["scores"]]).argmax(1) if len(pred) else np.zeros(0, int)
    n = len(labels)
    counts = np.zeros((n, n), dtype=int)
    np.add.at(counts, (y, p), 1)
    totals = counts.sum(1, keepdims=True)
    frac = np.divide(counts, totals, out=np.zeros_like(counts, dtype=float), where=totals > 0)
    acc = float((y == p).mean()) if len(y) else math.nan
    size = min(14.0, max(5.5, 0.42 * n + 2.5))
    fig, ax = plt.subplots(figsize=(size + 1.2, size))
    im = ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    fs = 9 if n <= 15 else 7
    ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=fs)
    ax.set_yticklabels(labels, fontsize=fs)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if n <= 20:
        for i in range(n):
            for j in range(n):
                if counts[i, j]:
                    ax.text(
                        j,
                        i,
                        str(counts[i, j]),
                        ha="center",
                        va="center",
                        fontsize=fs - 1,
                        color="white" if frac[i, j] > 0.5 else "black",
                    )
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    note = " (cell text: clip counts)" if n <= 20 else ""
    ax.set_title(f"{title}: confusion matrix\n{len(y)} test clips, accuracy {acc:.3f}{note}", fontsize=11)
    fig.tight_layout()
    return _save(fig, out)


def per_class_auc_figure(aucs: dict[str, float], title: str, out: str | Path) -> Path:
    """Horizontal bars of per-class ROC-AUC (sorted), chance (0.5) and macro mean marked."""
    items = sorted(aucs.items(), key=lambda kv: -math.inf if kv[1] is None or kv[1] != kv[1] else kv[1])
    names = [k for k, _ in items]
    vals = np.array([np.nan if v is None else float(v) for _, v in items], dtype=float)
    finite = np.isfinite(vals)
    fig, ax = plt.subplots(figsize=(7.5, max(3.0, 0.28 * len(names) + 1.4)))
    ax.barh(range(len(names)), np.where(finite, vals, 0), color=np.where(finite, "tab:blue", "lightgrey"))
    for i, v in enumerate(vals):
        ax.text(
            (v if np.isfinite(v) else 0) + 0.01,
            i,
            f"{v:.3f}" if np.isfinite(v) else "n/a (one class only)",
            va="center",
            fontsize=8,
        )
    ax.axvline(0.5, color="grey", linestyle="--", linewidth=1, label="chance (0.5)")
    if finite.any():
        macro = float(np.nanmean(vals))
        ax.axvline(macro, color="tab:red", linewidth=1.2, label=f"macro mean {macro:.3f}")
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels(names, fontsize=9 if len(names) <= 30 else 7)
    ax.set_ylim(-0.7, len(names) - 0.3)
    ax.set_xlim(0, 1.12)
    ax.set_xlabel("test ROC-AUC")
    ax.set_title(f"{title}: ROC-AUC per class", fontsize=11)
    ax.grid(alpha=0.3, axis="x")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return _save(fig, out)


def _epoch_axes(ax: Any, ylabel: str, title: str) -> None:
    """Label an axis whose x is the training epoch (integer ticks, grid, legend)."""

    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def _points(history: pd.DataFrame, column: str) -> tuple[pd.Series, pd.Series]:
    """``(epochs, values)`` of the epochs that have a value in ``column`` (one line through the validated epochs)."""
    rows = history[["epoch", column]].dropna()
    return rows["epoch"], rows[column]


def training_curve_figure(history: str | Path | pd.DataFrame, title: str, out: str | Path) -> Path | None:
    """Loss (train, validation) and validation metrics per epoch, two panels, integer epoch ticks.

    Args:
        history: ``history.csv`` of a trained model (path) or the same table as a DataFrame
            (columns ``epoch``, ``train_loss``, ``val_loss``, ``val_<metric>``...).
        title: figure title, e.g. ``"synth_tags / hcnn"``.
        out: PNG path (written atomically).

    Returns ``None`` if the file is missing or the table is empty.
    """
    if isinstance(history, pd.DataFrame):
        h = history
    else:
        if not Path(history).exists():
            return None
        h = pd.read_csv(history)
    if h.empty or "epoch" not in h:
        return None
    metrics = [
        c
        for c in h.columns
        if c.startswith("val_") and c != "val_loss" and h[c].notna().any() and h[c].dropna().between(0, 1).all()
    ]  # train.val_every > 1: the epochs between validations have no val_* values (NaN)
    fig, axes = plt.subplots(1, 2 if metrics else 1, figsize=(11 if metrics else 6, 3.8), squeeze=False)
    ax = axes[0, 0]
    for col, label in (("train_loss", "train loss (mean over batches)"), ("val_loss", "validation loss (clip level)")):
        if col in h and h[col].notna().any():
            ax.plot(*_points(h, col), marker="o", label=label)
    _epoch_axes(ax, "loss", "loss")
    if metrics:
        ax = axes[0, 1]
        for col in metrics:
            ax.plot(*_points(h, col), marker="s", label=col.replace("val_", "validation "))
        ax.set_ylim(0, 1.02)
        _epoch_axes(ax, "score", "validation metrics")
    fig.suptitle(f"{title}: training curve ({len(h)} epochs)", fontsize=12)
    fig.tight_layout()
    return _save(fig, out)
