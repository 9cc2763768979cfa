"""DVC views that read: one metrics file per task (``metrics/<task>.json``), the cells' files tracked
but no DVC metrics, so ``dvc metrics show`` is a row per task and ``dvc exp show`` a column per model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from pipeline.config.params import load_params
from pipeline.core.paths import Layout
from pipeline.evaluation.task_summary import task_summary, write_task_summary
from tests.conftest import REPO


def _metrics_files(stage: dict) -> list[str]:
    return [next(iter(m)) if isinstance(m, dict) else m for m in stage.get("metrics", [])]


@pytest.mark.fast
def test_the_committed_dvc_yaml_declares_one_summary_per_task_and_no_cell_metrics() -> None:
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    declared = {name: _metrics_files(stage) for name, stage in stages.items() if _metrics_files(stage)}
    assert declared == {"summary": ["metrics/${item.task}.json"]}
    assert stages["summary"]["matrix"] == {"task": "${grid.tasks}"}  # one file per task of the grid
    outs = [next(iter(o)) if isinstance(o, dict) else o for o in stages["cell-fcn"]["outs"]]
    assert "metrics/${item.task}/fcn/seed${item.seed}/eval.json" in outs  # still tracked, as an uncached out
    assert "metrics/${item.task}/fcn/seed${item.seed}/robustness.json" in outs


def _eval(layout: Layout, task: str, model: str, seed: int, **metrics: float) -> None:
    path = layout.metrics(task, model, seed) / "eval.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({f"test/{k}": v for k, v in metrics.items()}))


@pytest.mark.fast
def test_a_task_summary_is_the_seed_mean_primary_metric_per_model(tmp_path: Path) -> None:
    params = load_params(REPO / "params.yaml", overrides={"grid": {"models": ["fcn", "hcnn", "crnn"], "seeds": [0, 1]}})
    layout = Layout(tmp_path)
    _eval(layout, "synth_keywords", "fcn", 0, accuracy=0.9, loss=0.3)
    _eval(layout, "synth_keywords", "fcn", 1, accuracy=0.8, loss=0.5)
    _eval(layout, "synth_keywords", "hcnn", 0, accuracy=0.75)
    _eval(layout, "corpus_tags", "fcn", 0, roc_auc=0.81234, pr_auc=0.5)
    assert task_summary(params, layout, "synth_keywords") == {"metric": "accuracy", "seeds": 2, "fcn": 0.85, "hcnn": 0.75}
    path = write_task_summary(params, layout, "corpus_tags")
    assert path == tmp_path / "metrics" / "corpus_tags.json"
    assert json.loads(path.read_text()) == {"metric": "roc_auc", "seeds": 2, "fcn": 0.8123}
    assert task_summary(params, layout, "synth_events") == {"metric": "none", "seeds": 2}
