"""The seed's question on rendered music: the front-end families on ``corpus_tags``, as evidence.

Reads a project whose grid holds ``corpus_tags`` and the models to compare (cells run with
``musicrep cell corpus_tags MODEL --seed K``) and prints Markdown tables for docs/results.md:

1. per model: ROC-AUC mean +- std over seeds, then the seed ensemble's (scores averaged over the
   seeds) ROC-AUC and PR-AUC with 95 % bootstrap intervals over test clips
   (:mod:`pipeline.evaluation.metric_intervals`);
2. per tag group (instrument, tempo, mode, size, origin: :data:`pipeline.data.rendered.TAG_GROUPS`):
   macro ROC-AUC of the seed ensemble with its interval;
3. robustness (here, as in the report, the metric is averaged over the seeds, not the scores):
   clean, white noise and background noise at each SNR of the grid, each with an interval, and
   the drop under noise (mean over the noise points) (:func:`pipeline.evaluation.evidence.robustness_table`);
4. paired differences harmonic - other: clean ROC-AUC (:func:`pipeline.evaluation.stats.paired_difference`)
   and drop under noise (:func:`pipeline.evaluation.evidence.harmonic_statement`);
5. with ``--shift OTHER``: the same test clips rendered differently (``evaluate corpus_tags MODEL
   --on OTHER`` for every model and seed), ROC-AUC there and the paired change (OTHER - own).

    .venv/bin/python benchmarks/corpus_tags_study.py --project /tmp/study [--shift corpus_fluid]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.config.params import load_params  # noqa: E402
from pipeline.core.paths import Layout  # noqa: E402
from pipeline.data.rendered import TAG_GROUPS  # noqa: E402
from pipeline.evaluation import evidence, stats  # noqa: E402
from pipeline.evaluation.metric_intervals import metric_intervals  # noqa: E402

TASK = "corpus_tags"


def _ci(i: stats.Interval) -> str:
    return f"{i.value:.3f} [{i.low:.3f}, {i.high:.3f}]"


def accuracy(y: np.ndarray, models: list[evidence.ModelScores], labels: list[str]) -> pd.DataFrame:
    """ROC-AUC over seeds and the seed ensemble's ROC-AUC, PR-AUC and per-group ROC-AUC with intervals."""
    rows = []
    for m in models:
        per_seed = [float(stats.metric_on("multilabel", y, s, np.arange(len(y)))) for s in m.clean]
        mean, std, n = stats.seed_summary(per_seed)
        avg = np.mean(m.clean, axis=0)
        whole = metric_intervals("multilabel", y, avg, labels)
        row = {"model": m.model, "seeds": n, "ROC-AUC mean ± std": f"{mean:.3f} ± {std:.3f}"}
        row |= {"ROC-AUC, seed ensemble": _ci(whole["roc_auc"]), "PR-AUC, seed ensemble": _ci(whole["pr_auc"])}
        for group, tags in TAG_GROUPS.items():
            cols = [labels.index(t) for t in tags]
            row[group] = _ci(metric_intervals("multilabel", y[:, cols], avg[:, cols])["roc_auc"])
        rows.append(row)
    return pd.DataFrame(rows)


def noise(y: np.ndarray, models: list[evidence.ModelScores]) -> pd.DataFrame:
    """ROC-AUC under each noise perturbation and level (seed-averaged) with an interval."""
    rows = []
    for m in models:
        row = {"model": m.model, "clean": _ci(stats.clip_interval("multilabel", y, m.clean))}
        for pert in evidence.NOISE_PERTURBATIONS:
            for level in sorted(lv for p, lv in m.perturbed if p == pert):
                row[f"{pert} {level:g} dB"] = _ci(stats.clip_interval("multilabel", y, m.perturbed[(pert, level)]))
        rows.append(row)
    return pd.DataFrame(rows)


def clean_differences(params, y: np.ndarray, models: list[evidence.ModelScores]) -> pd.DataFrame:
    """Clean ROC-AUC, harmonic model minus every other model, paired over the same clip resamples."""
    rows = []
    for h in (m for m in models if evidence.is_harmonic(m.model, params)):
        for o in models:
            if o is not h:
                d = stats.paired_difference("multilabel", y, h.clean, o.clean)
                rows.append({"harmonic − other": f"{h.model} − {o.model}", "clean ROC-AUC difference": _ci(d)})
    return pd.DataFrame(rows)


def shift(layout: Layout, other: str, y: np.ndarray, models: list[evidence.ModelScores], clips: np.ndarray) -> pd.DataFrame:
    """ROC-AUC on ``other`` (the same clips, matched by file stem) and the paired change, over the seeds evaluated there."""
    rows = []
    for m in models:
        own, there = [], []
        for seed, clean in zip(m.seeds, m.clean):
            path = layout.metrics(TASK, m.model, seed) / "cross" / other / "predictions.parquet"
            if path.exists():
                df = pd.read_parquet(path)
                df.index = [Path(str(c)).name.removesuffix(".wav") for c in df["clip_id"]]
                own.append(clean)
                there.append(np.stack(df.loc[list(clips), "scores"].to_numpy()))
        if there:
            row = {"model": m.model, "seeds": len(there), "own soundfont": _ci(stats.clip_interval("multilabel", y, own))}
            row[other] = _ci(stats.clip_interval("multilabel", y, there))
            row["change"] = _ci(stats.paired_difference("multilabel", y, there, own))
            rows.append(row)
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--project", type=Path, required=True)
    ap.add_argument("--shift", help="a dataset of the same clips rendered differently (evaluated with --on)")
    args = ap.parse_args()
    params = load_params(args.project / "params.yaml")
    layout = Layout(args.project)
    kind, y, models, clips = evidence.load_task(params, layout, TASK)
    labels = evidence._labels_of(layout, TASK, models[0].model, models[0].seeds[0])
    print(f"## {TASK}: {len(clips)} test clips, {len(labels)} tags\n")
    print(accuracy(y, models, labels).to_markdown(index=False), "\n")
    print(noise(y, models).to_markdown(index=False), "\n")
    table, rs, rmodels = evidence.robustness_table(params, layout, TASK)
    cols = ["model", "n_seeds", "clean", "perturbed", "drop", "drop_low", "drop_high"]
    print(table[cols].round(3).to_markdown(index=False), "\n")
    print(clean_differences(params, y, models).to_markdown(index=False), "\n")
    diffs, sentence = evidence.harmonic_statement(params, table, rs, rmodels, TASK)
    print(diffs.round(3).to_markdown(index=False), "\n")
    print(sentence, "\n")
    if args.shift:
        print(shift(layout, args.shift, y, models, clips).to_markdown(index=False))


if __name__ == "__main__":
    main()
