"""The ``musicrep`` command: one subcommand per stage, plus models/compare/predict/embed/serve.

User errors (bad params, missing data, unreadable audio, bad checkpoints) print one line
and exit with status 2; no traceback.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated, Literal

import typer
import yaml

from pipeline import __version__
from pipeline.cli import predict as predict_cli
from pipeline.cli import pretrained as pretrained_cli
from pipeline.cli import representation as representation_cli
from pipeline.cli.lazy import lazy
from pipeline.cli.metavars import PlainMetavarGroup
from pipeline.cli.tables import show_table
from pipeline.config.project import (
    WRITING_COMMANDS,
    Project,
    find_root,
    parse_overrides,
    project_of,
    refuse_tracked_tryout,
    without_run_time,
)
from pipeline.core.choices import PROFILES, TABLE_FORMATS, TASK_RUNNERS
from pipeline.core.errors import UserError, environment_error
from pipeline.core.paths import Layout

# What the commands run, imported when a command runs (pipeline/cli/lazy.py): `musicrep --help` stays light.
pd = lazy("pandas")
rich_logging = lazy("rich.logging")
agreement = lazy("pipeline.robustness.agreement")
cell_stage = lazy("pipeline.orchestration.cell")  # not stages: a cell imports only the code it runs
comparison = lazy("pipeline.report.compare")
cross_dataset = lazy("pipeline.evaluation.evaluate")
data_registry = lazy("pipeline.data.registry")
deployment = lazy("pipeline.flows.serve")
dvc_dag = lazy("pipeline.orchestration.dag")
io_utils = lazy("pipeline.core.io_utils")
model_grid = lazy("pipeline.models.grid")
paired_comparison = lazy("pipeline.evaluation.paired")
params_check = lazy("pipeline.orchestration.params_check")
params_schema = lazy("pipeline.config.params")
pipeline_flow = lazy("pipeline.flows.pipeline_flow")
pretrained_models = lazy("pipeline.models.pretrained")
probe = lazy("pipeline.evaluation.probe")
profiles = lazy("pipeline.config.profiles")
rehearsal = lazy("pipeline.orchestration.rehearse")
runners = lazy("pipeline.orchestration.runners")
stages = lazy("pipeline.orchestration.stages")
user_audio = lazy("pipeline.data.user_audio")
zoo = lazy("pipeline.models.zoo")

app = typer.Typer(
    cls=PlainMetavarGroup,
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="musicrep: front-end/back-end audio representation learning pipeline.",
)
ParamsOpt = Annotated[Path | None, typer.Option("--params", "-p", help="params file (default: the project's params.yaml)")]
_state: dict[str, object] = {}
log = logging.getLogger("musicrep")


_LOGGERS = ("pipeline", "musicrep")  # the command configures its own loggers only, never the root logger


class _CurrentStderr(logging.StreamHandler):
    """A stream handler that writes to whatever ``sys.stderr`` is at emit time (not at creation)."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ assigns it; the property wins
        pass


def _configure_logging(verbose: bool) -> None:
    """One stderr handler on the ``pipeline`` and ``musicrep`` loggers (replaced on each call).

    Records still propagate (so pytest's ``caplog`` sees them); the root logger and the
    libraries' loggers keep their own settings.
    """
    tty = sys.stderr.isatty()
    handler = rich_logging.RichHandler(show_path=False, rich_tracebacks=False) if tty else _CurrentStderr()
    handler.setFormatter(logging.Formatter("%(message)s" if tty else "%(levelname)s %(name)s: %(message)s"))
    handler._musicrep = True  # type: ignore[attr-defined]
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if getattr(h, "_musicrep", False)]:
            logger.removeHandler(old)
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG if verbose else logging.INFO)


