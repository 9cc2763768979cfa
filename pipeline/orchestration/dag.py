"""The one description of the pipeline: stages, their order, deps, params and outs.

``dvc.yaml`` is generated from it (``musicrep dag --write``; a test checks the committed
file is up to date) and the Prefect flow walks the same stages, so the order is written
once. Tasks and seeds stay DVC ``matrix`` variables read from ``params.yaml``; the models
of ``grid.models`` are written out, one ``cell-<model>`` stage each, because every model
depends only on *its own* source files (front-end, back-end and the shared model code).
Changing one back-end file therefore makes only that model's cells stale in ``dvc status``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import yaml

from pipeline.config.params import DEFAULT_PARAMS, RESOLVED_PARAMS, Params, grid_model
from pipeline.core.paths import REPORT_STAMP, probe_slug
from pipeline.data.user_audio import manifest_path, manifest_stage, user_audio_folder
from pipeline.models.grid import cell_keys, grid_models
from pipeline.models.sources import variant_sources
from pipeline.models.transfer import init_dependencies
from pipeline.robustness.noises import noise_dependencies
from pipeline.training.code import cell_sources

if TYPE_CHECKING:
    from pipeline.config.params import Params

DATA_STAGES = ("download", "segment", "features")
"""Per dataset, in this order; then one cell per (task, model, seed); then the report."""

HEADER = """\
# GENERATED from pipeline/orchestration/dag.py and the grid of params.yaml by `musicrep dag --write`; do not edit.
# After changing grid.models (or adding an alias) run `musicrep dag --write` (make repro does).
# Stages: params (params.yaml over its profile, the values the stages track) ->
# download -> segment -> features per dataset; one `cell-<model>` per model with a
# matrix over grid.tasks x grid.seeds (train -> evaluate -> robustness in one process); report.
"""


def stage_name(model: str) -> str:
    """DVC stage name of a model's cells (``cell-fcn``, ``cell-mfcc_short_cnn``)."""
    return "cell-" + re.sub(r"[^A-Za-z0-9_-]", "_", model)


def model_sources(model: str, params: Params) -> list[str]:
    """Repository-relative source files that define grid model ``model`` (alias, swap or name)."""
    return variant_sources(grid_model(params, model).variant)


def cell_dependencies(model: str, params: Params) -> list[str]:
    """The code deps of grid model ``model``'s cells: :func:`pipeline.training.code.cell_sources` of its variant."""
    return cell_sources(grid_model(params, model).variant)


def _leaf_keys(section: str) -> list[str]:
    """``train`` -> ``["train.epochs", "train.batch_size", ...]``: the keys of one params section."""

    model = Params.model_fields[section].annotation
    return [f"{section}.{key}" for key in model.model_fields]


CELL_SECTIONS = ("train", "evaluate", "robustness")
"""The result-bearing sections a cell reads; ``runtime`` (device, threads, workers, batch sizes of
inference) is left out, so changing it re-runs nothing."""
CELL_PARAMS = tuple(key for section in CELL_SECTIONS for key in _leaf_keys(section))


def _tracked(*keys: str) -> list[dict[str, list[str]]]:
    """A stage's ``params:`` entry: ``keys`` of the resolved parameters (profile defaults included)."""

    return [{RESOLVED_PARAMS: list(keys)}]


def _params_stage() -> dict[str, Any]:
    """Resolves ``params.yaml`` over its profile into the file every other stage's params come from.

    ``params.yaml`` holds only what the user changes; DVC compares only the keys a file spells
    out, so the stages track the resolved file (a changed profile default re-runs what it
    affects, and ``dvc status`` names this stage after ``params.yaml`` or a profile changes).
    """

    return {
        "cmd": "musicrep params --resolve",
        "deps": [DEFAULT_PARAMS, "pipeline/config/profiles", "pipeline/config/params.py"],
        "outs": [{RESOLVED_PARAMS: {"cache": False}}],
    }


FEATURE_MODEL_CODE = (
    "pipeline/models/base.py",
    "pipeline/models/layers.py",
    "pipeline/models/zoo.py",
    "pipeline/models/build.py",
)
"""Model code the ``features`` stage runs besides the front-ends (it builds each grid model's front-end)."""


