"""Typed parameters: ``params.yaml`` loaded into pydantic models, validated, hashed.

Layout of ``params.yaml`` (one section per stage)::

    profile: smoke            # smoke (synthetic, CPU minutes) | paper (real data, GPU)
    seed: 0
    grid: {tasks: [...], models: [...]}
    variants: {alias: {model: hcnn, options: {...}}}
    datasets: {synth_tags: {...}, ...}
    segment: {...}
    features: {...}
    train: {...}
    evaluate: {...}
    robustness: {...}
    report: {...}
    flow: {...}               # task runner of `musicrep flow` (thread | dask | ray), GPU limit

Keys that are absent take the selected profile's default (the YAML files of
:mod:`pipeline.config.profiles`, the one place where these defaults are written: the models below give
the keys a profile sets no default of their own), so ``profile: paper`` alone is a complete
paper configuration. Unknown keys, wrong types and
out-of-range values raise :class:`~pipeline.core.errors.UserError` with one line naming the key,
the value and what is allowed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipeline.config.profiles import PROFILES, profile_defaults
from pipeline.core.errors import UserError
from pipeline.core.io_utils import deep_merge, stable_hash
from pipeline.core.task_kinds import TaskKind, normalize_kind

DEFAULT_PARAMS = "params.yaml"
RESOLVED_PARAMS = "params.resolved.yaml"
"""The full parameters (``params.yaml`` over its profile) that ``dvc.yaml``'s stages track."""


class Section(BaseModel):
    """Base of every params section: unknown keys are errors, values are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


MAX_GRID_ITEMS = 100
"""The most entries of one grid list (tasks, models, seeds, probe datasets and seeds, robustness
levels): far above any real grid (the paper's is 3 x 11 x 5), low enough that a runaway list is refused."""


class GridParams(Section):
    """Which tasks (datasets) and models the pipeline runs."""

    tasks: list[str] = Field(min_length=1, max_length=MAX_GRID_ITEMS)
    models: list[str] = Field(min_length=1, max_length=MAX_GRID_ITEMS)
    """Registry variants, ``front+back`` swaps or aliases; ``all`` (alone, or as an entry) is every
    registry variant (:mod:`pipeline.models.grid` expands it)."""
    seeds: list[int] = Field(min_length=1, max_length=MAX_GRID_ITEMS)
    """Training seeds: every (task, model) cell is trained once per seed (initialisation and
    data order); the data and its split stay fixed by the top-level ``seed``."""

    @field_validator("models", mode="before")
    @classmethod
    def _all_alone(cls, v: object) -> object:
        return [v] if v == "all" else v

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, v: list[int]) -> list[int]:
        if len(set(v)) != len(v) or any(s < 0 or s >= 2**31 for s in v):
            raise ValueError("seeds must be distinct integers in [0, 2**31)")
        return v


class VariantAlias(Section):
    """A named variant: a registry model plus options, e.g. for ablations."""

    model: str
    options: dict[str, Any] = Field(default_factory=dict)
    width: float | None = Field(default=None, gt=0, le=4)
    init: str | None = None
    """Start from this model: ``sota:<dataset>/<model>`` or a packaged-model folder (pipeline/models/transfer.py)."""
    freeze: Literal["none", "frontend", "backbone"] = "none"


class SynthParams(Section):
    """Size of an embedded synthetic dataset."""

    n_clips: int = Field(ge=12, le=1_000_000)
    clip_seconds: float = Field(gt=0.1, le=60)
    val_fraction: float = Field(gt=0, lt=0.5)
    test_fraction: float = Field(gt=0, lt=0.5)


class RenderedParams(SynthParams):
    """Size and soundfont of the rendered-music dataset ``corpus_tags`` (docs/datasets.md)."""

    n_pieces: int = Field(ge=5, le=1000)
    """Corpus pieces drawn (in proportion per collection); the clips are spread evenly over them."""
    soundfont: str = Field(min_length=1)
    """``timgm6mb`` (pretty_midi's bundled General MIDI soundfont) or a path to an ``.sf2`` file."""


class RealDatasetParams(Section):
    """Where a real dataset comes from (``mirror`` overrides the publisher's URLs)."""

    mirror: str | None = None
    audio_dir: str | None = None  # user-supplied audio (DCASE: YouTube clips you obtained)
    clip_seconds: float | None = Field(default=None, gt=0, le=60)