def _hand_logging_to_prefect() -> None:
    """Drop our handlers once Prefect is imported: its console handler on the root logger prints the lines."""
    if not logging.getLogger().handlers:
        return
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if getattr(h, "_musicrep", False)]:
            logger.removeHandler(old)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"musicrep {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    ctx: typer.Context,
    version: Annotated[
        bool | None,
        typer.Option("--version", callback=_print_version, is_eager=True, help="print the version and exit"),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="debug logging")] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="show the traceback of an unexpected error (anywhere on the line)")
    ] = False,
    project: Annotated[
        Path | None,
        typer.Option("--project", help="the project folder (default: the nearest folder at or above here with params.yaml)"),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="override a param for this command: --set train.epochs=2 (repeatable; values are YAML)"),
    ] = None,
    wait: Annotated[
        bool,
        typer.Option("--wait", help="when another run holds this stage's lock (same cell, dataset or output), wait for it"),
    ] = False,
) -> None:
    _configure_logging(verbose)
    if wait:
        os.environ["MUSICREP_LOCK_WAIT"] = "1"  # read by every stage lock, also in the DVC/flow runs this starts
    ctx.obj = Project(find_root(project), parse_overrides(set_ or []))
    if ctx.invoked_subcommand in WRITING_COMMANDS:
        refuse_tracked_tryout(ctx.obj, ctx.invoked_subcommand)


def _project(ctx: typer.Context) -> Project:
    """The project the callback resolved (``--project`` or the nearest params.yaml, with ``--set``)."""
    return project_of(ctx)


def _params(ctx: typer.Context, path: Path | None = None, extra: dict | None = None):
    return _project(ctx).params(path, extra)


def _checked_params(
    ctx: typer.Context, path: Path | None, task: str, model: str | None = None, *, published: bool = False, what: str = "task"
):
    """The params, once the task (a dataset) and model names are known ones: a typo is one line
    with a "did you mean", before any data is read or written."""
    p = _params(ctx, path)
    data_registry.check_dataset(task, p, what)
    if model is not None:
        params_check.check_model(model, p, published=published)
    return p


@app.command("params", rich_help_panel="Pipeline stages")
def params_cmd(
    ctx: typer.Context,
    file: Annotated[Path | None, typer.Argument(help="params file (default params.yaml)")] = None,
    check: Annotated[bool, typer.Option("--check", help="validate only")] = False,
    init: Annotated[Literal[PROFILES] | None, typer.Option("--init", help="print a full params file for a profile")] = None,
    diff: Annotated[bool, typer.Option("--diff", help="only the values that differ from the profile's defaults")] = False,
    resolve: Annotated[
        bool, typer.Option("--resolve", help="write params.resolved.yaml (every value, as DVC tracks it) beside the file")
    ] = False,
) -> None:
    """Validate a params file, show the resolved values (or their difference to the profile), or print a preset."""
    if init:
        resolved = params_schema.Params.model_validate(profiles.profile_defaults(init)).model_dump(mode="json")
        typer.echo(yaml.safe_dump(resolved, sort_keys=False))
        return
    path = _project(ctx).params_file(file)
    p = _params(ctx, file)
    if resolve:
        refuse_tracked_tryout(_project(ctx), "params --resolve")
        p = params_schema.load_params(path, without_run_time(_project(ctx).overrides) or None)
        out = stages.resolve_params(p, Layout(path.resolve().parent))
        typer.echo(f"{out}: resolved (profile {p.profile})")
        return
    if check:
        problems = params_check.check_names(p, path.parent)
        if problems:
            more = f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''})" if len(problems) > 1 else ""
            key = problems[0].split(":")[0].split(" ")[0].split(".")  # e.g. variants.v.options
            source = params_schema.blamed_source(key, _project(ctx).overrides, path)
            prefix = f"{path}: " if source == str(path) else ""
            raise UserError(f"{prefix}{problems[0]}{more}; fix it in {source}.")
        typer.echo(
            f"{path}: OK (profile {p.profile}, {len(p.grid.tasks)} tasks x {len(model_grid.grid_models(p))} models, hash {p.section_hash('train', 'features', 'evaluate')})"
        )
        return
    if diff:
        mine = params_schema.flatten(p.model_dump(mode="json"))
        base = params_schema.flatten(
            params_schema.Params.model_validate(profiles.profile_defaults(p.profile)).model_dump(mode="json")
        )
        changed = {k: (base.get(k, "(absent)"), v) for k, v in mine.items() if base.get(k, "(absent)") != v}
        changed |= {k: (v, "(absent)") for k, v in base.items() if k not in mine}
        if not changed:
            typer.echo(f"{path}: same as the {p.profile} profile")
        for key in sorted(changed):
            old, new = changed[key]
            typer.echo(f"{key}: {json.dumps(old)} -> {json.dumps(new)}")
        return
    typer.echo(yaml.safe_dump(p.model_dump(mode="json"), sort_keys=False))


