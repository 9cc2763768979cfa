"""Feature cache vs on-the-fly front-end: training throughput of mel models, side by side.

For each model, the same number of training steps runs twice in one process, alternating:
(a) crops of cached float16 log-mel frames through ``model.forward_features`` and (b) crops of
waveforms through the full ``model`` (front-end computed every step). Reported: steps/s of
each and the ratio cached/on-the-fly (>1 means the cache helps). Also times one thread vs the
torch default for the same steps.

    .venv/bin/python benchmarks/train_cache.py --models fcn short_cnn --seconds 2 --steps 6
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks._machine import describe  # noqa: E402
from pipeline.models.base import ModelConfig  # noqa: E402
from pipeline.models.zoo import build_model  # noqa: E402


def _time_steps(model, batch_fn, forward, steps: int) -> float:
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    y = torch.zeros(16, model.config.n_classes)
    x = batch_fn()
    forward(x).sum().backward()  # warm-up
    t0 = time.perf_counter()
    for _ in range(steps):
        x = batch_fn()
        loss = loss_fn(forward(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return steps / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--models", nargs="+", default=["fcn", "crnn", "short_cnn", "musicnn"])
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--width", type=float, default=0.25)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    length = int(args.seconds * 16000)
    rows = []
    for name in args.models:
        model = build_model(ModelConfig(variant=name, n_classes=14, multilabel=True, width=args.width, input_length=length))
        waves = torch.randn(64, length) * 0.1
        with torch.no_grad():
            feats = model.frontend(waves).half()  # what the cache stores
        idx = iter(range(10**9))

        def wave_batch(idx=idx, waves=waves):
            i = next(idx) % 4
            return waves[i * 16 : (i + 1) * 16]

        def feat_batch(idx=idx, feats=feats):
            i = next(idx) % 4
            return feats[i * 16 : (i + 1) * 16].float()

        cached, direct = [], []
        for _ in range(2):  # alternate to share the machine's noise
            cached.append(_time_steps(model, feat_batch, model.forward_features, args.steps))
            direct.append(_time_steps(model, wave_batch, model, args.steps))
        c, d = max(cached), max(direct)
        rows.append(
            {
                "model": name,
                "cached_steps_per_s": round(c, 3),
                "waveform_steps_per_s": round(d, 3),
                "ratio_cached_over_waveform": round(c / d, 3),
            }
        )
    threads = torch.get_num_threads()
    model = build_model(ModelConfig(variant=args.models[0], n_classes=14, multilabel=True, width=args.width, input_length=length))
    waves = torch.randn(16, length) * 0.1
    speed = {}
    for n in (1, threads, 1, threads):
        torch.set_num_threads(n)
        speed.setdefault(n, []).append(_time_steps(model, lambda: waves, model, args.steps))
    torch.set_num_threads(threads)
    result = {
        "machine": describe("cpu"),
        "input_seconds": args.seconds,
        "width": args.width,
        "batch": 16,
        "rows": rows,
        "threads": {str(k): round(max(v), 3) for k, v in speed.items()},
        "ratio_default_threads_over_1": round(max(speed[threads]) / max(speed[1]), 3),
    }
    print(f"{'model':12s} {'cached st/s':>12s} {'waveform st/s':>14s} {'ratio':>7s}")
    for r in rows:
        print(
            f"{r['model']:12s} {r['cached_steps_per_s']:12.3f} {r['waveform_steps_per_s']:14.3f} {r['ratio_cached_over_waveform']:7.3f}"
        )
    print(f"threads: {result['threads']}  ratio {threads}/1 = {result['ratio_default_threads_over_1']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