class MTATParams(RealDatasetParams):
    """MagnaTagATune comes from two publishers: MIRG's audio and annotations (``mirror``) and the reference
    repository's split and tag lists (``split_mirror``), each with its own mirror."""

    split_mirror: str | None = None
    """Where ``train/valid/test.npy`` and ``top50_tags.txt`` come from: a base URL, a folder holding them, or a
    clone of ``minzwon/sota-music-tagging-models`` (``split/mtat/`` inside); ``null``: that repository on GitHub."""
    split: Literal["auto", "reference", "rule"] = "auto"
    """auto: the reference lists, or the rule with a warning when they are absent; reference: refuse without
    them; rule: the documented rule and tag frequencies on purpose (not comparable with ``sota:`` heads)."""


class FolderDatasetParams(Section):
    """The user's own audio: folder-per-class or a CSV of ``path,labels`` (see docs/datasets.md).

    Used for the fixed ``datasets.folder`` key and for every named own dataset
    (``datasets.<name>: {kind: folder, ...}``).
    """

    kind: Literal["folder"] = "folder"
    path: str | None = None
    labels_csv: str | None = None
    task: Annotated[TaskKind | None, BeforeValidator(normalize_kind)] = None
    """single (softmax; accuracy, confusion matrix) | multilabel (sigmoid; ROC-AUC, PR-AUC); unset = inferred.
    The earlier spellings single_label / multi_label mean the same (:mod:`pipeline.core.task_kinds`)."""
    clip_seconds: float = Field(default=4.0, gt=0.1, le=60)
    tail: Literal["keep", "overlap", "drop"] = "keep"
    """Rest of a file after its last whole clip: keep (a shorter clip), overlap (a full clip ending at
    the file's end), drop (reported as audio not used)."""
    split: Literal["auto", "column", "fold", "hash"] = "auto"
    """auto: the CSV's split column if present, else its fold column with ``splits``, else hash."""
    split_column: str = "split"
    fold_column: str = "fold"
    splits: dict[Literal["train", "val", "test"], list[int | str]] | None = None
    """Fold values per split, e.g. ``{train: [1, 2, 3], val: [5], test: [4]}``."""
    group_column: str | None = None
    group_regex: str | None = None
    """Regex over the path relative to ``path``; its first group (or whole match) is the group."""
    val_fraction: float = Field(default=0.15, gt=0, lt=0.5)
    test_fraction: float = Field(default=0.2, gt=0, lt=0.5)

    @field_validator("group_regex")
    @classmethod
    def _compiles(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression ({exc})") from None
        return v


OWN_DATASET_NAME = r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$"


class OwnDatasetParams(FolderDatasetParams):
    """A named own dataset: ``datasets.<name>: {kind: folder, path: ..., ...}`` (``kind`` required)."""

    kind: Literal["folder"]


class DatasetsParams(Section):
    """The fixed datasets, plus any number of named own datasets (extra keys with ``kind: folder``)."""

    model_config = ConfigDict(extra="allow", validate_assignment=True)
    __pydantic_extra__: dict[str, OwnDatasetParams] = Field(init=False)

    synth_tags: SynthParams
    synth_keywords: SynthParams
    synth_events: SynthParams
    corpus_tags: RenderedParams
    fsdd: RealDatasetParams = Field(default_factory=RealDatasetParams)
    mtat: MTATParams = Field(default_factory=MTATParams)
    speech_commands: RealDatasetParams = Field(default_factory=RealDatasetParams)
    dcase2017_task4: RealDatasetParams = Field(default_factory=RealDatasetParams)
    folder: FolderDatasetParams = Field(default_factory=FolderDatasetParams)

    @model_validator(mode="after")
    def _own_names(self) -> DatasetsParams:
        for name in self.model_extra or {}:
            if not re.match(OWN_DATASET_NAME, name):
                raise ValueError(
                    f"own dataset name {name!r} must start with a letter and hold only letters, digits, '_', '.', '-'"
                )
        return self

    def own(self) -> dict[str, FolderDatasetParams]:
        """The folder-kind datasets: ``folder`` (when configured) is not included; named ones are."""
        return dict(self.model_extra or {})

    def folder_settings(self, name: str) -> FolderDatasetParams | None:
        """Settings of ``folder`` or of the named own dataset ``name`` (``None`` if neither)."""
        if name == "folder":
            return self.folder
        return (self.model_extra or {}).get(name)


class SegmentParams(Section):
    sample_rate: Literal[16000]
    shard_mb: int = Field(ge=1, le=4096)
    min_seconds: float = Field(ge=0)
    silence_dbfs: float = Field(le=0)


class FeaturesParams(Section):
    """Spectrogram cache (log-mel shared by mel front-ends; STFT as in docs/spec.md §1.1)."""

    n_fft: Literal[512]
    hop_length: Literal[256]
    enabled: bool


class PaperScheduleParams(Section):
    """``train.optimizer: paper`` (docs/spec.md §4): Adam at ``train.lr`` until the first phase
    start, then one SGD phase per entry, each starting from the best model so far."""

    phase_starts: list[float] = Field(min_length=1)
    """Where each SGD phase begins, as a fraction of ``train.epochs`` (epoch ``e``, 0-based, is in
    the last phase whose start is ``<= e / epochs``); strictly increasing, in ``(0, 1]``."""
    sgd_lrs: list[float] = Field(min_length=1)
    """The learning rate of each SGD phase, one per ``phase_starts`` entry, each in ``(0, 1]``."""

    @model_validator(mode="after")
    def _one_rate_per_phase(self) -> PaperScheduleParams:
        starts, lrs = self.phase_starts, self.sgd_lrs
        if len(starts) != len(lrs):
            raise ValueError(f"phase_starts has {len(starts)} entries and sgd_lrs {len(lrs)}; give one rate per phase")
        if any(not 0 < s <= 1 for s in starts) or any(b <= a for a, b in zip(starts, starts[1:])):
            raise ValueError("phase_starts must be strictly increasing fractions of the epochs in (0, 1]")
        if any(not 0 < lr <= 1 for lr in lrs):
            raise ValueError("every sgd_lrs entry must be in (0, 1]")
        return self


class TrainParams(Section):
    epochs: int = Field(ge=1, le=1000)
    batch_size: int = Field(ge=1, le=1024)
    lr: float = Field(gt=0, le=1)
    weight_decay: float = Field(ge=0, le=1)
    optimizer: Literal["adam", "adamw", "sgd", "paper"]
    paper_schedule: PaperScheduleParams
    """The phases of ``optimizer: paper`` (ignored by the other optimizers)."""
    input_seconds: float | None = Field(gt=0, le=60)
    """Smoke profile: train on random crops of at most this many seconds (``null``: the whole clip);
    evaluation averages ``evaluate.n_chunks`` such chunks over each clip. The paper profile uses the
    spec's input lengths and needs ``null``."""
    lr_schedule: Literal["constant", "cosine"]
    """constant | cosine (linear warm-up over the first 5 % of the steps, then a cosine decay to ~0);
    the ``paper`` optimizer has its own schedule and needs ``constant``."""
    width: float = Field(gt=0, le=4)
    bf16: Literal["auto", "on", "off"]
    """bf16 autocast for the model's forward (loss, metrics and checkpoints stay fp32): ``auto`` =
    on CUDA, and on a CPU with native bf16 for the variants measured faster with it
    (``pipeline.models.inference.use_bf16``); ``on``/``off`` force it (``true``/``false`` mean the same)."""
    steps_per_epoch: int | None = Field(ge=1)
    val_max_clips: int | None = Field(ge=1)
    """Validate each epoch on a seeded subset of at most this many validation clips (``null``: all)."""
    val_every: int = Field(ge=1, le=1000)
    """Validate every this many epochs (1: every epoch), and always after the last; the best epoch and
    early stopping (``patience``, counted in epochs) are decided among the validated epochs only."""
    use_feature_cache: bool
    patience: int | None = Field(ge=1)
    """Early stopping: end training after this many epochs without a lower validation loss (the best
    epoch is packaged); ``null`` runs every epoch. For datasets whose schedule is unknown, a generous
    ``epochs`` with a patience; ``train`` warns when the best epoch is among the last (``still_improving``)."""

    @field_validator("bf16", mode="before")
    @classmethod
    def _bf16_bool(cls, v: Any) -> Any:
        return ("on" if v else "off") if isinstance(v, bool) else v  # YAML's true/false (and on/off)

    @model_validator(mode="after")
    def _one_schedule(self) -> TrainParams:
        if self.optimizer == "paper" and self.lr_schedule != "constant":
            raise ValueError("optimizer 'paper' has its own schedule; set lr_schedule: constant")
        return self


class EvaluateParams(Section):
    n_chunks: int = Field(ge=1, le=256)
    threshold: float = Field(gt=0, lt=1)
    max_clips: int | None = Field(ge=1)
    """Score a seeded subset of at most this many test clips (``null``: the whole test split); the same
    seed as ``robustness.max_clips``, so equal caps pick the same clips."""


class RuntimeParams(Section):
    """How to run, not what to compute: devices, threads, kernels, workers, batch sizes of inference.

    Neither DVC's stages (``dvc.yaml`` tracks leaf keys of the other sections) nor the training
    checkpoint's fingerprint see this section, so changing it re-runs nothing and a checkpoint
    resumes on another device. The results it can move are floating-point rounding (another
    kernel, device or batch blocking), never the protocol.
    """

    device: Literal["auto", "cpu", "cuda"]
    """auto (CUDA when present, else CPU; logged; under ``profile: paper`` no CUDA is an error) | cpu |
    cuda (no CUDA is an error): ``pipeline.models.device.pick_device``."""
    gpu_cells: int = Field(ge=1, le=64)
    """Grid cells at once per GPU when the cells run on CUDA (``make repro``'s JOBS, ``musicrep dag --jobs``;
    the Prefect flow's ``gpu`` limit is ``flow.gpu_concurrency`` times this)."""
    num_threads: int = Field(ge=0, le=256)
    """CPU threads for torch (0 = torch's default)."""
    compile: Literal["auto", "on", "off"]
    """torch.compile the model: ``on``, ``off``, or ``auto`` (eager until compile is measured faster on a GPU)."""
    mkldnn: Literal["auto", "on", "off"]
    """oneDNN convolutions when training on CPU: ``auto`` = the variant's measured default
    (off for musicnn, whose backward is ~2x faster with PyTorch's native kernels), ``on``, ``off``."""
    num_workers: int | Literal["auto"]
    """DataLoader worker processes: ``auto`` = 4 on CUDA (pinned, persistent), 0 on CPU."""
    progress_seconds: float = Field(gt=0)
    """Without a terminal, one progress log line per this many seconds inside an epoch."""

    eval_batch_size: int = Field(ge=1, le=1024)
    """Chunks per forward in validation, evaluation and robustness."""


REFERENCE_ROBUSTNESS_GRID: dict[str, list[float]] = {
    "ref_time_stretch": [2**-0.5, 2**-0.25, 2**0.25, 2**0.5],
    "ref_pitch_shift": [-1.0, -0.5, 0.5, 1.0],
    "ref_dynamic_range": [4.0, 6.0],
    "ref_white_noise": [0.1, 0.2, 0.3, 0.4],
}
"""``robustness.protocol: reference``: the reference repository's perturbations (``ref_*``) over the amounts of
docs/spec.md §6 (its ends; the steps between them even, as the reference passes one amount per run)."""


class RobustnessParams(Section):
    """Perturbation grid: ``{perturbation: [levels]}`` evaluated on the test split."""

    enabled: bool
    protocol: Literal["grid", "reference"]
    """grid: ``robustness.grid`` as written; reference: :data:`REFERENCE_ROBUSTNESS_GRID` replaces it."""
    grid: dict[str, Annotated[list[float], Field(max_length=MAX_GRID_ITEMS)]]
    noise_source: str
    max_clips: int | None = Field(ge=1)

    @model_validator(mode="before")
    @classmethod
    def _expand_protocol(cls, data: Any) -> Any:
        """``protocol: reference`` -> the reference grid (before validation: the resolved params show it)."""
        if isinstance(data, dict) and data.get("protocol") == "reference":
            return {**data, "grid": {name: list(levels) for name, levels in REFERENCE_ROBUSTNESS_GRID.items()}}
        return data


class ReportParams(Section):
    out_dir: str


class PretrainedParams(Section):
    """Where the published ``sota:`` taggers are fetched from (checked by SHA-256, so never part of a result)."""

    mirror: str | None
    """A folder or base URL laid out like the upstream repository (``sota/<dataset>/<model>/best_model.pth``);
    ``null``: ``$MUSICREP_PRETRAINED_MIRROR``, else the upstream URLs. ``--mirror`` of ``musicrep pretrained``
    wins over both (:func:`pipeline.models.pretrained.pretrained_mirror`)."""


class FlowParams(Section):
    """How ``musicrep flow`` fans the grid out (``docs/scaling.md``); not part of any result."""

    task_runner: Literal["thread", "dask", "ray"]
    """thread: Prefect's thread pool in this process | dask: prefect-dask | ray: prefect-ray."""
    address: str | None
    """An existing Dask scheduler (``tcp://host:8786``) or Ray cluster (``ray://host:10001``, ``auto``);
    ``null`` starts a temporary local one (Dask ``LocalCluster``, local Ray) of ``max_workers`` workers."""
    max_workers: int = Field(ge=1, le=4096)
    """Threads (thread), single-threaded worker processes (local Dask) or CPUs (local Ray)."""
    gpu_concurrency: int = Field(ge=1, le=4096)
    """GPU cells at once: the Prefect tag concurrency limit ``gpu`` (one per GPU)."""
    gpu_tag: Literal["auto", "on", "off"]
    """Tag cells ``gpu``: auto = when ``runtime.device`` resolves to CUDA here | on | off."""


class ProbeEntry(Section):
    """One ``probes:`` entry: probe a grid cell's packaged model on downstream datasets (``musicrep probe``)."""

    model: str = Field(pattern=r"^[^/\s]+/[^/\s]+$")
    """``TASK/MODEL`` of a trained grid cell (``models/TASK/MODEL/seed<model_seed>``)."""
    datasets: list[str] = Field(min_length=1, max_length=MAX_GRID_ITEMS)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1, max_length=MAX_GRID_ITEMS)
    """Probe seeds (the MLP's initialisation and the random network of the baseline)."""
    model_seed: int = Field(default=0, ge=0)
    random_init: bool = True
    """Also probe a randomly initialised network of the same architecture (the baseline row)."""


