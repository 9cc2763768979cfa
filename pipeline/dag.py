"""The one description of the pipeline: stages, their order, deps, params and outs.

``dvc.yaml`` is generated from it (``musicrep dag --write``; a test checks the committed
file is up to date) and the Prefect flow walks the same stages, so the order is written
once. Tasks and seeds stay DVC ``matrix`` variables read from ``params.yaml``; the models
of ``grid.models`` are written out, one ``cell-<model>`` stage each, because every model
depends only on *its own* source files (front-end, back-end and the shared model code).
Changing one back-end file therefore makes only that model's cells stale in ``dvc status``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from pipeline.config import Params

PACKAGE = Path(__file__).resolve().parent
REPO = PACKAGE.parent

DATA_STAGES = ("download", "segment", "features")
"""Per dataset, in this order; then one cell per (task, model, seed); then the report."""

CELL_CODE = (
    "pipeline/train.py",
    "pipeline/batches.py",
    "pipeline/distributed.py",
    "pipeline/chunking.py",
    "pipeline/inference.py",
    "pipeline/evaluate.py",
    "pipeline/metrics.py",
    "pipeline/checkpoint.py",
    "pipeline/data/shards.py",
    "pipeline/robustness/__init__.py",
    "pipeline/robustness/stage.py",
    "pipeline/robustness/perturb.py",
    "pipeline/robustness/noises.py",
    "pipeline/models/build.py",
)
"""Code every cell runs (training loop, evaluation, robustness), besides its model's code."""

MODEL_SHARED = (
    "pipeline/models/base.py",
    "pipeline/models/layers.py",
    "pipeline/models/zoo.py",
    "pipeline/models/frontends/base.py",
    "pipeline/models/backends/base.py",
)
"""Model code shared by every variant (the registry, base classes, layers)."""

_REGISTRIES = {"pipeline.models", "pipeline.models.frontends", "pipeline.models.backends", "pipeline.models.zoo"}

HEADER = """\
# GENERATED from pipeline/dag.py and the grid of params.yaml by `musicrep dag --write`; do not edit.
# After changing grid.models (or adding an alias) run `musicrep dag --write` (make repro does).
# Stages: download -> segment -> features per dataset; one `cell-<model>` per model with a
# matrix over grid.tasks x grid.seeds (train -> evaluate -> robustness in one process); report.
"""


def stage_name(model: str) -> str:
    """DVC stage name of a model's cells (``cell-fcn``, ``cell-mfcc_short_cnn``)."""
    return "cell-" + re.sub(r"[^A-Za-z0-9_-]", "_", model)


def _module_file(module: str) -> Path | None:
    rel = Path(*module.split("."))
    for cand in (REPO / rel.with_suffix(".py"), REPO / rel / "__init__.py"):
        if cand.exists():
            return cand
    return None


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return found


def _closure(module: str) -> set[Path]:
    """Source files of ``module`` and the model/DSP modules it imports (not the registries)."""
    seen: set[Path] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        if name in _REGISTRIES and name != module:
            continue
        path = _module_file(name)
        if path is None or path in seen:
            continue
        rel = path.relative_to(REPO).as_posix()
        if not rel.startswith("pipeline/models/"):
            continue
        seen.add(path)
        todo.extend(m for m in _imports(path) if m.startswith("pipeline."))
    return seen


def model_sources(model: str, params: Params) -> list[str]:
    """Repository-relative source files that define grid model ``model`` (alias, swap or name)."""
    from pipeline.config import resolve_variant
    from pipeline.models.backends import BACKENDS
    from pipeline.models.frontends import FRONTENDS
    from pipeline.models.zoo import resolve_variant as resolve_registry

    variant, _, _ = resolve_variant(params, model)
    frontend, spec = resolve_registry(variant)
    files: set[Path] = set()
    for cls in (FRONTENDS[frontend], BACKENDS[spec.backend]):
        files |= _closure(cls.__module__)
    rel = {p.relative_to(REPO).as_posix() for p in files}
    return sorted(rel | set(MODEL_SHARED))