@app.command(rich_help_panel="Pipeline stages")
def download(
    ctx: typer.Context,
    dataset: str,
    mirror: Annotated[
        str | None,
        typer.Option(
            help="directory or base URL replacing the publisher's (MTAT: MIRG's; its split lists: datasets.mtat.split_mirror)"
        ),
    ] = None,
    audio_dir: Annotated[Path | None, typer.Option(help="DCASE: folder of audio you obtained")] = None,
    path: Annotated[Path | None, typer.Option(help="folder / own dataset: your audio folder")] = None,
    labels_csv: Annotated[Path | None, typer.Option(help="folder / own dataset: CSV of path,labels")] = None,
    manifest: Annotated[
        bool,
        typer.Option(
            "--manifest", help="only list the user-supplied audio folder into data/manifests/DATASET.tsv (DVC tracks it)"
        ),
    ] = False,
    params: ParamsOpt = None,
) -> None:
    """Fetch a dataset into data/raw/DATASET (synthetic ones are generated)."""
    if manifest:
        p = _checked_params(ctx, params, dataset, what="dataset")
        typer.echo(f"{dataset}: {user_audio.write_audio_manifest(dataset, p, _project(ctx).layout)}")
        return

    overrides: dict = {}
    if mirror or audio_dir:
        overrides.setdefault("datasets", {})[dataset] = {
            k: str(v) for k, v in {"mirror": mirror, "audio_dir": audio_dir}.items() if v
        }
    if path or labels_csv:
        if dataset in data_registry.available() and dataset != "folder":
            raise UserError(
                f"--path/--labels-csv are for your own audio (folder or a datasets.NAME with kind: folder), not {dataset}; drop them."
            )
        overrides.setdefault("datasets", {})[dataset] = {
            k: str(v.resolve()) for k, v in {"path": path, "labels_csv": labels_csv}.items() if v
        }
    p = _params(ctx, params, overrides)
    data_registry.check_dataset(dataset, p)
    out = stages.download(dataset, p, _project(ctx).layout)
    typer.echo(f"{dataset}: raw files in {out}")


@app.command(rich_help_panel="Pipeline stages")
def segment(ctx: typer.Context, dataset: str, params: ParamsOpt = None) -> None:
    """Decode, mix to mono, resample to 16 kHz, write waveform shards + manifest."""
    p = _checked_params(ctx, params, dataset, what="dataset")
    typer.echo(f"{dataset}: segments in {stages.segment(dataset, p, _project(ctx).layout)}")


@app.command(rich_help_panel="Pipeline stages")
def features(ctx: typer.Context, dataset: str, params: ParamsOpt = None) -> None:
    """Cache log-mel (and other fixed front-end) features as float16 shards."""
    p = _checked_params(ctx, params, dataset, what="dataset")
    typer.echo(f"{dataset}: features in {stages.features(dataset, p, _project(ctx).layout)}")


SeedOpt = Annotated[int | None, typer.Option("--seed", help="training seed of the cell (default: first of grid.seeds)")]
ResumeOpt = Annotated[bool, typer.Option("--resume/--no-resume", help="continue a matching checkpoint")]


@app.command(rich_help_panel="Pipeline stages")
def train(
    ctx: typer.Context,
    task: str,
    model: str,
    resume: ResumeOpt = True,
    seed: SeedOpt = None,
    params: ParamsOpt = None,
) -> None:
    """Train MODEL on TASK (a segmented dataset)."""
    p = _checked_params(ctx, params, task, model)
    log.info("train %s/%s: loading", task, model)
    typer.echo(f"{task}/{model}: model in {stages.train(task, model, p, _project(ctx).layout, resume=resume, seed=seed)}")


LabelMapOpt = Annotated[
    Path | None, typer.Option("--label-map", help='JSON {"their label": "model label"} for a model with other labels')
]


def _read_label_map(path: Path | None) -> dict[str, str] | None:
    """The ``--label-map`` file's JSON object, or ``None`` without one."""
    if path is None:
        return None
    try:
        mapping = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        mapping = exc
    if isinstance(mapping, dict):
        return mapping
    why = f" ({mapping})" if isinstance(mapping, Exception) else ""
    raise UserError(f'--label-map {path} is not a readable JSON object{why}; write {{"their label": "model label"}}.')