class Params(Section):
    """The whole ``params.yaml``."""

    profile: Literal["smoke", "paper"]
    seed: int = Field(ge=0, lt=2**31)
    grid: GridParams
    variants: dict[str, VariantAlias]
    datasets: DatasetsParams
    segment: SegmentParams
    features: FeaturesParams
    train: TrainParams
    evaluate: EvaluateParams
    runtime: RuntimeParams
    robustness: RobustnessParams
    report: ReportParams
    flow: FlowParams
    pretrained: PretrainedParams
    probes: list[ProbeEntry] = Field(default_factory=list)
    """Frozen-embedding probes run by ``dvc repro`` (``pipeline/orchestration/dag.py``; empty in both profiles)."""

    @model_validator(mode="after")
    def _paper_lengths(self) -> Params:
        if self.profile == "paper" and self.train.input_seconds is not None:
            raise ValueError("train.input_seconds applies to the smoke profile; the paper profile uses the spec's input lengths")
        return self

    def section_hash(self, *sections: str) -> str:
        """Stable hash of the named sections (keys caches; same on every machine)."""
        dumped = self.model_dump(mode="json")
        return stable_hash({s: dumped[s] for s in sections})


def _format_error(err: dict[str, Any], raw: dict[str, Any], source: str) -> str:
    loc = ".".join(str(p) for p in err["loc"])
    kind = err["type"]
    value = err.get("input")
    own = _own_dataset_error(err, source)
    if own:
        return own
    if kind == "extra_forbidden":
        parent = err["loc"][:-1]
        allowed = _allowed_keys(parent)
        hint = f"; allowed keys here: {', '.join(allowed)}" if allowed else ""
        return f"{source}: unknown key '{loc}'{hint}."
    if kind == "missing":
        return f"{source}: missing key '{loc}'; add it or remove the section to use the profile default."
    shown = repr(value)
    if len(shown) > 120:  # a runaway list is named, not printed
        shown = shown[:100] + f"... ({len(value)} entries)" if isinstance(value, list | dict) else shown[:100] + "..."
    return f"{source}: invalid value {shown} for '{loc}': {err['msg']}."


