"""Training loop, resume, features cache and evaluation on tiny synthetic data (CPU)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.config.params import grid_model
from pipeline.core.paths import Layout
from pipeline.data.shards import FeatureStore, SegmentStore
from pipeline.features.cache import cache_dir_name, segments_key
from pipeline.models.build import build_for_task
from pipeline.orchestration import stages
from pipeline.training.train import train_model


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """synth_keywords downloaded, segmented and feature-cached once for the module."""
    from pipeline.config.params import load_params
    from tests.conftest import tiny_overrides

    root = tmp_path_factory.mktemp("proj")
    params = load_params(
        Path(__file__).resolve().parents[1] / "params.yaml",
        overrides=tiny_overrides(tasks=["synth_keywords"], models=["fcn", "samplecnn"], n_clips=60, epochs=2),
    )
    layout = Layout(root)
    stages.download("synth_keywords", params, layout)
    stages.segment("synth_keywords", params, layout)
    stages.features("synth_keywords", params, layout)
    return params, layout


def test_cached_features_equal_frontend_on_waveform(prepared) -> None:
    params, layout = prepared
    store = SegmentStore(layout.segments("synth_keywords"))
    model = build_for_task(
        grid_model(params, "fcn"), "synth_keywords", n_classes=len(store.labels), multilabel=False, clip_samples=16000
    )
    spec = model.frontend.cache_spec()
    assert spec is not None
    feats = FeatureStore(
        layout.features("synth_keywords") / cache_dir_name(spec, segments_key(layout.segments("synth_keywords")))
    )
    for row in store.manifest.head(5).itertuples(index=False):
        with torch.no_grad():
            direct = model.frontend(torch.from_numpy(store.wave(row))[None])[0].numpy()
        cached = feats.frames(row.clip_id)
        assert cached.shape == direct.shape
        # float16 storage: relative rounding 2**-11 of the magnitude (dB values up to ~100)
        np.testing.assert_allclose(cached, direct, rtol=2**-10, atol=1e-2)


def test_trainable_frontend_is_not_cached(prepared) -> None:
    params, _ = prepared
    model = build_for_task(grid_model(params, "samplecnn"), "synth_keywords", n_classes=4, multilabel=False, clip_samples=16000)
    assert model.frontend.cache_spec() is None


def test_train_evaluate_writes_model_metrics_and_mlflow(prepared, caplog) -> None:
    from pipeline.models.checkpoint import read_card
    from pipeline.tracking.runs import runs_table

    params, layout = prepared
    with caplog.at_level("WARNING", logger="pipeline.training.train"):
        result = train_model("synth_keywords", "fcn", params, layout)
    card = read_card(result.model_dir)
    assert card["metadata"]["best_epoch"] in (1, 2) and len(card["labels"]) == 12
    last_is_best = card["metadata"]["best_epoch"] == 2  # of 2 epochs: the convergence warning, in the log and the card
    assert card["metadata"]["still_improving"] is last_is_best and card["metadata"]["epochs_run"] == 2
    assert ("validation still improving at epoch 2; more epochs would likely help" in caplog.text) is last_is_best
    metrics = stages.evaluate("synth_keywords", "fcn", params, layout)
    assert 0.0 <= metrics["test/accuracy"] <= 1.0
    saved = json.loads((layout.metrics("synth_keywords", "fcn") / "eval.json").read_text())
    assert saved["test/accuracy"] == metrics["test/accuracy"]
    assert saved["split_source"].startswith("generated: seeded random split")
    assert saved["vocabulary_source"] == "generated: the generator's vocabulary.txt"
    runs = runs_table(layout.root, ["synth_keywords"])
    row = runs[runs.model == "fcn"].iloc[0]
    assert row["status"] == "FINISHED" and row["test/accuracy"] == pytest.approx(metrics["test/accuracy"])
    assert "val/loss" in runs.columns and "train/loss" in runs.columns
    from pipeline.models.checkpoint import read_run_id
    from pipeline.tracking.runs import client

    run_id = read_run_id(layout.model("synth_keywords", "fcn"))
    assert run_id and "mlflow_run_id" not in card["metadata"]  # beside the model, not in its DVC-hashed card
    artifacts = {a.path for a in client(layout.root).list_artifacts(run_id, "model")}
    assert {"model/model.pt", "model/model.json", "model/history.csv"} <= artifacts
    # the training curve reaches the run with the report (tests/test_report.py::test_figures_logged_to_mlflow)


def _kill_after(epoch: int):
    """An epoch hook that stops training after ``epoch`` as a kill would (after the checkpoint)."""

    def hook(done: int) -> None:
        if done >= epoch:
            raise KeyboardInterrupt(f"stopped after epoch {done}")

    return hook


def test_resume_after_kill_matches_uninterrupted(prepared, tmp_path) -> None:
    """Stop after epoch 1, resume: same weights and metrics as a straight 2-epoch run."""
    params, layout = prepared
    straight = Layout(tmp_path / "a")
    resumed = Layout(tmp_path / "b")
    for lay in (straight, resumed):
        for sub in ("data",):
            (lay.root).mkdir(parents=True, exist_ok=True)
            (lay.root / sub).symlink_to(layout.root / sub)
    a = train_model("synth_keywords", "samplecnn", params, straight)
    with pytest.raises(KeyboardInterrupt):
        train_model("synth_keywords", "samplecnn", params, resumed, on_epoch_end=_kill_after(1))
    assert (resumed.checkpoints("synth_keywords", "samplecnn", 0) / "last.pt").exists()
    assert not (resumed.model("synth_keywords", "samplecnn") / "model.pt").exists()  # partial work is not finished work
    b = train_model("synth_keywords", "samplecnn", params, resumed, resume=True)
    assert a.best_epoch == b.best_epoch
    assert a.best_val_loss == pytest.approx(b.best_val_loss, rel=1e-6, abs=1e-7)
    ea = stages.evaluate("synth_keywords", "samplecnn", params, straight)
    eb = stages.evaluate("synth_keywords", "samplecnn", params, resumed)
    assert ea["test/accuracy"] == eb["test/accuracy"] and ea["test/loss"] == pytest.approx(eb["test/loss"], rel=1e-6)


def test_two_runs_of_a_cell_package_the_same_bytes(prepared, tmp_path) -> None:
    """What DVC hashes of a packaged model is the same on a re-run (a fresh-clone repro leaves git clean);
    only the MLflow run id beside it differs, and .dvcignore keeps it out of the hash."""
    import hashlib

    from pipeline.models.checkpoint import RUN_FILE

    params, layout = prepared
    digests, runs = [], []
    for name in ("a", "b"):
        lay = Layout(tmp_path / name)
        lay.root.mkdir()
        (lay.root / "data").symlink_to(layout.root / "data")
        model_dir = train_model("synth_keywords", "fcn", params, lay).model_dir
        digests.append({f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in model_dir.iterdir() if f.name != RUN_FILE})
        runs.append((model_dir / RUN_FILE).read_text())
    assert digests[0] == digests[1] and {"model.pt", "model.json", "history.csv"} <= set(digests[0])
    assert runs[0] != runs[1]
    assert RUN_FILE in (Path(__file__).resolve().parents[1] / ".dvcignore").read_text().split()


def test_stale_checkpoint_is_not_resumed(prepared, tmp_path) -> None:
    params, layout = prepared
    lay = Layout(tmp_path)
    (tmp_path / "data").symlink_to(layout.root / "data")
    with pytest.raises(KeyboardInterrupt):
        train_model("synth_keywords", "samplecnn", params, lay, on_epoch_end=_kill_after(1))
    changed = params.model_copy(update={"train": params.train.model_copy(update={"lr": 0.01})})
    res = train_model("synth_keywords", "samplecnn", changed, lay, resume=True)
    hist = (res.model_dir / "history.csv").read_text().splitlines()
    assert len(hist) == 1 + params.train.epochs  # trained from epoch 1, not resumed


def test_checkpoint_from_other_model_code_is_not_resumed(prepared, tmp_path, monkeypatch) -> None:
    """A model-code change (what makes DVC re-run `train`) must not continue stale weights."""
    import pipeline.training.train as train_mod

    params, layout = prepared
    lay = Layout(tmp_path)
    (tmp_path / "data").symlink_to(layout.root / "data")
    with pytest.raises(KeyboardInterrupt):
        train_model("synth_keywords", "samplecnn", params, lay, on_epoch_end=_kill_after(1))
    monkeypatch.setattr(train_mod, "cell_code_hash", lambda variant: "other-code")
    res = train_model("synth_keywords", "samplecnn", params, lay, resume=True)
    hist = (res.model_dir / "history.csv").read_text().splitlines()
    assert len(hist) == 1 + params.train.epochs  # trained from epoch 1, not resumed


def test_cell_code_hash_covers_the_model_sources_and_no_other_model(monkeypatch) -> None:
    """The checkpoint fingerprint's code part changes with the variant's own files, not another variant's."""
    import pipeline.core.codebase as codebase
    from pipeline.training.code import cell_code_hash

    before = {v: cell_code_hash(v) for v in ("attention_rnn", "fcn")}
    real = codebase.sha256_file
    monkeypatch.setattr(codebase, "sha256_file", lambda f: "edited" if Path(f).name == "attention_rnn.py" else real(f))
    assert cell_code_hash("attention_rnn") != before["attention_rnn"]
    assert cell_code_hash("fcn") == before["fcn"]