def _data_stages(tasks: Any, params: Params) -> dict[str, Any]:
    """download, segment, features per dataset; with a ``manifest`` stage first when a grid dataset has its
    audio in a user-supplied folder (``datasets.X.audio_dir``), which ``segment`` then depends on."""
    user_audio = any(user_audio_folder(params, t) for t in params.grid.tasks)
    manifest = {"audio-manifest": manifest_stage(tasks, _tracked("datasets.${item.dataset}"))} if user_audio else {}
    return {
        **manifest,
        "download": {
            "matrix": {"dataset": tasks},
            "cmd": "musicrep download ${item.dataset}",
            "deps": [
                "pipeline/data/sources",
                "pipeline/data/synth.py",
                "pipeline/data/rendered.py",
                "pipeline/data/render.py",
                "pipeline/data/corpus_notes.py",
                "pipeline/data/download.py",
                "pipeline/data/archives.py",
            ],
            "params": _tracked("seed", "datasets.${item.dataset}"),
            "outs": [{"data/raw/${item.dataset}": {"persist": True}}],
        },
        "segment": {
            "matrix": {"dataset": tasks},
            "cmd": "musicrep segment ${item.dataset}",
            "deps": [
                "data/raw/${item.dataset}",
                *([manifest_path("${item.dataset}")] if user_audio else []),
                "pipeline/data/segment.py",
                "pipeline/audio/io.py",
                "pipeline/data/sources",
            ],
            "params": _tracked("segment", "datasets.${item.dataset}"),
            "outs": ["data/segments/${item.dataset}"],
        },
        "features": {
            "matrix": {"dataset": tasks},
            "cmd": "musicrep features ${item.dataset}",
            "deps": [
                "data/segments/${item.dataset}",
                "pipeline/features",
                "pipeline/models/frontends",
                "pipeline/models/dsp",
                *FEATURE_MODEL_CODE,
            ],
            "params": _tracked("profile", "features", "grid.models", "variants", "train.width", "train.input_seconds"),
            "outs": ["data/features/${item.dataset}"],
        },
    }


def _cell_stage(model: str, params: Params, matrix: dict[str, Any]) -> dict[str, Any]:
    m = f"${{item.task}}/{model}/seed${{item.seed}}"
    aliased = model in params.variants
    return {
        "matrix": matrix,
        "cmd": f"musicrep cell ${{item.task}} {model} --seed ${{item.seed}}",
        "deps": [
            "data/segments/${item.task}",
            "data/features/${item.task}",
            *cell_dependencies(model, params),
            *init_dependencies(params.variants[model].init if aliased else None),
            *noise_dependencies(params),
        ],
        "params": _tracked("seed", "profile", *CELL_PARAMS, *([f"variants.{model}"] if aliased else [])),
        "outs": [
            f"models/{m}",
            f"metrics/{m}/predictions.parquet",
            f"metrics/{m}/robustness.parquet",
            f"metrics/{m}/robustness.csv",
            f"metrics/{m}/robustness_scores.parquet",
            # tracked in git, not DVC metrics: `dvc metrics show` lists the task summaries (_summary_stage)
            {f"metrics/{m}/eval.json": {"cache": False}},
            {f"metrics/{m}/robustness.json": {"cache": False}},
        ],
    }


def _summary_stage(tasks: Any) -> dict[str, Any]:
    """Per task, ``metrics/<task>.json`` (:mod:`pipeline.evaluation.task_summary`), the pipeline's one DVC metric
    file per task: ``dvc metrics show`` a row per task, ``dvc exp show`` a column per (task, model).

    Beside the task's folder, not in it: DVC refuses an output inside a stage's own dependency."""
    return {
        "matrix": {"task": tasks},
        "cmd": "musicrep summary ${item.task}",
        "deps": ["metrics/${item.task}", "pipeline/evaluation/task_summary.py"],
        "params": _tracked("grid"),
        "metrics": [{"metrics/${item.task}.json": {"cache": False}}],
    }


PROBE_CODE = (
    "pipeline/evaluation/probe.py",
    "pipeline/evaluation/probe_embeddings.py",
    "pipeline/evaluation/stats.py",
    "pipeline/audio/chunking.py",
    "pipeline/models/inference.py",
    "pipeline/models/checkpoint.py",
    "pipeline/data/shards.py",
    "pipeline/features/cache.py",
)
"""Code every probe stage runs (embedding cache, probes, intervals), besides its model's code."""


def probe_stage_name(model: str, random_init: bool) -> str:
    """``probe-synth_keywords_fcn`` (``-random`` for the random-init baseline)."""
    return "probe-" + re.sub(r"[^A-Za-z0-9_-]", "_", model) + ("-random" if random_init else "")