def _own_dataset_error(err: dict[str, Any], source: str) -> str | None:
    """A clear line for ``datasets.<name>`` entries that are neither fixed datasets nor ``kind: folder``."""
    loc = err["loc"]
    if tuple(loc) == ("datasets",) and err["type"] == "value_error":
        return f"{source}: {str(err['msg']).removeprefix('Value error, ')}; rename it."
    if len(loc) < 2 or loc[0] != "datasets" or str(loc[1]) in DatasetsParams.model_fields:
        return None
    name = str(loc[1])
    fixed = ", ".join(DatasetsParams.model_fields)
    if len(loc) == 2 or (len(loc) == 3 and loc[2] == "kind"):
        return (
            f"{source}: unknown dataset 'datasets.{name}'; the fixed datasets are {fixed}, and an own dataset "
            f"needs `kind: folder` (e.g. datasets.{name}: {{kind: folder, path: DIR}})."
        )
    return None


def _allowed_keys(parent: tuple[Any, ...]) -> list[str]:
    model: Any = Params
    for part in parent:
        field = getattr(model, "model_fields", {}).get(str(part))
        if field is None and model is DatasetsParams:
            model = OwnDatasetParams
            continue
        if field is None:
            return []
        model = field.annotation
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return []
    return sorted(getattr(model, "model_fields", {}))