@pytest.fixture(scope="module")
def every_second(prepared, tmp_path_factory):
    """fcn trained 2 epochs with ``train.val_every: 2`` (validated after epoch 2 only) in its own project;
    evaluate and robustness score the same seeded 8 test clips (no perturbation: the clean point)."""
    params, layout = prepared
    root = tmp_path_factory.mktemp("every2")
    (root / "data").symlink_to(layout.root / "data")
    changed = params.model_copy(
        update={
            "train": params.train.model_copy(update={"val_every": 2}),
            "evaluate": params.evaluate.model_copy(update={"max_clips": 8}),
            "robustness": params.robustness.model_copy(update={"enabled": False, "max_clips": 8}),
        }
    )
    return changed, Layout(root), train_model("synth_keywords", "fcn", changed, Layout(root))


def test_val_every_validates_the_last_epoch_only(every_second) -> None:
    import pandas as pd

    _, _, result = every_second
    hist = pd.read_csv(result.model_dir / "history.csv")
    assert hist["epoch"].tolist() == [1, 2] and hist["val_loss"].isna().tolist() == [True, False]
    assert result.best_epoch == 2 and result.best_val_loss == hist["val_loss"].iloc[1]


def test_cell_robustness_takes_the_clean_scores_of_evaluate(every_second, caplog) -> None:
    """Issue 27: the clean split is scored once per cell; robustness's clean row equals eval.json exactly."""
    params, layout, _ = every_second
    result = stages.evaluate("synth_keywords", "fcn", params, layout)
    with caplog.at_level("INFO", logger="pipeline.robustness.stage"):
        table = stages.robustness("synth_keywords", "fcn", params, layout, reuse_clean=True)
    assert "clean on 8 clips (scores of evaluate)" in caplog.text
    clean = table[table["perturbation"] == "clean"].set_index("metric")["value"]
    shared = [m for m in clean.index if f"test/{m}" in result]
    assert "accuracy" in shared and all(clean[m] == result[f"test/{m}"] for m in shared)
    rescored = stages.robustness("synth_keywords", "fcn", params, layout)  # alone: scores the clean clips itself
    again = rescored[rescored["perturbation"] == "clean"].set_index("metric")["value"]
    assert again[shared].tolist() == pytest.approx(clean[shared].tolist(), rel=1e-6, abs=1e-7)


def test_a_cell_resolves_its_runtime_once(every_second, monkeypatch) -> None:
    """Issue 29: train, evaluate and robustness of a cell share one Runtime (the device is picked once)."""
    import pipeline.models.runtime as runtime_module

    params, layout, _ = every_second
    picks: list[tuple] = []
    original = runtime_module.pick_device
    monkeypatch.setattr(runtime_module, "pick_device", lambda *a, **k: picks.append(a) or original(*a, **k))
    result = stages.cell("synth_keywords", "fcn", params, layout)
    assert len(picks) == 1 and "test/accuracy" in result
