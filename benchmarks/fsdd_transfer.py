"""FSDD with the speakers held out: musicnn from scratch vs fine-tuned from MTAT vs frozen backbone.

Builds a project in ``--work`` (default: a temporary folder) whose own dataset ``fsdd_spk`` is
the FSDD mirror (``--fsdd``, a folder holding ``recordings/*.wav``) with a labels CSV (the
digit) and a *group split by speaker* (``group_regex``: no speaker is in two splits). Three
grid variants of musicnn at paper width (1.0):

- ``scratch``: ``{model: musicnn, width: 1.0}``;
- ``finetune``: ``{model: musicnn, init: sota:mtat/musicnn}`` (all layers trained, new head);
- ``frozen``: ``{model: musicnn, init: sota:mtat/musicnn, freeze: backbone}`` (new head only).

Each runs as ``musicrep cell fsdd_spk MODEL --seed S`` (train, evaluate; robustness off) for
every ``--seeds``; reported per variant: test accuracy per seed, its bootstrap 95 % interval
over test clips (seed-averaged scores, :func:`pipeline.evaluation.stats.clip_interval`), training seconds
and trainable parameters. The published init is fetched from ``--pretrained-mirror``.

Usage (the scale of docs/pretrained.md; a full study is ``--takes 50 --seeds 0 1 2 --epochs 20``)::

    .venv/bin/python benchmarks/fsdd_transfer.py --fsdd DIR --pretrained-mirror DIR \\
        --takes 8 --seeds 0 --epochs 2 --steps 20 --json fsdd-transfer.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from pipeline.evaluation.stats import clip_interval

REPO = Path(__file__).resolve().parents[1]
INIT = "sota:mtat/musicnn"
VARIANTS = {
    "scratch": {"model": "musicnn", "width": 1.0},
    "finetune": {"model": "musicnn", "init": INIT},
    "frozen": {"model": "musicnn", "init": INIT, "freeze": "backbone"},
}
SPEAKER_REGEX = r"_([a-z]+)_\d+\.wav$"


def _musicrep(proj: Path, env: dict[str, str], *args: str) -> float:
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=proj, env=env, capture_output=True, text=True)
    if res.returncode:
        raise SystemExit(f"musicrep {' '.join(args)} failed:\n{res.stderr[-3000:]}")
    return time.perf_counter() - t0


def _project(proj: Path, args: argparse.Namespace) -> None:
    files = sorted(p for p in (args.fsdd / "recordings").glob("*.wav") if int(p.stem.split("_")[2]) < args.takes)
    csv = proj / "labels.csv"
    pd.DataFrame([{"path": f"recordings/{f.name}", "labels": f.stem.split("_")[0]} for f in files]).to_csv(csv, index=False)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params.update(
        {
            "grid": {**params.get("grid", {}), "tasks": ["fsdd_spk"], "models": list(VARIANTS), "seeds": list(args.seeds)},
            "variants": VARIANTS,
            "datasets": {
                **params.get("datasets", {}),
                "fsdd_spk": {
                    "kind": "folder",
                    "path": str(args.fsdd),
                    "labels_csv": str(csv),
                    "group_regex": SPEAKER_REGEX,
                    "clip_seconds": 1.0,
                },
            },
            "train": {
                **params.get("train", {}),
                "epochs": args.epochs,
                "steps_per_epoch": args.steps,
                "batch_size": args.batch_size,
            },
            "evaluate": {**params.get("evaluate", {}), "n_chunks": 1},
            "robustness": {**params.get("robustness", {}), "enabled": False},
        }
    )
    (proj / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def _summary(proj: Path, variant: str, seeds: list[int]) -> dict:
    scores, accs, seconds, y = [], [], [], None
    card = {}
    for seed in seeds:
        metrics = proj / "metrics" / "fsdd_spk" / variant / f"seed{seed}"
        pred = pd.read_parquet(metrics / "predictions.parquet").sort_values("clip_id")
        card = json.loads((proj / "models" / "fsdd_spk" / variant / f"seed{seed}" / "model.json").read_text())
        labels = card["labels"]
        y = np.array([labels.index(labs[0]) for labs in pred["labels"]])
        scores.append(np.stack(pred["scores"].to_numpy()))
        accs.append(json.loads((metrics / "eval.json").read_text())["test/accuracy"])
        seconds.append(card["metadata"].get("train_seconds"))
    iv = clip_interval("single", y, scores)
    init = card["metadata"].get("init", {})
    return {
        "test_accuracy_per_seed": accs,
        "test_accuracy": iv.value,
        "ci95": [iv.low, iv.high],
        "n_test_clips": int(len(y)),
        "train_seconds_per_seed": seconds,
        "trainable_params": int(init.get("trainable_params", 0)) or None,
        "init": init or None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fsdd", required=True, type=Path)
    parser.add_argument("--pretrained-mirror", required=True, type=Path)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--takes", type=int, default=8, help="recordings per (speaker, digit): takes 0..N-1 (of 50)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20, help="steps per epoch")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    args.fsdd = args.fsdd.resolve()
    with tempfile.TemporaryDirectory() as tmp:
        proj = (args.work or Path(tmp) / "proj").resolve()
        proj.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "MUSICREP_PRETRAINED_DIR": str(proj / ".pretrained")}
        _project(proj, args)
        cost = {"fetch": _musicrep(proj, env, "pretrained", "fetch", INIT, "--mirror", str(args.pretrained_mirror))}
        for stage in ("download", "segment", "features"):
            cost[stage] = _musicrep(proj, env, stage, "fsdd_spk")
        for variant in VARIANTS:
            for seed in args.seeds:
                cost[f"cell {variant} seed{seed}"] = _musicrep(proj, env, "cell", "fsdd_spk", variant, "--seed", str(seed))
        result = {
            "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "wall_seconds": {k: round(v, 1) for k, v in cost.items()},
            "variants": {v: _summary(proj, v, args.seeds) for v in VARIANTS},
        }
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
