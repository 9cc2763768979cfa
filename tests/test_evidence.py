"""Numbers a researcher can trust (issue 14, items 5-7): seeds, bootstrap intervals over test
clips, paired differences, robustness as evidence, cross-dataset evaluation."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.metrics import accuracy_score, roc_auc_score

from pipeline.core.paths import Layout
from pipeline.evaluation.stats import clip_interval, metric_on, paired_difference, seed_summary
from pipeline.models.grid import cell_keys
from pipeline.orchestration import stages
from tests.conftest import full_repo_params

REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- statistics
def test_vectorised_metrics_equal_scikit_learn() -> None:
    rng = np.random.default_rng(1)
    y = (rng.random((80, 6)) < 0.3).astype(int)
    y[:, 5] = 0  # a class without positives is left out, as in pipeline.evaluation.metrics
    s = rng.random((80, 6)) + 0.4 * y
    valid = y.sum(0) > 0
    assert metric_on("multilabel", y, s, np.arange(80)) == pytest.approx(roc_auc_score(y[:, valid], s[:, valid], average="macro"))
    yc = rng.integers(0, 5, 80)
    sc = rng.random((80, 5))
    assert metric_on("single", yc, sc, np.arange(80)) == pytest.approx(accuracy_score(yc, sc.argmax(1)))
    idx = rng.integers(0, 80, (7, 80))  # vectorised over resamples
    assert metric_on("single", yc, sc, idx).shape == (7,)


def test_intervals_cover_the_estimate_and_pairing_cancels_shared_noise() -> None:
    rng = np.random.default_rng(2)
    y = rng.integers(0, 4, 200)
    good = np.eye(4)[y] * 0.6 + rng.random((200, 4))
    ci = clip_interval("single", y, [good])
    assert ci.low <= ci.value <= ci.high and ci.high - ci.low > 0
    same = paired_difference("single", y, [good], [good])
    assert same.value == 0 and same.low == 0 and same.high == 0
    worse = np.where(rng.random((200, 1)) < 0.2, rng.random((200, 4)), good)  # 20 % of clips scrambled
    d = paired_difference("single", y, [worse], [good])
    assert d.high < 0  # the paired interval separates the two models
    mean, std, n = seed_summary([0.8, 0.9, 1.0])
    assert (mean, n) == (pytest.approx(0.9), 3) and std == pytest.approx(0.1)


def test_seed_interval_is_the_t_interval_of_the_mean() -> None:
    from scipy import stats as sst

    from pipeline.evaluation.stats import seed_interval

    got = seed_interval([0.80, 0.84, 0.90])
    low, high = sst.t.interval(0.95, 2, loc=np.mean([0.80, 0.84, 0.90]), scale=np.std([0.80, 0.84, 0.90], ddof=1) / np.sqrt(3))
    assert (got.low, got.high) == (pytest.approx(low), pytest.approx(high)) and got.low < got.value < got.high
    one = seed_interval([0.8])
    assert one.value == 0.8 and one.low != one.low  # one seed: no interval, never +- 0
    same = seed_interval([0.873, 0.873, 0.873])
    assert same.low == same.high == pytest.approx(0.873)


# ----------------------------------------------------------------------------- the grid with seeds
@pytest.fixture(scope="module")
def seeded_grid(tmp_path_factory):
    """fcn and hcnn on synth_events and synth_keywords, two seeds each, tiny settings."""
    from pipeline.config.params import load_params
    from tests.conftest import tiny_overrides

    over = tiny_overrides(models=["fcn", "hcnn"], tasks=["synth_events", "synth_keywords"], n_clips=60)
    over["grid"]["seeds"] = [0, 1]
    over["robustness"]["max_clips"] = None
    params = load_params(REPO / "params.yaml", overrides=over)
    layout = Layout(tmp_path_factory.mktemp("seeded"))
    for task in params.grid.tasks:
        for name in ("download", "segment", "features"):
            stages.STAGES[name](task, params, layout)
    for task, model, seed in cell_keys(params):
        stages.cell(task, model, params, layout, seed=seed)
    return params, layout


def test_seeds_give_separate_cells_and_runs(seeded_grid) -> None:
    params, layout = seeded_grid
    for seed in (0, 1):
        card = json.loads((layout.model("synth_events", "fcn", seed) / "model.json").read_text())
        assert card["metadata"]["seed"] == seed
    a = pd.read_parquet(layout.metrics("synth_events", "fcn", 0) / "predictions.parquet")
    b = pd.read_parquet(layout.metrics("synth_events", "fcn", 1) / "predictions.parquet")
    assert list(a["clip_id"]) == list(b["clip_id"])  # same test clips: paired across seeds
    assert not np.allclose(np.stack(a["scores"]), np.stack(b["scores"]))  # another initialisation


def test_accuracy_table_has_seed_spread_and_intervals(seeded_grid) -> None:
    from pipeline.evaluation.evidence import accuracy_table

    params, layout = seeded_grid
    for task, metric in (("synth_events", "roc_auc"), ("synth_keywords", "accuracy")):
        t = accuracy_table(params, layout, task)
        assert set(t["model"]) == {"fcn", "hcnn"} and (t["n_seeds"] == 2).all() and (t["metric"] == metric).all()
        assert (t["ci_low"] <= t["value"]).all() and (t["value"] <= t["ci_high"]).all()
        assert t["seed_std"].notna().all()
        best = t[t["model"] == t["best"]]
        assert float(best["diff_to_best"].iloc[0]) == 0.0
        other = t[t["model"] != t["best"]]
        assert (other["diff_low"] <= other["diff_to_best"]).all() and (other["diff_to_best"] <= 0).all()


def test_compare_paired_gives_a_minus_b_over_clips_and_over_seeds(seeded_grid, monkeypatch) -> None:
    from typer.testing import CliRunner

    from pipeline.cli.main import app
    from pipeline.evaluation.evidence import load_task
    from pipeline.evaluation.paired import paired_row

    params, layout = seeded_grid
    row = paired_row(params, layout, "synth_events", "hcnn", "fcn", perturbation="white", level=10.0)
    assert row["quantity"] == "drop of roc_auc at white_noise 10" and row["seeds"] == "0, 1"
    assert row["clips_ci_low"] <= row["difference"] <= row["clips_ci_high"]
    assert row["seeds_ci_low"] <= row["seeds_mean"] <= row["seeds_ci_high"]
    kind, y, models, _ = load_task(params, layout, "synth_events")
    full = np.arange(len(y))
    by = {m.model: m for m in models}

    def drop(m, i):
        return metric_on(kind, y, m.clean[i], full) - metric_on(kind, y, m.perturbed[("white_noise", 10.0)][i], full)

    by_hand = [drop(by["hcnn"], i) - drop(by["fcn"], i) for i in (0, 1)]  # what the user computed by hand
    assert row["seeds_mean"] == pytest.approx(np.mean(by_hand))
    (layout.root / "params.yaml").write_text(yaml.safe_dump(params.model_dump(mode="json")))
    monkeypatch.chdir(layout.root)
    res = CliRunner().invoke(app, ["compare", "--paired", "hcnn", "fcn", "--format", "csv"])
    assert res.exit_code == 0, res.output
    table = pd.read_csv(__import__("io").StringIO(res.stdout))
    assert set(table["task"]) == {"synth_events", "synth_keywords"} and {"clips_ci_low", "seeds_ci_high"} <= set(table.columns)
    res = CliRunner().invoke(app, ["compare", "--paired", "hcnn", "nope", "--task", "synth_events"])
    assert res.exit_code != 0 and "nope has no predictions on synth_events" in str(res.exception)


def test_robustness_evidence_and_harmonic_statement(seeded_grid) -> None:
    from pipeline.evaluation.evidence import harmonic_statement, robustness_table

    params, layout = seeded_grid
    table, rs, models = robustness_table(params, layout, "synth_events")
    assert set(table["model"]) == {"fcn", "hcnn"}
    assert (table["n_points"] == 2).all()  # white noise 10 dB + background noise 0 dB (tiny grid)
    assert (table["drop_low"] <= table["drop"]).all() and (table["drop"] <= table["drop_high"]).all()
    assert np.allclose(table["clean"] - table["perturbed"], table["drop"])
    assert (table["drop_seed_low"] <= table["drop"]).all() and (table["drop"] <= table["drop_seed_high"]).all()
    diffs, sentence = harmonic_statement(params, table, rs, models, "synth_events")
    assert list(diffs["harmonic"]) == ["hcnn"] and list(diffs["other"]) == ["fcn"]
    assert sentence.startswith("synth_events: hcnn (absolute drop") and "paired bootstrap" in sentence


def test_report_and_compare_show_mean_std_and_intervals(seeded_grid) -> None:
    from pipeline.report.compare import compare_table

    params, layout = seeded_grid
    stages.report(params, layout)
    out = layout.root / "reports"
    ev = pd.read_csv(out / "evidence.csv")
    assert {"task", "model", "seed_mean", "seed_std", "ci_low", "ci_high", "diff_to_best"} <= set(ev.columns)
    assert len(ev) == 4
    md = (out / "index.md").read_text()
    assert "mean +- std over seeds" in md and "95 % CI over clips" in md and "Harmonic front-end" in md
    assert (out / "harmonic_robustness.txt").read_text().count("hcnn") == 2
    table = compare_table(layout.root, ["synth_events", "synth_keywords"], evidence=(params, layout))
    row = table[(table.task == "synth_keywords") & (table.model == "hcnn")].iloc[0]
    assert row["n_seeds"] == 2 and "test/accuracy std" in table.columns and row["accuracy_ci_low"] <= row["test/accuracy"]
    assert "ci_low" not in table.columns and "roc_auc_ci_high" in table.columns  # named after their metric
    assert {"seed_ci_low", "seed_ci_high"} <= set(ev.columns) and (ev["seed_ci_low"] <= ev["seed_mean"]).all()
    assert "95 % CI over seeds, t" in md and "95 % CI over clips, bootstrap" in md


# ----------------------------------------------------------------------------- cross-dataset
def test_cross_dataset_evaluation_through_the_cli(tmp_path: Path, fsdd_dir: Path) -> None:
    """Train on three FSDD speakers, evaluate on the other three (own datasets), read it back in compare."""
    files = sorted(p for p in (fsdd_dir / "recordings").glob("*.wav") if int(p.stem.split("_")[2]) < 3)
    groups = {"a": ["george", "jackson", "lucas"], "b": ["nicolas", "theo", "yweweler"]}
    proj = tmp_path / "proj"
    proj.mkdir()
    base = full_repo_params()
    base["grid"] = {"tasks": ["digits_a", "digits_b"], "models": ["fcn"], "seeds": [0]}
    for key, speakers in groups.items():
        csv = tmp_path / f"{key}.csv"
        pd.DataFrame(
            [{"path": str(f), "labels": f.stem.split("_")[0]} for f in files if f.stem.split("_")[1] in speakers]
        ).to_csv(csv, index=False)
        base["datasets"][f"digits_{key}"] = {
            "kind": "folder",
            "path": str(fsdd_dir),
            "labels_csv": str(csv),
            "clip_seconds": 1.0,
            "task": "single_label",
        }
    base["train"].update({"epochs": 2, "width": 0.125, "batch_size": 8})
    base["evaluate"]["n_chunks"] = 1
    (proj / "params.yaml").write_text(yaml.safe_dump(base, sort_keys=False))

    def run(*cmd: str) -> str:
        res = subprocess.run([sys.executable, "-m", "pipeline", *cmd], cwd=proj, capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, f"{cmd}: {res.stdout[-1500:]}\n{res.stderr[-3000:]}"
        return res.stdout

    for name in ("digits_a", "digits_b"):
        run("download", name)
        run("segment", name)
    run("train", "digits_a", "fcn")
    out = json.loads(run("evaluate", "digits_a", "fcn", "--on", "digits_b").strip().splitlines()[-1])
    assert 0.0 <= out["cross/digits_b/accuracy"] <= 1.0 and out["cross/digits_b/n_labels_shared"] == 10
    assert (proj / "metrics" / "digits_a" / "fcn" / "seed0" / "cross" / "digits_b" / "eval.json").exists()
    shown = json.loads(run("compare", "--format", "json", "--task", "digits_a"))
    rows = shown if isinstance(shown, list) else shown.get("rows", shown)
    assert any("cross/digits_b/accuracy" in r for r in rows)
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline",
            "evaluate",
            "digits_a",
            "fcn",
            "--on",
            "digits_b",
            "--label-map",
            str(tmp_path / "missing.json"),
        ],
        cwd=proj,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 2 and "--label-map" in bad.stderr and "Traceback" not in bad.stderr
