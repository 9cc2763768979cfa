"""docs/contributing.md's model and dataset recipes, done on a scratch copy of the repository.

The toy GRU back-end of the page is written as a contributor would (the page's own code block,
one new file): the registry finds it, no other model's cell code or checkpoint fingerprint
changes, and (slow tier) a real `dvc repro` of an existing cell stays clean in `dvc status`
while the docs test hands over the row to paste and the contract suite passes on the toy.
The toy downloadable dataset of the page is written from its three code blocks into the three
files its table names, downloaded from a local mirror laid out like the publisher's host and
segmented by the CLI.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.training.code import cell_code_hash, cell_sources
from tests.conftest import tiny_overrides

REPO = Path(__file__).resolve().parents[1]
TOY = "toy_gru"


def _recipe_code() -> str:
    """The back-end module that docs/contributing.md tells a contributor to write."""
    text = (REPO / "docs" / "contributing.md").read_text()
    block = re.search(r"```python\n(.*?)```", text[text.index("## A model") :], flags=re.S)
    assert block, "docs/contributing.md lost the model recipe's code block"
    return block.group(1)


def _scratch(tmp: Path) -> Path:
    """A git repository holding a copy of the code, tests and docs (the contributor's clone)."""
    clone = tmp / "clone"
    clone.mkdir()
    ignore = shutil.ignore_patterns("__pycache__")
    for folder in ("pipeline", "tests", "docs"):
        shutil.copytree(REPO / folder, clone / folder, ignore=ignore)
    for name in ("params.yaml", "pyproject.toml"):
        shutil.copy(REPO / name, clone / name)
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "clone"]):
        subprocess.run(cmd, cwd=clone, check=True, env=env)
    return clone


def _add_toy(clone: Path) -> None:
    (clone / "pipeline" / "models" / "backends" / f"{TOY}.py").write_text(_recipe_code())


def _in_clone(clone: Path, code: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(clone)}
    run = subprocess.run([sys.executable, "-c", code], cwd=clone, capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    return run.stdout


_REPORT = """
import json
from pipeline.models.zoo import VARIANTS
from pipeline.training.code import cell_code_hash, cell_sources
print(json.dumps({"variants": list(VARIANTS), "fcn_hash": cell_code_hash("fcn"), "fcn_sources": cell_sources("fcn"),
                  "toy_sources": cell_sources("toy_gru")}))
"""


def test_a_new_backend_is_one_file_and_leaves_the_other_cells_code_alone(tmp_path: Path) -> None:
    clone = _scratch(tmp_path)
    _add_toy(clone)
    changed = subprocess.run(["git", "status", "--porcelain"], cwd=clone, capture_output=True, text=True, check=True).stdout
    assert changed.split() == ["??", f"pipeline/models/backends/{TOY}.py"]
    seen = json.loads(_in_clone(clone, _REPORT))
    assert TOY in seen["variants"]
    # the existing model's DVC deps and checkpoint fingerprint are what they were before the toy came
    assert seen["fcn_sources"] == cell_sources("fcn")
    assert seen["fcn_hash"] == cell_code_hash("fcn")
    assert f"pipeline/models/backends/{TOY}.py" in seen["toy_sources"]
    assert f"pipeline/models/backends/{TOY}.py" not in seen["fcn_sources"]


def _pytest(clone: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(clone)}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", *args], cwd=clone, capture_output=True, text=True, timeout=600, env=env
    )


def _dvc(clone: Path, *args: str, env: dict | None = None) -> str:
    run = subprocess.run(["dvc", *args], cwd=clone, capture_output=True, text=True, timeout=900, env=env)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run.stdout