@app.command(rich_help_panel="Pipeline stages")
def evaluate(
    ctx: typer.Context,
    task: str,
    model: str,
    seed: SeedOpt = None,
    on: Annotated[str | None, typer.Option("--on", help="evaluate on the test split of this other dataset")] = None,
    label_map: LabelMapOpt = None,
    params: ParamsOpt = None,
) -> None:
    """Test-split metrics of a trained model (on its own dataset, or cross-dataset with --on).

    MODEL may be a published model (sota:mtat/fcn): it is scored on the test split of --on
    (default TASK) through --label-map.
    """
    p = _checked_params(ctx, params, task, model, published=True)
    on = on or (task if pretrained_models.is_pretrained_name(model) else None)
    if on:
        data_registry.check_dataset(on, p, "--on dataset")
        mapping = _read_label_map(label_map)
        result = cross_dataset.evaluate_cross(task, model, on, p, _project(ctx).layout, seed=seed, label_map=mapping)
        typer.echo(json.dumps({k: round(v, 4) for k, v in result.items()}))
        return
    result = stages.evaluate(task, model, p, _project(ctx).layout, seed=seed)
    typer.echo(json.dumps({k: round(v, 4) for k, v in result.items()}))


@app.command(rich_help_panel="Pipeline stages")
def robustness(
    ctx: typer.Context,
    task: str,
    model: str,
    seed: SeedOpt = None,
    params: ParamsOpt = None,
    out: Annotated[Path | None, typer.Option("--out", help="TASK a folder of audio: where agreement.* go")] = None,
    label_map: LabelMapOpt = None,
) -> None:
    """Evaluate a trained model under the perturbation grid.

    MODEL may be a published tagger (sota:mtat/musicnn...): on a labelled TASK it is scored through the
    labels it shares with TASK (by name, or --label-map), as evaluate does. TASK may also be a folder of
    unlabelled audio, MODEL then any --model of predict: agreement of perturbed with clean tags
    (Spearman, top-5 overlap, bootstrap intervals).
    """
    p = _params(ctx, params)
    if Path(task).is_dir():
        where = out or Path("metrics") / "agreement" / Path(task).resolve().name / model.replace(":", "-")
        table = agreement.run_agreement([task], model, p, where, _project(ctx).layout)
        typer.echo(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        typer.echo(f"agreement tables in {where}")
        return
    data_registry.check_dataset(task, p, "task")
    params_check.check_model(model, p, published=True)
    table = stages.robustness(task, model, p, _project(ctx).layout, seed=seed, label_map=_read_label_map(label_map))
    where = _project(ctx).layout.metrics(task, str(table["model"].iloc[0]), p.grid.seeds[0] if seed is None else seed)
    typer.echo(f"{task}/{model}: robustness table in {where}/")


@app.command(rich_help_panel="Pipeline stages")
def cell(
    ctx: typer.Context,
    task: str,
    model: str,
    seed: SeedOpt = None,
    resume: ResumeOpt = True,
    params: ParamsOpt = None,
) -> None:
    """One grid cell in one process: train, evaluate and robustness of MODEL on TASK."""
    log.info("cell %s/%s: loading", task, model)
    p = _checked_params(ctx, params, task, model)
    runners.pin_cell_gpu(p)  # make repro's parallel cells: one GPU each, before torch looks at CUDA
    result = cell_stage.cell(task, model, p, _project(ctx).layout, seed=seed, resume=resume)
    typer.echo(json.dumps({k: round(v, 4) for k, v in result.items()}))


@app.command(rich_help_panel="Running the pipeline")
def dag(
    ctx: typer.Context,
    write: Annotated[bool, typer.Option("--write", help="write dvc.yaml")] = False,
    check: Annotated[bool, typer.Option("--check", help="fail if dvc.yaml is out of date")] = False,
    targets: Annotated[bool, typer.Option("--targets", help="list the DVC cell stages, one per line")] = False,
    data_targets: Annotated[
        bool,
        typer.Option(
            "--data-targets", help="list each dataset's data stages in order (download@T segment@T features@T), a line each"
        ),
    ] = False,
    jobs: Annotated[
        bool,
        typer.Option(
            "--jobs", help="print how many cells to run at once here (runtime.gpu_cells per GPU on CUDA, else the CPUs)"
        ),
    ] = False,
    params: ParamsOpt = None,
) -> None:
    """Generate dvc.yaml from the pipeline description (pipeline/orchestration/dag.py) and the grid."""
    project = _project(ctx)
    if project.overrides and (write or check):
        raise UserError(
            "--set does not reach dvc.yaml (DVC reads params.yaml, so an override written there would be lost "
            "on the next `dag --write`); put the change in params.yaml, then run `musicrep dag --write`."
        )
    p = _params(ctx, params)
    if targets:
        typer.echo("\n".join(dvc_dag.dvc_cell_targets(p)))
        return
    if jobs:
        typer.echo(str(runners.cell_slots(p)))
        return
    if data_targets:
        typer.echo("\n".join(" ".join(f"{stage}@{task}" for stage in dvc_dag.DATA_STAGES) for task in p.grid.tasks))
        return
    source = project.params_file(params)
    raw = params_schema.load_yaml(source.read_text()) or {}
    text = dvc_dag.render_dvc_yaml(p, dvc_dag.live_grid_keys(raw if isinstance(raw, dict) else {}, project.overrides))
    out = source.resolve().parent / "dvc.yaml"
    current = out.read_text() if out.exists() else ""
    if check:
        if current != text:
            raise UserError(f"{out} is out of date with the grid of {source}; run `musicrep dag --write`.")
        typer.echo(f"{out}: up to date")
        return
    if write:
        if io_utils.write_text_if_changed(out, text):
            typer.echo(f"wrote {out}")
        return
    typer.echo(text, nl=False)


@app.command(rich_help_panel="Running the pipeline")
def rehearse(
    out: Annotated[Path, typer.Option(help="a new folder for the mirrors and the scratch project")] = Path("rehearsal"),
    tasks: Annotated[str, typer.Option(help="comma-separated paper datasets")] = "mtat,speech_commands,dcase2017_task4",
    models: Annotated[str, typer.Option(help="comma-separated grid models (all = the 11 variants)")] = "all",
) -> None:
    """Run the paper profile end to end through DVC on miniature mirrors served over 127.0.0.1, on the CPU."""
    project = rehearsal.rehearse(out, tasks.split(","), models.split(","))
    typer.echo(f"rehearsal done: {project} (report: {project / 'reports' / 'index.html'})")


@app.command(rich_help_panel="Pipeline stages")
def summary(ctx: typer.Context, task: str, params: ParamsOpt = None) -> None:
    """Write metrics/TASK.json: the task's primary metric per model, mean over seeds (what `dvc metrics show` lists)."""
    typer.echo(f"summary: {stages.summary(task, _params(ctx, params), _project(ctx).layout)}")


@app.command(rich_help_panel="Pipeline stages")
def report(ctx: typer.Context, params: ParamsOpt = None) -> None:
    """Build reports/index.md and reports/index.html from the runs."""
    typer.echo(f"report: {stages.report(_params(ctx, params), _project(ctx).layout)}")


@app.command(rich_help_panel="Models and results")
def models(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
    n_classes: Annotated[int, typer.Option(help="outputs for the parameter count")] = 50,
    frontends: Annotated[bool, typer.Option("--frontends", help="only the front-end table (with --json: its rows)")] = False,
) -> None:
    """List the model registry with parameter counts (paper widths), then the front-ends (any FRONT+BACK swap)."""
    rows = [] if frontends else zoo.registry_table(n_classes)
    if as_json:
        typer.echo(json.dumps(zoo.frontend_table() if frontends else rows, indent=2))
        return
    cols = ("name", "frontend", "backend", "input_length", "params", "reference_params")
    if rows:
        cells = [[f"{r[c]:,}" if isinstance(r.get(c), int) else str(r.get(c, "")) for c in cols] for r in rows]
        show_table(f"musicrep models (width 1.0, {n_classes} outputs)", cols, cells, right=cols[3:])
    _print_frontend_table(zoo.frontend_table())


def _print_frontend_table(rows: list[dict]) -> None:
    cols = ("name", "output", "channels", "bins", "hop", "cacheable", "params")
    cells = [[f"{r[c]:,}" if isinstance(r[c], int) and not isinstance(r[c], bool) else str(r[c]) for c in cols] for r in rows]
    title = "front-ends (defaults; swap in with FRONT+BACK, e.g. leaf+short_cnn)"
    show_table(title, cols, cells, right=("channels", "bins", "hop", "params"))


def _paired_table(ctx: typer.Context, pair: tuple[str, str], tasks: list[str] | None, perturbation, level, params):
    """``compare --paired A B``: one row per task where both models have predictions
    (:func:`pipeline.evaluation.paired.paired_row`); a user error when there is none."""
    p = _params(ctx, params)
    rows, errors = [], []
    for t in tasks or p.grid.tasks:
        try:
            rows.append(paired_comparison.paired_row(p, _project(ctx).layout, t, *pair, perturbation=perturbation, level=level))
        except UserError as exc:
            errors.append(str(exc))
    if not rows:
        raise UserError(errors[0] if errors else "no task to compare; pass --task.")
    return pd.DataFrame(rows, columns=paired_comparison.COLUMNS)


@app.command(rich_help_panel="Models and results")
def compare(
    ctx: typer.Context,
    csv: Annotated[Path | None, typer.Option("--csv", help="write the table as CSV")] = None,
    robust: Annotated[bool, typer.Option("--robustness", help="show robustness metrics too")] = False,
    task: Annotated[list[str] | None, typer.Option("--task", help="only these tasks")] = None,
    fmt: Annotated[
        Literal[TABLE_FORMATS] | None,
        typer.Option("--format", "-f", help="default: a table; plain text when stdout is not a terminal"),
    ] = None,
    long: Annotated[
        bool, typer.Option("--long", help="one row per (task, model, metric) instead of one column per metric")
    ] = False,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="write to this file instead of stdout")] = None,
    digits: Annotated[int, typer.Option(help="decimals of table/markdown values (csv/json keep full precision)")] = 4,
    per_seed: Annotated[bool, typer.Option("--per-seed", help="one row per seed instead of mean/std over seeds")] = False,
    transfer: Annotated[
        bool, typer.Option("--transfer", help="the transfer table of `musicrep probe` instead (representation x dataset)")
    ] = False,
    paired: Annotated[
        tuple[str, str] | None,
        typer.Option("--paired", help="A B: model A minus model B per task, with 95 % intervals over test clips and over seeds"),
    ] = None,
    perturbation: Annotated[
        str | None,
        typer.Option("--perturbation", help="with --paired: compare the drop at this noise (white_noise, or a prefix: white)"),
    ] = None,
    level: Annotated[float, typer.Option("--level", help="with --paired --perturbation: the level (SNR dB)")] = 0.0,
    params: ParamsOpt = None,
) -> None:
    """Table of MLflow runs: task x model x metrics, mean and std over seeds, 95 % CI over test clips; never truncated."""
    if paired:
        df = _paired_table(ctx, paired, task, perturbation, level, params)
        if out or csv:
            (out or csv).write_text(comparison.format_table(df, "csv" if csv else fmt or "table", long, digits))
            typer.echo(f"wrote {out or csv} ({len(df)} rows)")
        else:
            comparison.render(df, fmt, long, digits)
        return
    if transfer:
        table = probe.transfer_table(_project(ctx).layout)
        df = table if fmt in ("csv", "json") or long else probe.transfer_matrix(table, digits=min(digits, 3))
        if out or csv:
            (out or csv).write_text(comparison.format_table(df, "csv" if csv else fmt or "table"))
            typer.echo(f"wrote {out or csv} ({len(df)} rows)")
        else:
            comparison.render(df, fmt)
        return
    evidence = None
    if _project(ctx).params_file(params).exists():
        evidence = (_params(ctx, params), _project(ctx).layout)
    df = comparison.compare_table(_project(ctx).root, task, robust, per_seed=per_seed, evidence=None if per_seed else evidence)
    if csv:
        csv.write_text(comparison.format_table(df, "csv", long))
        typer.echo(f"wrote {csv} ({len(df)} rows)")
        return
    if out:
        out.write_text(comparison.format_table(df, fmt or "table", long, digits))
        typer.echo(f"wrote {out} ({len(df)} rows)")
        return
    comparison.render(df, fmt, long, digits)


