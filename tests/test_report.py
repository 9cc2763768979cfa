"""``report`` stage and figures on a tiny, partly-run grid (CPU, ~1 min).

Grid: tasks synth_keywords (single-label), synth_tags (multi-label), synth_events (never
segmented) x models hcnn, cnnsa (trained + evaluated on both real tasks, robustness on
synth_tags), short_cnn (trained but not evaluated on synth_keywords, absent elsewhere).
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
import torch

from pipeline.core.paths import Layout
from pipeline.orchestration import stages
from tests.conftest import REPO, tiny_overrides

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TASKS = ["synth_keywords", "synth_tags", "synth_events"]
MODELS = ["hcnn", "cnnsa", "short_cnn"]


def _params(**kw):
    from pipeline.config.params import load_params

    overrides = tiny_overrides(tasks=TASKS, models=MODELS, n_clips=48, **kw)
    overrides["features"] = {"enabled": False}
    return load_params(REPO / "params.yaml", overrides=overrides)


@pytest.fixture(scope="module")
def grid(tmp_path_factory, monkeypatch_module):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("report-proj")
    monkeypatch_module.setenv("MUSICREP_MODEL_CACHE", str(root / "model-cache"))
    params = _params(epochs=2)
    layout = Layout(root)
    for task in ("synth_keywords", "synth_tags"):
        stages.download(task, params, layout)
        stages.segment(task, params, layout)
        for model in ("hcnn", "cnnsa"):
            stages.train(task, model, params, layout, resume=False)
            stages.evaluate(task, model, params, layout)
    for model in ("hcnn", "cnnsa"):
        stages.robustness("synth_tags", model, params, layout)
    stages.train("synth_keywords", "short_cnn", params, layout, resume=False)  # never evaluated
    index = stages.report(params, layout)
    return params, layout, index


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def _assert_png(blob: bytes) -> None:
    assert blob[:8] == PNG_SIGNATURE
    img = mpimg.imread(io.BytesIO(blob), format="png")
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100


def test_report_files_and_images(grid) -> None:
    params, layout, index = grid
    out = layout.root / "reports"
    assert index == out / "index.html"
    md = (out / "index.md").read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    names = {Path(p).name for p in links}
    for task in ("synth_keywords", "synth_tags"):
        for model in ("hcnn", "cnnsa"):
            assert f"{task}__{model}__training.png" in names
    assert "synth_keywords__hcnn__confusion.png" in names and "synth_tags__hcnn__per_class_auc.png" in names
    assert "synth_tags__hcnn__filterbank.png" in names and "synth_tags__cnnsa__attention.png" in names
    assert "synth_tags__robustness.png" in names
    assert not any("filterbank" in n for n in names if "cnnsa" in n)  # only models that have one
    for rel in links:
        assert not rel.startswith(("http:", "https:", "/"))
        _assert_png((out / rel).read_bytes())
    html = index.read_text()
    srcs = re.findall(r'<img src="([^"]+)"', html)
    assert sorted(srcs) == sorted(links) and "data:image" not in html  # the page links the figure files
    ids = re.findall(r' id="([^"]+)"', html)
    assert len(ids) == len(set(ids)) and set(re.findall(r'href="#([^"]+)"', html)) <= set(ids)
    # nothing from outside: no scripts, stylesheets or images from the network
    assert "<script" not in html and "<link" not in html
    assert not re.search(r'(src|href)="(https?:)?//', html)


def test_report_tables_say_what_ran(grid) -> None:
    params, layout, index = grid
    out = layout.root / "reports"
    md = (out / "index.md").read_text()
    assert "Not real recordings" in md and "are generated" in md and "synth_tags (synthetic)" in md
    assert "rendered" not in md.split("## ")[0]  # no rendered task in this grid, so the banner does not name one
    results = pd.read_csv(out / "results.csv")
    assert len(results) == len(TASKS) * len(MODELS)
    status = {(r.task, r.model): r.status for r in results.itertuples()}
    assert status[("synth_tags", "hcnn")] == "evaluated"
    assert status[("synth_keywords", "short_cnn")] == "trained"
    assert status[("synth_events", "hcnn")] == "not run" and status[("synth_tags", "short_cnn")] == "not run"
    kw = results[(results.task == "synth_keywords") & (results.model == "hcnn")].iloc[0]
    assert 0 <= kw["test/accuracy"] <= 1 and kw["params"] > 0 and kw["train_seconds"] > 0
    tags = results[(results.task == "synth_tags") & (results.model == "cnnsa")].iloc[0]
    assert 0 <= tags["test/roc_auc"] <= 1 and tags["robustness"]
    assert any(c.startswith("robust/white_noise/") for c in results.columns)
    assert results["synthetic"].all()
    trained = results[results.status != "not run"]
    assert trained["registry_uri"].str.startswith("models:/musicrep-").all()
    # the markdown table marks the missing stages
    comparison = md.split("## Comparison (clean test split)")[1]  # after the first-screen summary
    kw_table = comparison.split("### synth_keywords (synthetic)")[1].split("###")[0]
    short_row = next(line for line in kw_table.splitlines() if line.startswith("| short_cnn |"))
    assert "| trained |" in short_row and "not run" in short_row
    assert "| synth_events | synthetic (generated) | not run |" in md  # coverage of an unsegmented task
    assert "48 / 48" in md and "git commit" in md and "torch" in md
    assert "Relative change" in md and "a loss is negative" in md


def test_figures_logged_to_mlflow(grid) -> None:
    from pipeline.models.checkpoint import read_run_id
    from pipeline.tracking.runs import client

    _, layout, _ = grid
    run_id = read_run_id(layout.model("synth_tags", "hcnn"))
    names = {Path(a.path).name for a in client(layout.root).list_artifacts(run_id, "figures")}
    assert {"synth_tags__hcnn__training.png", "synth_tags__hcnn__filterbank.png", "synth_tags__hcnn__per_class_auc.png"} <= names
    png = Path(client(layout.root).download_artifacts(run_id, "figures/synth_tags__hcnn__training.png", str(layout.root / "dl")))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # the run's training curve comes from the report


def test_rebuild_is_idempotent_and_drops_stale_files(grid) -> None:
    params, layout, _ = grid
    out = layout.root / "reports"
    (out / "figures" / "stale.png").write_bytes(b"old")
    before = pd.read_csv(out / "results.csv")
    stages.report(params, layout)
    after = pd.read_csv(out / "results.csv")
    assert not (out / "figures" / "stale.png").exists()
    assert list(after["registry_uri"].fillna("")) == list(before["registry_uri"].fillna(""))  # no new versions
    assert not list(layout.root.glob(".reports*"))  # no temporary directories left


def test_report_on_an_empty_project(tmp_path) -> None:
    from pipeline.report.build import build_report

    params = _params()
    index = build_report(params, Layout(tmp_path), register=False, log_figures=False)
    md = (tmp_path / "reports" / "index.md").read_text()
    assert index.exists() and "0 of 9 trained" in md and "Robustness: not run" in md
    results = pd.read_csv(tmp_path / "reports" / "results.csv")
    assert (results["status"] == "not run").all() and len(results) == 9


def test_filterbank_figure_shows_learned_q(tmp_path) -> None:
    from pipeline.models.base import ModelConfig
    from pipeline.models.zoo import build_model
    from pipeline.report import figures

    model = build_model(ModelConfig("hcnn", 4, False, width=0.125, input_length=16384, options={"learn_f0": True}))
    fb = figures.find_harmonic_filterbank(model)
    with torch.no_grad():
        fb.bw_q.fill_(1.5)
    png = figures.harmonic_filterbank_figure(model, "unit", tmp_path / "fb.png")
    _assert_png(png.read_bytes())
    other = build_model(ModelConfig("short_cnn", 4, False, width=0.125, input_length=16000))
    assert figures.harmonic_filterbank_figure(other, "unit", tmp_path / "none.png") is None
    assert figures.attention_figure(other, np.zeros(16000, np.float32), list("abcd"), "unit", tmp_path / "a.png") is None


def test_multilabel_model_predicts_sigmoid_scores(grid, tmp_path) -> None:
    import soundfile as sf

    from pipeline.inference.predict import predict

    _, layout, _ = grid
    sf.write(tmp_path / "clip.ogg", (0.1 * np.random.default_rng(0).standard_normal((48000, 2))).astype(np.float32), 48000)
    result = predict([tmp_path / "clip.ogg"], str(layout.model("synth_tags", "cnnsa")), top_k=14)
    (record,) = result.records
    scores = np.array(list(record["scores"].values()))
    assert result.multilabel and len(scores) == 14 and ((scores > 0) & (scores < 1)).all()
    assert abs(scores.sum() - 1.0) > 1e-3  # independent sigmoids, not a softmax
    assert [t["score"] for t in record["top"]] == sorted(scores, reverse=True)


def _artifact_files(client, run_id: str, path: str | None = None) -> list[str]:
    files = []
    for a in client.list_artifacts(run_id, path):
        files += _artifact_files(client, run_id, a.path) if a.is_dir else [a.path]
    return files


def test_model_pt_stored_once_per_run_and_a_champion_per_family(grid, tmp_path) -> None:
    from pipeline.models.checkpoint import read_run_id
    from pipeline.tracking.registry import get_version, resolve_model_uri
    from pipeline.tracking.runs import client

    _, layout, _ = grid
    c = client(layout.root)
    for task in ("synth_keywords", "synth_tags"):
        for model in ("hcnn", "cnnsa"):
            run_id = read_run_id(layout.model(task, model))
            files = _artifact_files(c, run_id)
            assert [f for f in files if f.endswith("model.pt")] == ["model/model.pt"], files
            cell = get_version(f"models:/musicrep-{task}-{model}/latest", layout.root, c)
            assert cell.source.endswith(f"{run_id}/model") or cell.source.endswith("/artifacts/model"), cell.source
        families = {"harmonic": "hcnn", "mel": "cnnsa"}
        for family, model in families.items():
            champion = get_version(f"models:/musicrep-{task}-family-{family}@champion", layout.root, c)
            assert champion.tags["model_name"] == model and champion.tags["family"] == family
            local = resolve_model_uri(f"models:/musicrep-{task}-family-{family}@champion", layout.root, tmp_path / "cache")
            assert (local / "model.pt").read_bytes() == (layout.model(task, model) / "model.pt").read_bytes()
    md = (layout.root / "reports" / "index.md").read_text()
    assert "`models:/musicrep-synth_tags-family-harmonic@champion`" in md.split("**Contents:**")[0]
    view = json.loads(c.get_experiment_by_name("synth_keywords").tags["mlflow.sharedViewState.musicrep"])
    assert view["orderByKey"] == "metrics.`test/accuracy`" and not view["orderByAsc"]
    assert "metrics.`test/accuracy_ci_low`" in view["selectedColumns"]


@pytest.mark.fast
def test_the_report_says_where_each_tasks_audio_comes_from() -> None:
    """Generated, rendered from real scores, or recordings: the titles and the coverage column say which."""
    from pipeline.report.build import _title
    from pipeline.report.collect import ORIGINS, data_origin, is_synthetic

    assert [data_origin(t) for t in ("synth_keywords", "corpus_tags", "fsdd", "mtat")] == [
        "synthetic",
        "rendered",
        "real",
        "real",
    ]
    assert (
        _title("corpus_tags") == "corpus_tags (rendered)" and _title("synth_events", " / fcn") == "synth_events / fcn (synthetic)"
    )
    assert _title("speech_commands") == "speech_commands"
    assert is_synthetic("corpus_tags") and not is_synthetic("fsdd")
    assert ORIGINS["rendered"].startswith("rendered")
