"""A cell's DVC dependencies are the code it runs: computed from the import closure, checked by running one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from pipeline.orchestration.dag import model_sources
from pipeline.training.code import cell_code
from tests.conftest import tiny_overrides

REPO = Path(__file__).resolve().parents[1]

_RUN_CELL = """
import json, sys
from pathlib import Path
from pipeline.orchestration.cell import cell  # what `musicrep cell` runs (not stages: it imports every stage)
from pipeline.config.params import load_params
from pipeline.core.paths import Layout
root = Path(sys.argv[1])
cell("synth_keywords", "fcn", load_params(root / "params.yaml"), Layout(root), seed=0)
files = sorted({m.__file__ for m in list(sys.modules.values())
                if m.__name__.split(".")[0] == "pipeline" and getattr(m, "__file__", None)})
print("MODULES " + json.dumps(files))
"""


def test_cell_dependencies_cover_every_module_a_cell_runs(tmp_path: Path) -> None:
    from pipeline.config.params import load_params
    from pipeline.core.paths import Layout
    from pipeline.orchestration import stages

    params = {"profile": "smoke", **tiny_overrides(models=["fcn"], tasks=["synth_keywords"], n_clips=24)}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    p, layout = load_params(tmp_path / "params.yaml"), Layout(tmp_path)
    for stage in (stages.download, stages.segment, stages.features):
        stage("synth_keywords", p, layout)
    run = subprocess.run(
        [sys.executable, "-c", _RUN_CELL, str(tmp_path)], cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0, run.stderr[-3000:]
    loaded = json.loads(run.stdout.rsplit("MODULES ", 1)[1])
    ran = {Path(f).resolve().relative_to(REPO).as_posix() for f in loaded if Path(f).resolve().is_relative_to(REPO)}
    tracked = set(cell_code()) | set(model_sources("fcn", p))
    model_package = {f for f in ran if f.startswith("pipeline/models/")}
    assert ran - model_package <= tracked, (
        f"cells run code their DVC stage does not track: {sorted(ran - model_package - tracked)}"
    )
    # the model's own files are tracked per model; the registry modules (every back-end) are not
    assert {"pipeline/models/backends/fcn.py", "pipeline/models/frontends/spectral.py"} <= tracked
    assert "pipeline/models/backends/hcnn.py" not in tracked


def test_cell_code_includes_audio_loading_and_the_feature_cache() -> None:
    code = cell_code()
    assert {
        "pipeline/audio/io.py",
        "pipeline/features/cache.py",
        "pipeline/training/train.py",
        "pipeline/tracking/runs.py",
    } <= set(code)
    assert not [f for f in code if f.startswith("pipeline/report/")]  # the report is its own stage