@pytest.mark.slow
def test_the_model_recipe_end_to_end(tmp_path: Path) -> None:
    """Two files, the docs row handed over by the docs test, the contract passed, `dvc status` of the old cell clean."""
    clone = _scratch(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(clone)}
    params = {"profile": "smoke", **tiny_overrides(models=["fcn"], tasks=["synth_keywords"], n_clips=24)}
    (clone / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    subprocess.run(["musicrep", "dag", "--write", "--params", str(clone / "params.yaml")], cwd=clone, check=True, env=env)
    for cmd in (["dvc", "init", "-q"], ["dvc", "config", "core.analytics", "false"]):
        subprocess.run(cmd, cwd=clone, check=True)
    _dvc(clone, "repro", "cell-fcn@synth_keywords-0", env=env)
    assert "cell-fcn" not in _dvc(clone, "status", env=env)

    _add_toy(clone)
    docs = _pytest(clone, "tests/test_models.py", "-k", "docs_variant")
    assert docs.returncode == 1
    row = next(line for line in docs.stdout.splitlines() if line.lstrip("E ").startswith(f"| `{TOY}`"))
    models_md = clone / "docs" / "models.md"
    text = models_md.read_text()
    last = [line for line in text.splitlines() if line.startswith("| `short_res`")][0]
    models_md.write_text(text.replace(last, last + "\n" + row.lstrip("E ").strip()))
    assert _pytest(clone, "tests/test_models.py", "-k", "docs_variant").returncode == 0
    contract = _pytest(clone, "tests/test_contracts.py", "-k", TOY)
    assert contract.returncode == 0, contract.stdout[-3000:]
    changed = subprocess.run(
        ["git", "status", "--porcelain", "--", "pipeline", "docs"], cwd=clone, capture_output=True, text=True
    )
    assert sorted(changed.stdout.split()[1::2]) == ["docs/models.md", f"pipeline/models/backends/{TOY}.py"]

    params["grid"]["models"] = ["fcn", TOY]
    (clone / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    subprocess.run(["musicrep", "dag", "--write", "--params", str(clone / "params.yaml")], cwd=clone, check=True, env=env)
    stale = json.loads(_dvc(clone, "status", "--json", env=env))
    assert not [stage for stage in stale if stage.startswith("cell-fcn")], stale
    assert f"cell-{TOY}@synth_keywords-0" in stale


TOY_DATASET = "toy_digits"
DATASET_FILES = ["docs/datasets.md", "pipeline/config/params.py", f"pipeline/data/sources/{TOY_DATASET}.py"]


def _dataset_recipe() -> list[str]:
    """The code blocks of docs/contributing.md's dataset section: the module, the settings field, the docs row."""
    text = (REPO / "docs" / "contributing.md").read_text()
    section = text[text.index("## A dataset") : text.index("## A perturbation")]
    blocks = re.findall(r"```(?:python|markdown)\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 3, "docs/contributing.md's dataset recipe lost a code block"
    return blocks


def _insert_after(path: Path, anchor: str, text: str) -> None:
    """Put ``text`` after the line of ``path`` that starts with ``anchor`` (where the page says to)."""
    lines = path.read_text().splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if line.startswith(anchor))
    path.write_text("".join([*lines[: at + 1], text, *lines[at + 1 :]]))


def _add_toy_dataset(clone: Path) -> None:
    module, field, row = _dataset_recipe()
    (clone / DATASET_FILES[2]).write_text(module)
    _insert_after(clone / DATASET_FILES[1], "    fsdd: RealDatasetParams", field)
    _insert_after(clone / DATASET_FILES[0], "| `fsdd` |", row)


def _musicrep(clone: Path, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(clone)}
    run = subprocess.run(["musicrep", *args], cwd=clone, capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run.stdout


def _changed(clone: Path, *paths: str) -> list[str]:
    status = subprocess.run(["git", "status", "--porcelain", "--", *paths], cwd=clone, capture_output=True, text=True, check=True)
    return sorted(line[3:] for line in status.stdout.splitlines())


def test_the_dataset_recipe_end_to_end(tmp_path: Path, fsdd_dir: Path) -> None:
    """Three files from the page's code blocks; `download --mirror` and `segment` work on them from the CLI."""
    clone = _scratch(tmp_path)
    _add_toy_dataset(clone)
    assert _changed(clone) == DATASET_FILES
    mirror = tmp_path / "mirror" / "recordings"  # the host's layout: <repository>/<commit>/recordings/<file>
    mirror.mkdir(parents=True)
    for wav in (fsdd_dir / "recordings").glob("*_george_*.wav"):
        shutil.copyfile(wav, mirror / wav.name)

    _musicrep(clone, "download", TOY_DATASET, "--mirror", str(mirror.parent))
    _musicrep(clone, "segment", TOY_DATASET)
    raw = clone / "data" / "raw" / TOY_DATASET
    assert len(list(raw.glob("*.wav"))) == 12
    meta = json.loads((clone / "data" / "segments" / TOY_DATASET / "meta.json").read_text())
    assert (meta["labels"], meta["kind"], meta["task"]) == (["0", "1", "2"], "single", "keywords")
    assert meta["coverage"]["present"] == meta["coverage"]["expected"] == 12
    assert meta["coverage"]["per_split"] == {"train": 6, "val": 3, "test": 3}
    assert (clone / "data" / "segments" / TOY_DATASET / "manifest.parquet").is_file()
    assert _changed(clone, "pipeline", "docs", "tests", "params.yaml", "pyproject.toml") == DATASET_FILES
