"""``musicrep probe``: frozen embeddings, cached; linear/MLP probes chosen on val; test metric with an interval (~40 s).

One tiny project: ``synth_keywords`` and ``synth_tags`` (48 clips each), one FCN trained for a few
steps on ``synth_keywords``; its embeddings are probed on ``synth_tags`` (multi-label) and on its
own task (single-label), against a random network of the same architecture.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from pipeline.core.errors import UserError
from pipeline.core.paths import Layout
from pipeline.evaluation import probe_embeddings
from pipeline.evaluation.probe import fit_probes, run_probe, transfer_matrix, transfer_table
from pipeline.orchestration import stages
from tests.conftest import REPO, tiny_overrides


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    from pipeline.config.params import load_params

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("probe-proj")
    overrides = tiny_overrides(tasks=["synth_keywords", "synth_tags"], models=["fcn"], n_clips=48)
    overrides["features"] = {"enabled": False}
    params = load_params(REPO / "params.yaml", overrides=overrides)
    layout = Layout(root)
    for task in ("synth_keywords", "synth_tags"):
        stages.download(task, params, layout)
        stages.segment(task, params, layout)
    stages.train("synth_keywords", "fcn", params, layout, resume=False)
    (root / "params.yaml").write_text((REPO / "params.yaml").read_text())
    return params, layout


def test_probe_through_the_cli_gives_an_interval_and_an_mlflow_run(project, monkeypatch) -> None:
    from pipeline.cli.main import app
    from pipeline.tracking import runs as tracking

    params, layout = project
    monkeypatch.chdir(layout.root)
    res = CliRunner().invoke(
        app, ["--set", "evaluate.n_chunks=2", "probe", "synth_tags", "--model", "synth_keywords/fcn", "--json"]
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout[res.stdout.index("{") :])
    assert out["metric"] == "roc_auc" and out["representation"] == "synth_keywords/fcn" and out["best"] in ("linear", "mlp")
    assert 0.0 <= out["ci_low"] <= out["value"] <= out["ci_high"] <= 1.0
    assert out["n_train"] + out["n_val"] + out["n_test"] == 48 and out["embedding_dim"] == 8
    assert set(out["linear"]["hyper"]) == {"C"} and "alpha" in out["mlp"]["hyper"]
    assert (layout.root / "metrics/probes/synth_tags/synth_keywords__fcn/seed0/probe.json").exists()
    metrics = out["metrics"]  # every multi-label metric of the best probe, with its interval
    assert set(metrics) == {"roc_auc", "pr_auc", "per_tag"} and metrics["roc_auc"]["value"] == pytest.approx(out["value"])
    assert metrics["pr_auc"]["ci_low"] <= metrics["pr_auc"]["value"] <= metrics["pr_auc"]["ci_high"]
    assert len(metrics["per_tag"]) == len(json.loads((layout.segments("synth_tags") / "meta.json").read_text())["labels"])
    text = CliRunner().invoke(app, ["--set", "evaluate.n_chunks=2", "probe", "synth_tags", "--model", "synth_keywords/fcn"])
    assert text.exit_code == 0 and "  pr_auc " in text.stdout and "roc_auc per tag: " in text.stdout

    c = tracking.client(layout.root)
    runs = c.search_runs([c.get_experiment_by_name("probes").experiment_id])
    assert any(
        r.data.tags.get("musicrep.kind") == "probe" and r.data.params["embedding_model_sha256"] == out["model_sha256"]
        for r in runs
    )
    assert all(row != "probes" for row in tracking.runs_table(layout.root)["task"])  # compare's task table stays without probes


def test_embeddings_are_cached_per_weights_and_random_init_is_the_baseline(project, monkeypatch) -> None:
    params, layout = project
    first = run_probe("synth_keywords", "synth_keywords/fcn", params, layout, track=False)
    assert first["metric"] == "accuracy"
    calls = []
    real = probe_embeddings.embed_clips
    monkeypatch.setattr(probe_embeddings, "embed_clips", lambda *a, **k: calls.append(1) or real(*a, **k))
    again = run_probe("synth_keywords", "synth_keywords/fcn", params, layout, track=False)
    assert calls == [] and again["value"] == first["value"]  # read from the cache, same probe
    rand = [
        run_probe("synth_keywords", "synth_keywords/fcn", params, layout, seed=s, random_init=True, track=False) for s in (0, 1)
    ]
    assert len(calls) == 2  # a new random network per seed: new embeddings
    assert rand[0]["representation"] == "synth_keywords/fcn (random init)" and rand[0]["model_seed"] == 0

    table = transfer_table(layout)
    row = table[(table.representation == "synth_keywords/fcn (random init)") & (table.dataset == "synth_keywords")].iloc[0]
    assert row["n_seeds"] == 2 and row["std"] == pytest.approx(np.std([r["value"] for r in rand], ddof=1))
    grid = transfer_matrix(table)
    assert list(grid["representation"])[-1].endswith("(random init)") and "synth_keywords (accuracy)" in grid.columns


def test_the_grid_is_chosen_on_validation_only() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((120, 4))
    y = (x[:, 0] > 0).astype(int)
    x_val, y_val = x[80:], y[80:]
    fitted = fit_probes("single", 2, (x[:80], y[:80]), (x_val, y_val))
    assert set(fitted) == {"linear", "mlp"} and all(v[1] > 0.8 for v in fitted.values())
    # the test split never enters the choice: an adversarial val set changes it, the test set cannot
    flipped = fit_probes("single", 2, (x[:80], y[:80]), (x_val, 1 - y_val))
    assert flipped["linear"][1] < 0.5


def test_an_unknown_model_is_a_user_error(project) -> None:
    params, layout = project
    with pytest.raises(UserError, match="synth_tags/nope"):
        run_probe("synth_tags", "synth_tags/nope", params, layout, track=False)


def test_compare_and_the_report_show_the_transfer_table(project, monkeypatch, tmp_path) -> None:
    from pipeline.cli.main import app
    from pipeline.report.build import _transfer

    params, layout = project
    run_probe("synth_tags", "synth_keywords/fcn", params, layout, random_init=True, track=False)
    monkeypatch.chdir(layout.root)
    res = CliRunner().invoke(app, ["compare", "--transfer", "--format", "markdown"])
    assert res.exit_code == 0, res.output
    assert "| synth_keywords/fcn (random init) |" in res.stdout and "synth_tags (roc_auc)" in res.stdout
    section = _transfer(layout)
    assert section is not None and any("synth_keywords/fcn (random init)" in row[0] for row in section["table"]["rows"])
    template = (Path(__file__).resolve().parents[1] / "pipeline" / "report" / "templates" / "report.j2").read_text()
    assert "Transfer: frozen-embedding probes" in template
