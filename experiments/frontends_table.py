"""The tables of docs/frontends.md from a finished run of experiments/run_frontends.sh.

    .venv/bin/python experiments/frontends_table.py DIR [--task synth_keywords] [--reference short_cnn]

Per model, from the project's own evidence code (pipeline.evaluation.evidence): clean metric (mean +- std over
seeds, and the seed-averaged metric with its 95 % bootstrap interval over the test clips), the
metric under noise (mean of white and background noise at every level) and the absolute drop,
the paired differences of clean, under-noise and drop to the reference model (default: short_cnn = mel) on the same
resamples, trainable parameters (whole model and front-end) and the user CPU seconds per cell
(train + evaluate + robustness, one torch thread; the ``/usr/bin/time`` line of each cell's log).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np

from pipeline.config.params import load_params
from pipeline.core.paths import Layout
from pipeline.evaluation.evidence import accuracy_table, robustness_table
from pipeline.models.base import ModelConfig
from pipeline.models.checkpoint import read_card
from pipeline.models.zoo import build_model, count_parameters

TRAIN_LINE = re.compile(r"cell (\S+)/(\S+) seed(\d+) done in ([\d.]+) s \(train ([\d.]+) s")
CPU_LINE = re.compile(r"([\d.]+) s wall ([\d.]+) s user")


def _fmt(v: float, lo: float, hi: float) -> str:
    return f"{v:.3f} [{lo:.3f}, {hi:.3f}]"


def _cpu_seconds(root: Path) -> dict[str, list[float]]:
    """Per model, the user CPU seconds of each finished cell (``/usr/bin/time`` line of its log)."""
    out: dict[str, list[float]] = {}
    for log in sorted((root / "logs").glob("*.log")):
        text = log.read_text(errors="replace")
        cell, cpu = TRAIN_LINE.search(text), CPU_LINE.findall(text)
        if cell and cpu:
            out.setdefault(cell.group(2), []).append(float(cpu[-1][1]))
    return out


def _params(layout: Layout, task: str, model: str, seed: int) -> tuple[int, int]:
    config = ModelConfig(**read_card(layout.model(task, model, seed))["config"])
    net = build_model(config)
    return count_parameters(net), count_parameters(net.frontend)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path)
    ap.add_argument("--task", default="synth_keywords")
    ap.add_argument("--reference", default="short_cnn")
    ap.add_argument("--models", default="", help="comma-separated rows to show (default: every model of the grid)")
    args = ap.parse_args()
    wanted = set(filter(None, args.models.split(",")))
    params = load_params(args.root / "params.yaml")
    layout = Layout(args.root)
    acc = accuracy_table(params, layout, args.task).set_index("model")
    table, rs, models = robustness_table(params, layout, args.task)
    table = table.set_index("model")
    ref = next(m for m in models if m.model == args.reference)
    seconds = _cpu_seconds(args.root)
    ref_s = float(np.mean(seconds.get(args.reference, [np.nan])))
    metric = acc["metric"].iloc[0]
    lines = [
        f"| model | seeds | clean {metric}, mean ± std | clean [95 % CI] | clean − {args.reference} [95 % CI] | "
        f"under noise [95 % CI] | under noise − {args.reference} [95 % CI] | noise drop [95 % CI] | drop − {args.reference} [95 % CI] | params (front-end) | "
        f"CPU s/cell (× {args.reference}) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for m in models:
        if wanted and m.model not in wanted:
            continue
        a, r = acc.loc[m.model], table.loc[m.model]
        dc = rs.interval(lambda idx, m=m: rs.clean(m, idx) - rs.clean(ref, idx))
        dd = rs.interval(lambda idx, m=m: rs.drop(m, idx) - rs.drop(ref, idx))
        dp = rs.interval(lambda idx, m=m: rs.perturbed(m, idx) - rs.perturbed(ref, idx))
        total, front = _params(layout, args.task, m.model, m.seeds[0])
        secs = float(np.mean(seconds.get(m.model, [np.nan])))
        lines.append(
            f"| {m.model} | {int(a['n_seeds'])} | {a['seed_mean']:.3f} ± {a['seed_std']:.3f} | "
            f"{_fmt(a['value'], a['ci_low'], a['ci_high'])} | "
            f"{'—' if m is ref else _fmt(dc.value, dc.low, dc.high)} | {_fmt(r['perturbed'], r['perturbed_low'], r['perturbed_high'])} | "
            f"{'—' if m is ref else _fmt(dp.value, dp.low, dp.high)} | "
            f"{_fmt(r['drop'], r['drop_low'], r['drop_high'])} | "
            f"{'—' if m is ref else _fmt(dd.value, dd.low, dd.high)} | {total:,} ({front:,}) | {secs:.0f} (× {secs / ref_s:.1f}) |"
        )
    n_clips = int(table["n_clips"].iloc[0])
    lines.append("")
    lines.append(
        f"{args.task}: {n_clips} test clips; noise = white and background noise at "
        f"{', '.join(str(v) for v in params.robustness.grid.get('white_noise', []))} dB SNR; "
        "intervals: 95 % paired bootstrap over the test clips of the seed-averaged scores."
    )
    text = "\n".join(lines) + "\n"
    (args.root / f"frontends_table_{args.reference}.md").write_text(text)
    print(text, end="")


if __name__ == "__main__":
    main()
