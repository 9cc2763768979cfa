"""The shape of the package: imports point one way, no cycles, files of a readable size.

Every module under ``pipeline/`` (and ``flows/``, installed as ``pipeline.flows``) is parsed
with :mod:`ast`; every ``import`` counts, including function-local ones and those under
``if TYPE_CHECKING:``, because a hidden import is still a dependency.

Layers, lowest first, by package (a module may import its own layer or a lower one, never a
higher one; the folders of ``pipeline/`` are these packages):

0. ``core``: errors, atomic writes and hashing (``io_utils``), the project layout (``paths``),
   locks, progress; and the package itself (version, sample rate)
1. ``config``: typed params, the profiles' defaults, the project a command runs on
2. ``audio`` (decoding, streaming, chunking), ``data`` (download, sources, segment, shards),
   ``models`` (front-ends with their DSP transforms, back-ends, the zoo, the packaged-model
   format, running a model on batches) and the perturbations and noise sources
   (``robustness``, ``robustness.perturb``, ``robustness.noises``)
3. ``features``: the feature cache
4. the service below the stages: ``tracking`` (MLflow runs, the model registry, the server)
5. the stages' work: ``training``, ``evaluation``, ``robustness.stage``, ``robustness.plots``,
   ``robustness.agreement`` (label-free robustness), ``inference`` (predict, embed, writers, ONNX
   export) and ``hear`` (the HEAR 2021 API, a top-level module as the HEAR rules name it)
6. what reads the stages' results: ``report`` (the page, its tables and figures, ``compare``)
7. ``orchestration``: the pipeline description (``dag``), the stages, task runners, name checks
8. entry points: ``cli``, ``__main__``, ``flows.*``

Besides the modules, the packages (``pipeline.training``, ``pipeline.tracking``, ...) must not
import each other in a loop either.

Files in ``pipeline/`` longer than :data:`MAX_LINES` must be listed, with a reason, in the
table of ``docs/decisions.md`` (the rows whose first cell is a backticked ``pipeline/...`` path).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MAX_LINES = 400

LAYERS: list[set[str]] = [
    {"pipeline", "core", "core.*"},
    {"config", "config.*"},
    {"audio", "audio.*", "data", "data.*", "models", "models.*", "robustness", "robustness.perturb", "robustness.noises"},
    {"features", "features.*"},
    {"tracking", "tracking.*"},
    {
        "training",
        "training.*",
        "evaluation",
        "evaluation.*",
        "robustness.stage",
        "robustness.plots",
        "robustness.agreement",
        "hear",
        "inference",
        "inference.*",
    },
    {"report", "report.*"},
    {"orchestration", "orchestration.*"},
    {"cli", "cli.*", "__main__", "flows", "flows.*"},
]
MAX_TOP_LEVEL_MODULES = 8


def _sources() -> dict[str, Path]:
    """Module name -> file, for ``pipeline/`` and ``flows/`` (as ``pipeline.flows``)."""
    out: dict[str, Path] = {}
    for root, prefix in ((REPO / "pipeline", ["pipeline"]), (REPO / "flows", ["pipeline", "flows"])):
        for path in root.rglob("*.py"):
            parts = prefix + list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


MODULES = _sources()


def _known(name: str) -> str | None:
    """The longest prefix of ``name`` that is one of our modules."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str) -> set[str]:
    """Our modules that ``module`` imports anywhere in its file (function-local ones included)."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(filter(None, (_known(a.name) for a in node.names)))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                hit = f"{target}.{alias.name}" if f"{target}.{alias.name}" in MODULES else _known(target)
                if hit:
                    found.add(hit)
    found.discard(module)
    return found


GRAPH = {m: _imports(m) for m in MODULES}


def layer_of(module: str) -> int:
    short = module.removeprefix("pipeline").removeprefix(".") or "pipeline"
    for level, names in enumerate(LAYERS):
        for pattern in names:
            if short == pattern or (pattern.endswith(".*") and short.startswith(pattern[:-1])):
                return level
    raise AssertionError(f"{module} is in no layer; add it to LAYERS (and to this file's docstring)")


def test_every_module_has_a_layer() -> None:
    assert len(MODULES) > 50
    for module in MODULES:
        layer_of(module)


def test_layers_point_one_way() -> None:
    wrong = [
        f"{m} (layer {layer_of(m)}) imports {dep} (layer {layer_of(dep)})"
        for m, deps in sorted(GRAPH.items())
        for dep in sorted(deps)
        if layer_of(dep) > layer_of(m)
    ]
    assert not wrong, "imports from a lower layer to a higher one:\n" + "\n".join(wrong)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan): the import cycles of ``graph``."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def test_no_import_cycle() -> None:
    assert not _cycles(GRAPH), f"import cycles: {_cycles(GRAPH)}"


def package_of(module: str) -> str:
    """``pipeline.tracking.runs`` -> ``pipeline.tracking``; ``robustness`` splits by layer (perturbations vs the stage)."""
    parts = module.split(".")
    if parts[:2] == ["pipeline", "robustness"] and len(parts) > 2:
        return "pipeline.robustness" + (".stage" if layer_of(module) > layer_of("pipeline.robustness") else "")
    return ".".join(parts[:2])


def test_no_package_cycle() -> None:
    """Packages import each other one way (``tracking`` never imports ``evaluation`` back, say)."""
    packages: dict[str, set[str]] = {}
    for module, deps in GRAPH.items():
        packages.setdefault(package_of(module), set()).update(package_of(d) for d in deps)
    for package, deps in packages.items():
        deps.discard(package)
        deps.discard("pipeline")  # the package root (version, sample rate) is below everything
    assert not _cycles(packages), f"package cycles: {_cycles(packages)}"


def test_tracking_is_a_service_below_the_stages() -> None:
    stages = ("pipeline.training", "pipeline.evaluation", "pipeline.inference", "pipeline.report", "pipeline.orchestration")
    back = sorted(
        f"{m} -> {d}" for m, deps in GRAPH.items() if m.startswith("pipeline.tracking") for d in deps if d.startswith(stages)
    )
    assert not back, back


def test_feature_cache_and_train_and_evaluate_do_not_lean_on_each_other() -> None:
    # train reads the feature cache (higher layer -> lower); the cache never imports train
    assert "pipeline.training.train" not in GRAPH["pipeline.features.cache"]
    # evaluate takes clip_loss and the metrics from pipeline.evaluation.metrics, not from train
    assert "pipeline.training.train" not in GRAPH["pipeline.evaluation.evaluate"]
    assert "pipeline.evaluation.metrics" in GRAPH["pipeline.evaluation.evaluate"]


def test_transforms_live_with_the_models() -> None:
    assert "pipeline.models.dsp.transforms" in MODULES
    assert "pipeline.features.transforms" not in MODULES
    assert not any(m.startswith("pipeline.features") for m in GRAPH["pipeline.models.frontends.spectral"])


def _long_file_reasons() -> dict[str, str]:
    text = (REPO / "docs" / "decisions.md").read_text()
    rows = re.findall(r"^\s*\|\s*`(pipeline/[^`|]+\.py)`\s*\|(.*)\|\s*$", text, flags=re.M)
    return {path: reason.strip() for path, reason in rows}


def test_no_long_file_without_a_recorded_reason() -> None:
    reasons = _long_file_reasons()
    long = {p.relative_to(REPO).as_posix(): len(p.read_text().splitlines()) for p in (REPO / "pipeline").rglob("*.py")}
    long = {p: n for p, n in long.items() if n > MAX_LINES}
    unexplained = sorted(f"{p} ({n} lines)" for p, n in long.items() if not reasons.get(p))
    assert not unexplained, f"files over {MAX_LINES} lines without a reason in docs/decisions.md: {unexplained}"
    stale = sorted(p for p in reasons if not (REPO / p).exists())
    assert not stale, f"docs/decisions.md lists files that do not exist: {stale}"


def test_the_folders_show_the_layers() -> None:
    """At most a handful of modules sit directly in ``pipeline/``; the rest live in the layer packages."""
    top = sorted(p.name for p in (REPO / "pipeline").glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL_MODULES, top
    packages = {p.name for p in (REPO / "pipeline").iterdir() if (p / "__init__.py").exists()}
    named = {pattern.split(".")[0] for names in LAYERS for pattern in names} - {"pipeline", "__main__", "flows"}
    assert packages <= named, f"packages without a layer: {sorted(packages - named)}"