def _probe_stages(params: Params) -> dict[str, Any]:
    """One stage per ``probes:`` entry (and one for its random-init baseline), a matrix over datasets x seeds.

    Deps: the embedding model's package and its source files, the probe code and the dataset's
    segments; so editing a back-end re-runs the probes of the models built from it, no others.
    """

    stages: dict[str, Any] = {}
    for entry in params.probes:
        model_dir = f"models/{entry.model}/seed{entry.model_seed}"
        sources = model_sources(entry.model.split("/", 1)[1], params)
        for random_init in (False, True) if entry.random_init else (False,):
            slug = probe_slug(entry.model, random_init)
            out = f"metrics/probes/${{item.dataset}}/{slug}/seed${{item.seed}}"
            stages[probe_stage_name(entry.model, random_init)] = {
                "matrix": {"dataset": list(entry.datasets), "seed": list(entry.seeds)},
                "cmd": f"musicrep probe ${{item.dataset}} --model {model_dir} --seed ${{item.seed}}"
                + (" --random-init" if random_init else ""),
                "deps": [model_dir, "data/segments/${item.dataset}", *PROBE_CODE, *sources],
                "params": _tracked("evaluate.n_chunks", "train.device"),
                "outs": [f"{out}/scores.npz"],
                "metrics": [{f"{out}/probe.json": {"cache": False}}],
            }
    return stages


def _report_stage(params: Params) -> dict[str, Any]:
    """``musicrep report``; its one declared out is :data:`~pipeline.core.paths.REPORT_STAMP` (see there why)."""
    return {
        "cmd": "musicrep report",
        "deps": [
            "metrics",
            "models",
            "pipeline/report",
            "pipeline/report/figures.py",
            "pipeline/tracking/registry.py",
            "pipeline/evaluation/stats.py",
            "pipeline/robustness/stage.py",
            "pipeline/robustness/plots.py",
        ],
        "params": _tracked("report", "grid"),
        "outs": [{f"{params.report.out_dir}/{REPORT_STAMP}": {"cache": False, "persist": True}}],
    }


LIVE_GRID = frozenset({"tasks", "seeds"})


def dvc_stages(params: Params, live: frozenset[str] = LIVE_GRID) -> dict[str, Any]:
    """The ``stages:`` mapping of ``dvc.yaml`` for the grid of ``params``.

    Args:
        params: the resolved parameters.
        live: the ``grid`` keys (``tasks``, ``seeds``) that ``params.yaml`` itself spells out;
            their matrices read ``params.yaml`` (``${grid.tasks}``), so ``dvc exp run -S
            grid.seeds=[0,1]`` widens the grid. A key the file leaves to the profile is written
            out as a list, because DVC's templates only see ``params.yaml``.
    """

    def values(key: str) -> Any:
        return f"${{grid.{key}}}" if key in live else list(getattr(params.grid, key))

    tasks = values("tasks")
    stages = {"params": _params_stage(), **_data_stages(tasks, params)}
    for model in grid_models(params):
        stages[stage_name(model)] = _cell_stage(model, params, {"task": tasks, "seed": values("seeds")})
    stages["summary"] = _summary_stage(tasks)
    stages.update(_probe_stages(params))
    stages["report"] = _report_stage(params)
    return stages


def render_dvc_yaml(params: Params, live: frozenset[str] = LIVE_GRID) -> str:
    """The full text of ``dvc.yaml`` (``live``: see :func:`dvc_stages`)."""
    body = yaml.safe_dump({"stages": dvc_stages(params, live)}, sort_keys=False, width=120)
    return HEADER + body


def live_grid_keys(raw: dict[str, Any], overrides: dict[str, Any] | None = None) -> frozenset[str]:
    """The keys of :data:`LIVE_GRID` that the params file ``raw`` sets and ``overrides`` leaves alone."""
    grid = raw.get("grid") if isinstance(raw.get("grid"), dict) else {}
    changed = (overrides or {}).get("grid") or {}
    return frozenset(k for k in LIVE_GRID if k in grid and k not in changed)


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

    def cost_rank(model: str) -> int:
        base = grid_model(params, model).variant.rpartition("+")[2]
        return SMOKE_COST_ORDER.index(base) if base in SMOKE_COST_ORDER else len(SMOKE_COST_ORDER)

    keys = sorted(cell_keys(params), key=lambda k: (cost_rank(k[1]), params.grid.tasks.index(k[0])))
    return [f"{stage_name(m)}@{t}-{s}" for t, m, s in keys]