class DuplicateKeyError(yaml.YAMLError):
    """A mapping in a params file repeats a key."""


class UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a repeated key in any mapping (PyYAML keeps the last one)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor` may be overridden by later keys
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                first = seen.setdefault(key, key_node.start_mark.line + 1)
            except TypeError:  # an unhashable key: let the base class report it
                continue
            if first != key_node.start_mark.line + 1:
                raise DuplicateKeyError(f"key {key!r} appears twice (lines {first} and {key_node.start_mark.line + 1})")
        return super().construct_mapping(node, deep=deep)


MAX_YAML_NODES = 100_000
"""The most nodes a params document (or a ``--set`` value) may hold once its aliases are expanded:
the shipped params.yaml holds about a thousand; an alias bomb (``&a [*b, *b, ...]`` nested) billions."""


class AliasBombError(yaml.YAMLError):
    """A YAML document whose aliases expand to more than :data:`MAX_YAML_NODES` nodes."""


def _expanded_size(root: yaml.Node, budget: int) -> int:
    """Nodes of ``root`` with every alias expanded, counted on the composed graph (each node once, memoised).

    Raises:
        AliasBombError: more than ``budget`` nodes, or an alias that contains itself.
    """
    sizes: dict[int, int] = {}

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            if sizes[key] < 0:
                raise AliasBombError("an alias refers to a node that contains it (a recursive alias)")
            return sizes[key]
        sizes[key] = -1
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        total = 1
        for child in children:
            total += size(child)
            if total > budget:
                raise AliasBombError(
                    f"its aliases (*name) expand to more than {budget:,} values (line {node.start_mark.line + 1})"
                )
        sizes[key] = total
        return total

    return size(root)


class BudgetedLoader(UniqueKeyLoader):
    """:class:`UniqueKeyLoader` that refuses a document whose aliases expand beyond :data:`MAX_YAML_NODES`.

    The expanded size is counted on the composed node graph, before any Python object is built,
    so an alias bomb costs milliseconds, not memory.
    """

    def compose_document(self) -> yaml.Node | None:
        node = super().compose_document()
        if node is not None:
            _expanded_size(node, MAX_YAML_NODES)
        return node


def load_yaml(text: str) -> Any:
    """Parse params YAML safely: no repeated keys, no alias expansion beyond :data:`MAX_YAML_NODES`.

    Raises:
        yaml.YAMLError: bad syntax, :class:`DuplicateKeyError`, :class:`AliasBombError`.
    """
    return yaml.load(text, Loader=BudgetedLoader)


def load_params(path: str | Path = DEFAULT_PARAMS, overrides: dict[str, Any] | None = None) -> Params:
    """Load, merge with the profile defaults, and validate a params file.

    Args:
        path: YAML file (default ``params.yaml``).
        overrides: nested dict applied on top (tests, CLI ``--set``).

    Raises:
        UserError: missing file, bad YAML, unknown key, wrong type or out-of-range value.
    """

    path = Path(path)
    if not path.exists():
        raise UserError(f"params file {path} not found; run from the repository root or pass --params FILE.")
    try:
        raw = load_yaml(path.read_text()) or {}
    except DuplicateKeyError as exc:
        raise UserError(f"{path}: {exc}; keep one of them (a repeated section silently replaces the first).") from None
    except AliasBombError as exc:
        raise UserError(f"{path} is refused: {exc}; write the values out instead of nesting aliases.") from None
    except yaml.YAMLError as exc:
        raise UserError(
            f"{path} is not valid YAML ({exc.__class__.__name__} near line {getattr(getattr(exc, 'problem_mark', None), 'line', '?')}); fix its syntax."
        ) from exc
    if not isinstance(raw, dict):
        raise UserError(f"{path} must be a mapping of sections (profile, grid, train, ...), not {type(raw).__name__}.")
    if overrides:
        raw = deep_merge(raw, overrides)
    _refuse_moved_keys(raw, str(path))
    profile = raw.get("profile", "smoke")
    if profile not in PROFILES:
        raise UserError(f"{path}: invalid value {profile!r} for 'profile'; allowed: {', '.join(PROFILES)}.")
    merged = deep_merge(profile_defaults(profile), raw)
    try:
        return Params.model_validate(merged)
    except ValidationError as exc:
        error = exc.errors()[0]
        raise UserError(_format_error(error, raw, blamed_source(error["loc"], overrides, path))) from None


def blamed_source(loc: tuple[Any, ...] | list[Any], overrides: dict[str, Any] | None, path: Path) -> str:
    """Where a bad value came from: ``--set KEY`` when an override set it (or its parent), else the params file."""
    node: Any = overrides or {}
    for depth, part in enumerate(loc):
        if not isinstance(node, dict) or str(part) not in node:
            return str(path)
        node = node[str(part)]
        if not isinstance(node, dict):
            return "--set " + ".".join(str(p) for p in loc[: depth + 1])
    return "--set " + ".".join(str(p) for p in loc)


MOVED_TO_RUNTIME = {
    ("train", "device"): "device",
    ("train", "num_threads"): "num_threads",
    ("train", "compile"): "compile",
    ("train", "mkldnn"): "mkldnn",
    ("train", "num_workers"): "num_workers",
    ("train", "progress_seconds"): "progress_seconds",
    ("evaluate", "batch_size"): "eval_batch_size",
}
"""Run-time keys that left ``train``/``evaluate`` for the ``runtime`` section (issue 19)."""


def _refuse_moved_keys(raw: dict[str, Any], source: str) -> None:
    for (section, key), new in MOVED_TO_RUNTIME.items():
        block = raw.get(section)
        if isinstance(block, dict) and key in block:
            raise UserError(
                f"{source}: '{section}.{key}' moved to 'runtime.{new}' (run-time settings change no result and are "
                f"not tracked by DVC); write `runtime: {{{new}: {block[key]!r}}}` instead."
            )


RESOLVED_HEADER = """\
# GENERATED by `musicrep params --resolve` (the `params` stage of dvc.yaml): params.yaml merged
# over its profile (pipeline/config/profiles/). DVC's stages track these values, so a changed default
# re-runs what it affects. Edit params.yaml, not this file.
"""


def render_resolved(params: Params) -> str:
    """Text of :data:`RESOLVED_PARAMS`: every parameter, as validated, under a header."""
    return RESOLVED_HEADER + yaml.safe_dump(params.model_dump(mode="json"), sort_keys=False, width=120)


@dataclass(frozen=True)
class GridModel:
    """A grid model name resolved from ``params``: what the model layer builds, how long its input is, how it starts.

    Attributes:
        name: the grid's name for it (registry variant, ``front+back`` swap or ``variants:`` alias).
        variant: the registry variant it builds; ``options``: the alias's options (``{}`` without).
        width: the alias's width, else 1.0 for a variant with an ``init`` (the published models'
            width), else ``train.width``.
        profile: ``smoke`` or ``paper`` (the paper profile uses the spec's input lengths).
        max_samples: the smoke crop, ``train.input_seconds`` at ``segment.sample_rate`` (None: the whole clip).
        init, freeze: the alias's pretrained start (:func:`pipeline.models.transfer.apply_init`).
    """

    name: str
    variant: str
    options: dict[str, Any]
    width: float
    profile: str
    max_samples: int | None
    init: str | None = None
    freeze: str = "none"


def grid_model(params: Params, name: str) -> GridModel:
    """The one resolution of grid model ``name`` (registry name, swap or alias) from ``params``."""

    crop = params.train.input_seconds
    max_samples = None if crop is None else round(crop * params.segment.sample_rate)
    alias = params.variants.get(name) or VariantAlias(model=name)  # a registry name or swap: the alias defaults
    width = alias.width or (1.0 if alias.init else params.train.width)
    return GridModel(name, alias.model, dict(alias.options), width, params.profile, max_samples, alias.init, alias.freeze)


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested dicts to dotted keys (for MLflow params)."""
    out: dict[str, Any] = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out