@app.command(rich_help_panel="Running the pipeline")
def flow(
    ctx: typer.Context,
    params: ParamsOpt = None,
    task_runner: Annotated[Literal[TASK_RUNNERS] | None, typer.Option(help="default: flow.task_runner of params")] = None,
    address: Annotated[
        str | None,
        typer.Option(
            help="existing Dask scheduler (tcp://...) or Ray cluster (ray://..., auto); default flow.address, none = a temporary local one"
        ),
    ] = None,
    max_workers: Annotated[
        int | None, typer.Option(help="cells at once: threads, local Dask workers or local Ray CPUs (default flow.max_workers)")
    ] = None,
) -> None:
    """Run the whole pipeline as a Prefect flow (same stage functions as dvc.yaml) on threads, Dask or Ray (docs/scaling.md)."""
    _hand_logging_to_prefect()
    project = _project(ctx)
    runner = runners.task_runner(runners.flow_settings(_params(ctx, params), task_runner, address, max_workers))
    pipeline_flow.musicrep_pipeline.with_options(task_runner=runner)(
        params_path=str(project.params_file(params)), root=str(project.root), overrides=project.overrides
    )


@app.command(rich_help_panel="Running the pipeline")
def serve(
    ctx: typer.Context,
    cron: Annotated[str, typer.Option(help="cron schedule")] = "0 3 * * *",
    name: Annotated[str, typer.Option(help="deployment name")] = "nightly",
    params: ParamsOpt = None,
) -> None:
    """Register a scheduled Prefect deployment of the pipeline and serve it."""
    _hand_logging_to_prefect()
    project = _project(ctx)
    _params(ctx, params)  # a bad params file or --set fails here, before anything is registered
    deployment.serve_pipeline(cron=cron, name=name, params_path=str(project.params_file(params)), overrides=project.overrides)


