"""The published MTAT taggers on six CC0 recordings: top tags and label-free robustness.

Takes a mirror of the published files (``--mirror``, laid out like ``sota/<dataset>/<model>/``
plus ``parity/inputs.npy`` and ``manifest.json``), fetches ``sota:mtat/{fcn,crnn,musicnn}``
from it into a temporary models folder, writes the six recordings as 29-s 16-kHz WAV files and

1. runs :func:`pipeline.inference.predict.predict` (the song-level protocol of ``musicrep predict``:
   input-length chunks, scores averaged) and lists each model's top tags per recording;
2. runs :func:`pipeline.robustness.agreement.run_agreement` (``musicrep robustness FOLDER
   MODEL``) with the robustness grid of the params file (``--params``; the smoke profile:
   white and background noise at 20, 10 and 0 dB SNR, synthetic noise).

Writes a JSON (``--json``) and prints the Markdown tables of docs/pretrained.md.

Usage::

    .venv/bin/python benchmarks/pretrained_evidence.py --mirror DIR --json pretrained-evidence.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from pipeline.config.params import load_params
from pipeline.core.paths import Layout
from pipeline.inference.predict import predict
from pipeline.models.pretrained import fetch
from pipeline.robustness.agreement import run_agreement

REPO = Path(__file__).resolve().parents[1]
MODELS = ("sota:mtat/fcn", "sota:mtat/crnn", "sota:mtat/musicnn")
TOP = 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mirror", required=True, type=Path)
    parser.add_argument("--params", type=Path, default=REPO / "params.yaml")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)
    params = load_params(args.params)
    clips = json.loads((args.mirror / "manifest.json").read_text())["clips"]
    inputs = np.load(args.mirror / "parity" / "inputs.npy")
    out: dict = {"clips": clips, "grid": params.robustness.grid, "noise_source": params.robustness.noise_source, "models": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        os.environ["MUSICREP_PRETRAINED_DIR"] = str(tmp_path / "models")
        audio = tmp_path / "audio"
        audio.mkdir()
        for clip, wave in zip(clips, inputs):
            sf.write(audio / f"{clip}.wav", wave, 16_000, subtype="FLOAT")
        for name in MODELS:
            fetch(name, args.mirror)
            t0 = time.perf_counter()
            pred = predict([audio], name, top_k=TOP)
            t1 = time.perf_counter()
            table = run_agreement([audio], name, params, tmp_path / "agreement" / name.replace(":", "-"), Layout(tmp_path))
            t2 = time.perf_counter()
            tops = {
                Path(r["path"]).stem: [(t["label"], round(float(t["score"]), 3)) for t in r["top"][:TOP]] for r in pred.records
            }
            out["models"][name] = {
                "top_tags": tops,
                "agreement": table.to_dict(orient="records"),
                "predict_seconds": round(t1 - t0, 1),
                "agreement_seconds": round(t2 - t1, 1),
            }
    print("| recording | " + " | ".join(MODELS) + " |")
    print("|---|" + "---|" * len(MODELS))
    for clip in clips:
        cells = [", ".join(f"{t} {s:.2f}" for t, s in out["models"][m]["top_tags"][clip]) for m in MODELS]
        print(f"| {clip} | " + " | ".join(cells) + " |")
    print()
    print("| perturbation | SNR dB | metric | " + " | ".join(MODELS) + " |")
    print("|---|---|---|" + "---|" * len(MODELS))
    rows = out["models"][MODELS[0]]["agreement"]
    for i, row in enumerate(rows):
        cells = []
        for m in MODELS:
            r = out["models"][m]["agreement"][i]
            cells.append(f"{r['mean']:.2f} [{r['low']:.2f}, {r['high']:.2f}]")
        print(f"| {row['perturbation']} | {row['level']:g} | {row['metric']} | " + " | ".join(cells) + " |")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=str))


if __name__ == "__main__":
    main()
