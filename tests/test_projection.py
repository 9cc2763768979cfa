"""benchmarks/projection.py (issue 27, deliverable 8): the paper grid's cost from what the code runs,
and docs/scaling.md's tables are its output."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("projection", REPO / "benchmarks" / "projection.py")
projection = importlib.util.module_from_spec(_spec)
sys.modules["projection"] = projection  # dataclasses look their module up
_spec.loader.exec_module(projection)


@pytest.fixture(scope="module")
def paper():
    return projection._params(None)


def test_lpt_makespan() -> None:
    assert projection.makespan([5, 4, 3, 3, 3], 2) == 10  # LPT: 5 | 4, 3 -> 7, 3 -> 8, 3 -> 10 (the optimum is 9)
    assert projection.makespan([7, 1, 1], 4) == 7  # never below the longest cell
    assert projection.makespan([2, 2, 2, 2], 1) == 8


def test_projection_reads_the_grid_lengths_and_chunks(paper) -> None:
    cells = projection.project(paper, projection._rates(None, 100.0))
    assert len(cells) == 33
    by = {(c.task, c.model): c for c in cells}
    assert by[("speech_commands", "fcn")].input_s == 1.0  # the short-clip protocol, not 29 s
    assert by[("mtat", "fcn")].input_s == 29.0
    fewer = projection.project(
        paper.model_copy(update={"train": paper.train.model_copy(update={"val_max_clips": 100})}), projection._rates(None, 100.0)
    )
    assert sum(c.hours for c in fewer) < 0.7 * sum(c.hours for c in cells)  # validation dominates, and the cap is read
    sparse = projection.project(
        paper.model_copy(update={"train": paper.train.model_copy(update={"val_every": 5})}), projection._rates(None, 100.0)
    )
    assert sum(c.hours for c in sparse) < 0.75 * sum(c.hours for c in cells)  # train.val_every: 40 of 200 epochs validated


def test_measured_rates_replace_the_assumption(tmp_path: Path, paper) -> None:
    bench = tmp_path / "bench.json"
    results = [{"variant": m, "samples_per_second": r * 100.0} for m, r in projection.CPU_SAMPLES_PER_S.items()]
    bench.write_text(json.dumps({"meta": {}, "results": results}))
    measured = projection.project(paper, projection._rates(bench, 1.0))
    assumed = projection.project(paper, projection._rates(None, 100.0))
    assert [c.hours for c in measured] == pytest.approx([c.hours for c in assumed])


def test_docs_scaling_tables_are_the_script_output(paper) -> None:
    out = projection.report(paper)
    doc = (REPO / "docs" / "scaling.md").read_text()
    tables = [block for block in out.split("\n\n") if block.startswith("|")]
    assert len(tables) == 2 and all(t.strip() in doc for t in tables), "rerun benchmarks/projection.py into docs/scaling.md §4"


def test_feature_sizes_come_from_the_caches_the_code_builds(paper) -> None:
    """One clip through `compute_cache` per cache the grid builds, scaled by the clip counts; docs/scaling.md shows it."""
    sizes = projection.data_sizes(paper)
    mtat = next(d for d in sizes if d.task == "mtat")
    assert len(mtat.cache_bytes) == 4 and mtat.clips == 21_105  # four caches per dataset (issue 27), not two
    assert mtat.cache_bytes["96 mel bins, hop 256"] == 96 * (1 + 465_600 // 256) * 2  # float16 (bins, centred frames)
    assert mtat.waveform_bytes == 465_600 * 4  # 29.1 s of float32 at 16 kHz
    assert 60 < sum(d.total_gb(sum(d.cache_bytes.values())) for d in sizes) < 70
    assert projection.size_table(sizes) in (REPO / "docs" / "scaling.md").read_text(), "rerun projection.py --sizes"
