"""Every metric of a task kind with an interval (pipeline.evaluation.metric_intervals) and collapsed probe seeds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, average_precision_score, f1_score, roc_auc_score

from pipeline.evaluation.metric_intervals import _pr_auc, as_json, metric_intervals, metric_lines
from pipeline.evaluation.probe import distinct_seeds, transfer_matrix
from pipeline.evaluation.stats import clip_interval


def _multilabel(n: int = 120, classes: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random((n, classes)) < 0.3).astype(int)
    return y, np.round(rng.random((n, classes)) + 0.4 * y, 1)  # rounded: ties


def test_multilabel_values_equal_scikit_learn_and_the_primary_interval_equals_clip_interval() -> None:
    y, s = _multilabel()
    out = metric_intervals("multilabel", y, s, [f"tag{i}" for i in range(6)], n_resamples=200)
    assert out["roc_auc"].value == pytest.approx(roc_auc_score(y, s, average="macro"))
    assert out["pr_auc"].value == pytest.approx(average_precision_score(y, s, average="macro"))
    assert out["per_tag"]["tag2"].value == pytest.approx(roc_auc_score(y[:, 2], s[:, 2]))
    primary = clip_interval("multilabel", y, [s], n_resamples=200)  # same resamples, same percentiles
    assert (out["roc_auc"].low, out["roc_auc"].high) == pytest.approx((primary.low, primary.high), rel=1e-12)
    for v in (out["roc_auc"], out["pr_auc"], *out["per_tag"].values()):
        assert v.low <= v.value <= v.high


def test_resampled_pr_auc_equals_scikit_learn_on_each_resample() -> None:
    y, s = _multilabel(60, 4, seed=1)
    idx = np.random.default_rng(2).integers(0, 60, (15, 60))
    expected = []
    for rows in idx:
        yy = y[rows]
        ok = (yy.sum(0) > 0) & (yy.sum(0) < len(yy))
        expected.append(average_precision_score(yy[:, ok], s[rows][:, ok], average="macro"))
    np.testing.assert_allclose(_pr_auc(y, s, idx), expected, rtol=0, atol=1e-12)


def test_single_label_gives_accuracy_and_macro_f1() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 4, 90)
    s = rng.random((90, 4))
    s[np.arange(90), y] += 0.3
    out = metric_intervals("single", y, s, n_resamples=200)
    assert set(out) == {"accuracy", "macro_f1"}
    assert out["accuracy"].value == pytest.approx(accuracy_score(y, s.argmax(1)))
    assert out["macro_f1"].value == pytest.approx(f1_score(y, s.argmax(1), average="macro"))
    lines = metric_lines(as_json(out))
    assert lines[1].startswith("macro_f1 ") and "[" in lines[1]


def _record(seed: int, sha: str, value: float) -> dict:
    return {"seed": seed, "scores_sha256": sha, "value": value, "best": "linear", "_scores": Path("/nonexistent")}


def test_identical_probe_seeds_collapse_into_one_run_with_a_note() -> None:
    kept, note = distinct_seeds([_record(0, "a", 0.873), _record(1, "a", 0.873), _record(2, "a", 0.873)])
    assert [r["seed"] for r in kept] == [0] and note.startswith("seeds 0, 1, 2 gave 1 distinct result")
    kept, note = distinct_seeds([_record(0, "a", 0.8), _record(1, "b", 0.9)])
    assert len(kept) == 2 and note == ""
    table = pd.DataFrame(
        [
            {
                "representation": "sota:mtat/musicnn",
                "dataset": "m21",
                "metric": "roc_auc",
                "value": 0.873,
                "std": float("nan"),
                "n_seeds": 1,
                "ci_low": 0.85,
                "ci_high": 0.89,
                "note": "seeds 0, 1, 2 gave 1 distinct result: deterministic probe on the same embeddings",
            }
        ]
    )
    cell = transfer_matrix(table).iloc[0, 1]
    assert "± 0.000" not in cell and cell.startswith("0.873 [0.850, 0.890] (seeds 0, 1, 2 gave 1 distinct")