predict_cli.register_commands(app)  # predict, embed, register
pretrained_cli.register_commands(app)  # pretrained list, pretrained fetch
representation_cli.register_commands(app)  # export, probe


GLOBAL_FLAGS = ("--debug", "--verbose", "-v", "--wait")
GLOBAL_VALUED = ("--set", "--project")


def hoist_global_options(args: list[str]) -> list[str]:
    """Move the global options to the front, so ``musicrep train T M --set train.epochs=1`` works.

    ``--debug``, ``--verbose``/``-v``, ``--set KEY=VALUE`` and ``--project DIR`` (also in the
    ``--opt=value`` form) may stand anywhere on the line; everything else keeps its order.
    """
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            rest.extend(args[i:])
            break
        if a in GLOBAL_FLAGS:
            front.append(a)
        elif a in GLOBAL_VALUED and i + 1 < len(args):
            front.extend(args[i : i + 2])
            i += 1
        elif any(a.startswith(f"{opt}=") for opt in GLOBAL_VALUED):
            front.append(a)
        else:
            rest.append(a)
        i += 1
    return front + rest


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM handler: raise KeyboardInterrupt, so that a terminated run cleans up as an interrupted one."""
    raise KeyboardInterrupt


def main() -> None:
    """Entry point of the ``musicrep`` console script.

    Exit codes: 0 done; 2 a problem the user can fix (one line naming it and the fix);
    1 an unexpected error (one line; ``--debug`` anywhere on the command line shows the
    traceback); 130 interrupted (re-running the command resumes).
    """
    sys.argv = [sys.argv[0], *hoist_global_options(sys.argv[1:])]
    debug = "--debug" in sys.argv[1:]
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _interrupt) if main_thread else None  # `kill PID` unwinds like Ctrl-C
    try:
        app()
    except UserError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        typer.secho("interrupted; finished outputs are kept, and re-running the same command resumes.", fg="red", err=True)
        raise SystemExit(130) from None
    except Exception as exc:  # noqa: BLE001 - the last resort: one line, traceback on request
        mapped = environment_error(exc)  # disk full, permissions, read-only, a locked MLflow store
        if mapped is not None and not debug:
            typer.secho(f"error: {mapped}", fg="red", err=True)
            raise SystemExit(2) from None
        if debug:
            raise
        typer.secho(
            f"error: unexpected {type(exc).__name__}: {exc}. Re-run with --debug to see the traceback, and please report it.",
            fg="red",
            err=True,
        )
        raise SystemExit(1) from None
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    main()
