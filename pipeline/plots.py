"""Matplotlib figures shared by stages (Agg backend, PNG)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402


def training_curve(history: pd.DataFrame, title: str, out: Path) -> Path:
    """Train/validation loss per epoch, plus the validation metric on a second axis."""
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=120)
    ax.plot(history["epoch"], history["train_loss"], marker="o", label="train loss")
    ax.plot(history["epoch"], history["val_loss"], marker="o", label="validation loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    metric = next((c for c in ("val_roc_auc", "val_accuracy") if c in history), None)
    if metric:
        ax2 = ax.twinx()
        ax2.plot(history["epoch"], history[metric], color="tab:green", marker="s", label=metric.replace("val_", "validation "))
        ax2.set_ylabel(metric.replace("val_", "validation "))
        ax2.set_ylim(0, 1)
        ax2.legend(loc="center right", fontsize=8)
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out
