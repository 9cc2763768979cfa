"""The paper beside ours (issue 27, deliverable 6): [SMC20]'s MTAT rows in ``compare`` and the report,
marked with their status; DCASE ranked by its per-sample F1 at 0.1, with an interval that does not vanish."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score
from typer.testing import CliRunner

from pipeline.evaluation.references import CONFIRMED, RECALLED, SMC20_MTAT, references_for
from pipeline.evaluation.stats import clip_interval, metric_on
from pipeline.models.zoo import list_variants


def _fake_runs(task: str) -> pd.DataFrame:
    """Two finished runs (fcn, two seeds) of ``task`` as :func:`pipeline.tracking.runs.runs_table` returns them."""
    return pd.DataFrame(
        [
            {"task": task, "model": "fcn", "seed": str(s), "status": "FINISHED", "params": "447732", **metrics}
            for s, metrics in (
                (0, {"test/roc_auc": 0.80, "test/pr_auc": 0.30, "test/f1_sample": 0.40}),
                (1, {"test/roc_auc": 0.82, "test/pr_auc": 0.32, "test/f1_sample": 0.44}),
            )
        ]
    )


@pytest.fixture
def fake_runs(monkeypatch):
    def install(task: str) -> None:
        monkeypatch.setattr("pipeline.report.compare.runs_table", lambda root, tasks=None: _fake_runs(task))

    return install


def test_references_name_registry_variants_and_only_short_res_is_confirmed() -> None:
    assert {r.model for r in SMC20_MTAT} <= {v.name for v in list_variants()}
    assert [r.model for r in SMC20_MTAT if r.status == CONFIRMED] == ["short_res"]
    assert all(r.status == RECALLED for r in SMC20_MTAT if r.model != "short_res")
    short_res = next(r for r in SMC20_MTAT if r.model == "short_res")
    assert (short_res.roc_auc, short_res.pr_auc) == (0.9129, 0.4614)  # Papers-with-Code: 91.29 / 46.14
    assert references_for("speech_commands") == references_for("synth_tags") == ()


def test_compare_on_mtat_shows_the_paper_rows_with_their_status(fake_runs, tmp_path, monkeypatch) -> None:
    from pipeline.cli.main import app

    fake_runs("mtat")
    monkeypatch.chdir(tmp_path)
    out = CliRunner().invoke(app, ["compare", "--format", "csv"])
    assert out.exit_code == 0, out.output
    table = pd.read_csv(pd.io.common.StringIO(out.stdout))
    assert list(table.columns[:3]) == ["task", "model", "source"]
    ours = table[table["source"] == "ours"]
    assert list(ours["model"]) == ["fcn"] and ours["test/roc_auc"].iloc[0] == pytest.approx(0.81)
    paper = table[table["source"] != "ours"].set_index("model")
    assert len(paper) == len(SMC20_MTAT)
    assert paper.loc["fcn", "source"] == "paper (SMC20, recalled, unverified)"
    assert paper.loc["short_res", "source"] == "paper (SMC20, confirmed)"
    assert paper.loc["crnn", "test/roc_auc"] == pytest.approx(0.8722) and paper.loc["crnn", "test/pr_auc"] == pytest.approx(
        0.3625
    )
    text = CliRunner().invoke(app, ["compare", "--format", "table"]).stdout
    assert "paper (SMC20, recalled, unverified)" in text and "paper (SMC20, confirmed)" in text


@pytest.mark.parametrize("task", ["synth_tags", "corpus_tags", "dcase2017_task4"])
def test_compare_elsewhere_shows_no_paper_rows(fake_runs, task, tmp_path) -> None:
    from pipeline.report.compare import compare_table, format_table

    fake_runs(task)
    table = compare_table(tmp_path, [task])
    assert "source" not in table.columns and list(table["model"]) == ["fcn"]
    assert "paper" not in format_table(table, "table")


def test_report_comparison_table_has_the_paper_rows_only_for_mtat() -> None:
    from pipeline.report.tables import comparison_rows

    header, rows = comparison_rows([], "mtat")
    assert len(rows) == len(SMC20_MTAT) and all(len(r) == len(header) for r in rows)
    by_model = {r[0]: r for r in rows}
    assert by_model["hcnn"][1] == "paper (SMC20, recalled, unverified)" and by_model["short_res"][1] == "paper (SMC20, confirmed)"
    assert by_model["short_res"][header.index("ROC-AUC")] == "0.9129"
    assert comparison_rows([], "synth_tags")[1] == []


def test_dcase_leads_with_the_f1_at_0_1(fake_runs, tmp_path) -> None:
    from pipeline.report.compare import compare_table, format_table
    from pipeline.report.tables import comparison_rows

    fake_runs("dcase2017_task4")
    text = format_table(compare_table(tmp_path, ["dcase2017_task4"]), "table")
    assert text.splitlines()[1].split()[2] == "test/f1_sample"  # task title, then: model, n_seeds, the F1 first
    header, _ = comparison_rows([], "dcase2017_task4")
    assert header[2] == "F1 (sample)"
    assert comparison_rows([], "synth_events")[0][2] == "ROC-AUC"


def test_per_sample_f1_equals_scikit_learn_and_keeps_its_interval() -> None:
    rng = np.random.default_rng(3)
    y = np.zeros((60, 17), dtype=int)
    y[np.arange(60), rng.integers(0, 3, 60)] = 1  # DCASE-like: 14 of 17 classes never occur in the test clips
    y[:5] = 0  # clips without a label
    scores = rng.random((60, 17)) * 0.3
    want = f1_score(y, (scores >= 0.1).astype(int), average="samples", zero_division=0)
    assert metric_on("multilabel", y, scores, np.arange(60), "f1_sample", 0.1) == pytest.approx(want)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "Mean of empty slice"
        ci = clip_interval("multilabel", y, [scores], metric="f1_sample", threshold=0.1)
    assert np.isfinite([ci.low, ci.high]).all() and ci.low <= ci.value <= ci.high and ci.high > ci.low