def _data_stages() -> dict[str, Any]:
    return {
        "download": {
            "matrix": {"dataset": "${grid.tasks}"},
            "cmd": "musicrep download ${item.dataset}",
            "deps": ["pipeline/data/sources", "pipeline/data/synth.py", "pipeline/data/download.py", "pipeline/data/archives.py"],
            "params": ["seed", "datasets.${item.dataset}"],
            "outs": [{"data/raw/${item.dataset}": {"persist": True}}],
        },
        "segment": {
            "matrix": {"dataset": "${grid.tasks}"},
            "cmd": "musicrep segment ${item.dataset}",
            "deps": ["data/raw/${item.dataset}", "pipeline/data/segment.py", "pipeline/data/audio.py", "pipeline/data/sources"],
            "params": ["segment", "datasets.${item.dataset}"],
            "outs": ["data/segments/${item.dataset}"],
        },
        "features": {
            "matrix": {"dataset": "${grid.tasks}"},
            "cmd": "musicrep features ${item.dataset}",
            "deps": [
                "data/segments/${item.dataset}",
                "pipeline/features",
                "pipeline/models/frontends",
                *MODEL_SHARED[:3],
                "pipeline/models/build.py",
            ],
            "params": ["profile", "features", "grid.models", "variants", "train.width"],
            "outs": ["data/features/${item.dataset}"],
        },
    }


def _cell_stage(model: str, params: Params) -> dict[str, Any]:
    m = f"${{item.task}}/{model}/seed${{item.seed}}"
    aliased = model in params.variants
    return {
        "matrix": {"task": "${grid.tasks}", "seed": "${grid.seeds}"},
        "cmd": f"musicrep cell ${{item.task}} {model} --seed ${{item.seed}}",
        "deps": ["data/segments/${item.task}", "data/features/${item.task}", *CELL_CODE, *model_sources(model, params)],
        "params": ["seed", "profile", "train", "evaluate", "robustness", *([f"variants.{model}"] if aliased else [])],
        "outs": [
            f"models/{m}",
            f"metrics/{m}/predictions.parquet",
            f"metrics/{m}/robustness.parquet",
            f"metrics/{m}/robustness.csv",
            f"metrics/{m}/robustness_scores.parquet",
        ],
        "metrics": [{f"metrics/{m}/eval.json": {"cache": False}}, {f"metrics/{m}/robustness.json": {"cache": False}}],
    }


def _report_stage() -> dict[str, Any]:
    return {
        "cmd": "musicrep report",
        "deps": [
            "metrics",
            "models",
            "pipeline/report",
            "pipeline/figures.py",
            "pipeline/registry.py",
            "pipeline/stats.py",
            "pipeline/robustness/stage.py",
            "pipeline/robustness/plots.py",
        ],
        "params": ["report", "grid"],
        "outs": ["reports"],
    }


def dvc_stages(params: Params) -> dict[str, Any]:
    """The ``stages:`` mapping of ``dvc.yaml`` for the grid of ``params``."""
    stages = _data_stages()
    for model in params.grid.models:
        stages[stage_name(model)] = _cell_stage(model, params)
    stages["report"] = _report_stage()
    return stages


def render_dvc_yaml(params: Params) -> str:
    """The full text of ``dvc.yaml``."""
    body = yaml.safe_dump({"stages": dvc_stages(params)}, sort_keys=False, width=120)
    return HEADER + body


def cell_keys(params: Params) -> list[tuple[str, str, int]]:
    """Every grid cell ``(task, model, seed)`` in pipeline order."""
    return [(t, m, s) for t in params.grid.tasks for m in params.grid.models for s in params.grid.seeds]


SMOKE_COST_ORDER = (
    "musicnn",
    "samplecnn_se",
    "short_cnn",
    "cnnsa",
    "hcnn",
    "samplecnn",
    "short_res",
    "crnn",
    "fcn",
    "gated_crnn",
    "attention_rnn",
)
"""Registry variants from the most to the least expensive to train (smoke grid, measured:
``benchmarks/grid.py`` on a ``make repro`` log). Only the order of the parallel run uses it."""


def dvc_cell_targets(params: Params) -> list[str]:
    """DVC stage names of every cell (``cell-fcn@synth_tags-0``), most expensive first.

    Two workers taking cells from this list finish closer together when the long cells start
    first (otherwise one core idles while the other runs the last big cell). Aliases and swaps
    are placed by the variant they build on.
    """
    from pipeline.config import resolve_variant

    def cost_rank(model: str) -> int:
        base = resolve_variant(params, model)[0].rpartition("+")[2]
        return SMOKE_COST_ORDER.index(base) if base in SMOKE_COST_ORDER else len(SMOKE_COST_ORDER)

    keys = sorted(cell_keys(params), key=lambda k: (cost_rank(k[1]), params.grid.tasks.index(k[0])))
    return [f"{stage_name(m)}@{t}-{s}" for t, m, s in keys]
