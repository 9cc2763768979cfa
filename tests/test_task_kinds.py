"""One spelling of the task kinds and one metric table per kind (pipeline/core/task_kinds.py); params
files with the earlier spellings keep working."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pipeline.config.params import FolderDatasetParams
from pipeline.core.task_kinds import MULTILABEL, PRIMARY_METRIC, REPORTED_METRICS, SINGLE, TASK_KINDS, normalize_kind
from pipeline.evaluation.metrics import primary_metric

PIPELINE = Path(__file__).resolve().parents[1] / "pipeline"
HOME = PIPELINE / "core" / "task_kinds.py"
# a kind decided or compared by its literal spelling, an earlier spelling, or a kind -> metric table
SPELLED_OUT = re.compile(r'[=!]= "(multilabel|single)"|"(multi|single)_label"|"(multilabel|single)": *[(\["]')


@pytest.mark.fast
def test_the_earlier_params_spellings_mean_the_same_kinds() -> None:
    assert FolderDatasetParams(task="multi_label").task == MULTILABEL
    assert FolderDatasetParams(task="single_label").task == SINGLE
    assert FolderDatasetParams(task="single").task == SINGLE and FolderDatasetParams().task is None
    assert normalize_kind("tagging") == "tagging"  # anything else is left for the validator to refuse
    with pytest.raises(ValueError, match="multilabel"):
        FolderDatasetParams(task="tagging")


@pytest.mark.fast
def test_every_kind_has_a_primary_metric_reported_first() -> None:
    assert set(PRIMARY_METRIC) == set(REPORTED_METRICS) == set(TASK_KINDS)
    assert all(REPORTED_METRICS[kind][0] == PRIMARY_METRIC[kind] for kind in TASK_KINDS)
    assert primary_metric(SINGLE) == "accuracy" and primary_metric(MULTILABEL, "dcase2017_task4") == "f1_sample"


@pytest.mark.fast
def test_no_module_spells_a_kind_or_its_metric_table_itself() -> None:
    found = [
        f"{path.relative_to(PIPELINE.parent)}:{n}: {line.strip()}"
        for path in sorted(PIPELINE.rglob("*.py"))
        if path != HOME
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if SPELLED_OUT.search(line)
    ]
    assert not found, "use pipeline.core.task_kinds (MULTILABEL, SINGLE, kind_of, PRIMARY_METRIC):\n" + "\n".join(found)
