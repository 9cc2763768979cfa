"""The ``musicrep`` command: one subcommand per stage, plus models/compare/predict/embed/serve.

User errors (bad params, missing data, unreadable audio, bad checkpoints) print one line
and exit with status 2; no traceback.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from pipeline.errors import UserError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="musicrep: front-end/back-end audio representation learning pipeline.",
)
ParamsOpt = Annotated[Path, typer.Option("--params", "-p", help="params file")]
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
    from rich.logging import RichHandler

    tty = sys.stderr.isatty()
    handler = RichHandler(show_path=False, rich_tracebacks=False) if tty else _CurrentStderr()
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


@app.callback()
def _main(
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
) -> None:
    _configure_logging(verbose)
    import os

    from pipeline.project import Invocation, begin, find_root, parse_overrides

    root = find_root(project)
    begin(Invocation(root, parse_overrides(set_ or [])))
    if root != Path.cwd().resolve() and not os.environ.get("MLFLOW_TRACKING_URI"):
        # the project's own MLflow store, wherever the command is started (the library default is the cwd)
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{root / 'mlflow.db'}"
        os.environ.setdefault("MUSICREP_ARTIFACT_ROOT", (root / "mlartifacts").as_uri())


def _root() -> Path:
    """The project root found by the callback (``--project`` or the nearest params.yaml)."""
    from pipeline.project import current_root

    return current_root()


def _params_file(path: Path) -> Path:
    from pipeline.project import params_path

    return params_path(_root(), path)


def _layout():
    from pipeline.paths import Layout

    return Layout(_root())


def _params(path: Path):
    from pipeline.config import load_params
    from pipeline.project import current_overrides, params_path

    return load_params(params_path(_root(), path), current_overrides() or None)


@app.command("params")
def params_cmd(
    file: Annotated[Path | None, typer.Argument(help="params file (default params.yaml)")] = None,
    check: Annotated[bool, typer.Option("--check", help="validate only")] = False,
    init: Annotated[str | None, typer.Option("--init", help="print a full params file for a profile (smoke|paper)")] = None,
    diff: Annotated[bool, typer.Option("--diff", help="only the values that differ from the profile's defaults")] = False,
    resolve: Annotated[
        bool, typer.Option("--resolve", help="write params.resolved.yaml (every value, as DVC tracks it) beside the file")
    ] = False,
) -> None:
    """Validate a params file, show the resolved values (or their difference to the profile), or print a preset."""
    import yaml

    from pipeline.config import Params, load_params
    from pipeline.profiles import profile_defaults

    if init:
        from pipeline.profiles import PROFILES

        if init not in PROFILES:
            raise UserError(f"unknown profile {init!r}; allowed: {', '.join(PROFILES)}.")
        resolved = Params.model_validate(profile_defaults(init)).model_dump(mode="json")
        typer.echo(yaml.safe_dump(resolved, sort_keys=False))
        return
    from pipeline.project import current_overrides, params_path

    path = params_path(_root(), file)
    p = load_params(path, current_overrides() or None)
    if resolve:
        from pipeline import stages
        from pipeline.paths import Layout

        out = stages.resolve_params(p, Layout(path.resolve().parent))
        typer.echo(f"{out}: resolved (profile {p.profile})")
        return
    if check:
        from pipeline.params_check import check_names

        problems = check_names(p, path.parent)
        if problems:
            more = f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''})" if len(problems) > 1 else ""
            raise UserError(f"{path}: {problems[0]}{more}; fix it in {path}.")
        typer.echo(
            f"{path}: OK (profile {p.profile}, {len(p.grid.tasks)} tasks x {len(p.grid.models)} models, hash {p.section_hash('train', 'features', 'evaluate')})"
        )
        return
    if diff:
        from pipeline.config import flatten

        mine = flatten(p.model_dump(mode="json"))
        base = flatten(Params.model_validate(profile_defaults(p.profile)).model_dump(mode="json"))
        changed = {k: (base.get(k, "(absent)"), v) for k, v in mine.items() if base.get(k, "(absent)") != v}
        changed |= {k: (v, "(absent)") for k, v in base.items() if k not in mine}
        if not changed:
            typer.echo(f"{path}: same as the {p.profile} profile")
        for key in sorted(changed):
            old, new = changed[key]
            typer.echo(f"{key}: {json.dumps(old)} -> {json.dumps(new)}")
        return
    typer.echo(yaml.safe_dump(p.model_dump(mode="json"), sort_keys=False))


@app.command()
def download(
    dataset: str,
    mirror: Annotated[str | None, typer.Option(help="directory or base URL replacing the publisher's")] = None,
    audio_dir: Annotated[Path | None, typer.Option(help="DCASE: folder of audio you obtained")] = None,
    path: Annotated[Path | None, typer.Option(help="folder / own dataset: your audio folder")] = None,
    labels_csv: Annotated[Path | None, typer.Option(help="folder / own dataset: CSV of path,labels")] = None,
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Fetch a dataset into data/raw/DATASET (synthetic ones are generated)."""
    from pipeline import stages
    from pipeline.config import load_params
    from pipeline.project import params_path

    overrides: dict = {}
    if mirror or audio_dir:
        overrides.setdefault("datasets", {})[dataset] = {
            k: str(v) for k, v in {"mirror": mirror, "audio_dir": audio_dir}.items() if v
        }
    if path or labels_csv:
        from pipeline.data.registry import available

        if dataset in available() and dataset != "folder":
            raise UserError(
                f"--path/--labels-csv are for your own audio (folder or a datasets.NAME with kind: folder), not {dataset}; drop them."
            )
        overrides.setdefault("datasets", {})[dataset] = {
            k: str(v.resolve()) for k, v in {"path": path, "labels_csv": labels_csv}.items() if v
        }
    from pipeline.io_utils import deep_merge
    from pipeline.project import current_overrides

    merged = deep_merge(current_overrides(), overrides)
    out = stages.download(dataset, load_params(params_path(_root(), params), merged or None), _layout())
    typer.echo(f"{dataset}: raw files in {out}")


@app.command()
def segment(dataset: str, params: ParamsOpt = Path("params.yaml")) -> None:
    """Decode, mix to mono, resample to 16 kHz, write waveform shards + manifest."""
    from pipeline import stages

    typer.echo(f"{dataset}: segments in {stages.segment(dataset, _params(params), _layout())}")


@app.command()
def features(dataset: str, params: ParamsOpt = Path("params.yaml")) -> None:
    """Cache log-mel (and other fixed front-end) features as float16 shards."""
    from pipeline import stages

    typer.echo(f"{dataset}: features in {stages.features(dataset, _params(params), _layout())}")


SeedOpt = Annotated[int | None, typer.Option("--seed", help="training seed of the cell (default: first of grid.seeds)")]


@app.command()
def train(
    task: str,
    model: str,
    resume: Annotated[bool, typer.Option("--resume/--no-resume", help="continue a matching checkpoint")] = True,
    seed: SeedOpt = None,
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Train MODEL on TASK (a segmented dataset)."""
    log.info("train %s/%s: loading", task, model)
    from pipeline import stages

    typer.echo(f"{task}/{model}: model in {stages.train(task, model, _params(params), _layout(), resume=resume, seed=seed)}")


@app.command()
def evaluate(
    task: str,
    model: str,
    seed: SeedOpt = None,
    on: Annotated[str | None, typer.Option("--on", help="evaluate on the test split of this other dataset")] = None,
    label_map: Annotated[Path | None, typer.Option("--label-map", help="with --on: JSON {their label: model label}")] = None,
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Test-split metrics of a trained model (on its own dataset, or cross-dataset with --on)."""
    from pipeline import stages

    if on:
        from pipeline.evaluate import evaluate_cross

        mapping = None
        if label_map is not None:
            try:
                mapping = json.loads(label_map.read_text())
            except (OSError, ValueError) as exc:
                raise UserError(
                    f'--label-map {label_map} is not a readable JSON object ({exc}); write {{"their label": "model label"}}.'
                ) from None
            if not isinstance(mapping, dict):
                raise UserError(f'--label-map {label_map} must hold a JSON object {{"their label": "model label"}}.')
        result = evaluate_cross(task, model, on, _params(params), _layout(), seed=seed, label_map=mapping)
        typer.echo(json.dumps({k: round(v, 4) for k, v in result.items()}))
        return
    result = stages.evaluate(task, model, _params(params), _layout(), seed=seed)
    typer.echo(json.dumps({k: round(v, 4) for k, v in result.items()}))


@app.command()
def robustness(task: str, model: str, seed: SeedOpt = None, params: ParamsOpt = Path("params.yaml")) -> None:
    """Evaluate a trained model under the perturbation grid."""
    from pipeline import stages

    p = _params(params)
    stages.robustness(task, model, p, _layout(), seed=seed)
    typer.echo(f"{task}/{model}: robustness table in metrics/{task}/{model}/seed{p.grid.seeds[0] if seed is None else seed}/")


@app.command()
def cell(
    task: str,
    model: str,
    seed: SeedOpt = None,
    resume: Annotated[bool, typer.Option("--resume/--no-resume", help="continue a matching checkpoint")] = True,
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """One grid cell in one process: train, evaluate and robustness of MODEL on TASK."""
    log.info("cell %s/%s: loading", task, model)
    from pipeline import stages

    result = stages.cell(task, model, _params(params), _layout(), seed=seed, resume=resume)
    typer.echo(json.dumps({k: round(v, 4) for k, v in result.items()}))


@app.command()
def dag(
    write: Annotated[bool, typer.Option("--write", help="write dvc.yaml")] = False,
    check: Annotated[bool, typer.Option("--check", help="fail if dvc.yaml is out of date")] = False,
    targets: Annotated[bool, typer.Option("--targets", help="list the DVC cell stages, one per line")] = False,
    data_targets: Annotated[
        bool,
        typer.Option(
            "--data-targets", help="list each dataset's data stages in order (download@T segment@T features@T), a line each"
        ),
    ] = False,
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Generate dvc.yaml from the pipeline description (pipeline/dag.py) and the grid."""
    from pipeline.dag import DATA_STAGES, dvc_cell_targets, render_dvc_yaml

    p = _params(params)
    if targets:
        typer.echo("\n".join(dvc_cell_targets(p)))
        return
    if data_targets:
        typer.echo("\n".join(" ".join(f"{stage}@{task}" for stage in DATA_STAGES) for task in p.grid.tasks))
        return
    import yaml

    from pipeline.dag import live_grid_keys
    from pipeline.project import current_overrides, params_path

    source = params_path(_root(), params)
    raw = yaml.safe_load(source.read_text()) or {}
    text = render_dvc_yaml(p, live_grid_keys(raw if isinstance(raw, dict) else {}, current_overrides()))
    out = source.resolve().parent / "dvc.yaml"
    current = out.read_text() if out.exists() else ""
    if check:
        if current != text:
            raise UserError(f"{out} is out of date with the grid of {params}; run `musicrep dag --write`.")
        typer.echo(f"{out}: up to date")
        return
    if write:
        from pipeline.io_utils import write_text_if_changed

        if write_text_if_changed(out, text):
            typer.echo(f"wrote {out}")
        return
    typer.echo(text, nl=False)


@app.command()
def report(params: ParamsOpt = Path("params.yaml")) -> None:
    """Build reports/index.md and reports/index.html from the runs."""
    from pipeline import stages

    typer.echo(f"report: {stages.report(_params(params), _layout())}")


@app.command()
def models(
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
    n_classes: Annotated[int, typer.Option(help="outputs for the parameter count")] = 50,
) -> None:
    """List the model registry with parameter counts (paper widths)."""
    from pipeline.models.zoo import registry_table

    rows = registry_table(n_classes)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"musicrep models (width 1.0, {n_classes} outputs)")
    for col in ("name", "frontend", "backend", "input_length", "params", "reference_params"):
        table.add_column(col, justify="right" if col in ("input_length", "params", "reference_params") else "left")
    for r in rows:
        table.add_row(
            *(
                f"{r[c]:,}" if isinstance(r.get(c), int) else str(r.get(c, ""))
                for c in ("name", "frontend", "backend", "input_length", "params", "reference_params")
            )
        )
    Console().print(table)


@app.command()
def compare(
    csv: Annotated[Path | None, typer.Option("--csv", help="write the table as CSV")] = None,
    robust: Annotated[bool, typer.Option("--robustness", help="show robustness metrics too")] = False,
    task: Annotated[list[str] | None, typer.Option("--task", help="only these tasks")] = None,
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format", "-f", help="table | csv | json | markdown (default: a table; plain text when stdout is not a terminal)"
        ),
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
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Table of MLflow runs: task x model x metrics, mean and std over seeds, 95 % CI over test clips; never truncated."""
    from pipeline.compare import FORMATS, compare_table, format_table, render

    if fmt is not None and fmt not in FORMATS:
        raise UserError(f"unknown --format {fmt!r}; use one of {', '.join(FORMATS)}.")
    if transfer:
        from pipeline.probe import transfer_matrix, transfer_table

        table = transfer_table(_layout())
        df = table if fmt in ("csv", "json") or long else transfer_matrix(table, digits=min(digits, 3))
        if out or csv:
            (out or csv).write_text(format_table(df, "csv" if csv else fmt or "table"))
            typer.echo(f"wrote {out or csv} ({len(df)} rows)")
        else:
            render(df, fmt)
        return
    evidence = None
    from pipeline.project import params_path

    if params_path(_root(), params).exists():
        evidence = (_params(params), _layout())
    df = compare_table(task, robust, per_seed=per_seed, evidence=None if per_seed else evidence)
    if csv:
        csv.write_text(format_table(df, "csv", long))
        typer.echo(f"wrote {csv} ({len(df)} rows)")
        return
    if out:
        out.write_text(format_table(df, fmt or "table", long, digits))
        typer.echo(f"wrote {out} ({len(df)} rows)")
        return
    render(df, fmt, long, digits)


@app.command()
def flow(
    params: ParamsOpt = Path("params.yaml"),
    task_runner: Annotated[str | None, typer.Option(help="thread | dask | ray (default: flow.task_runner of params)")] = None,
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
    from pipeline.flows.pipeline_flow import musicrep_pipeline
    from pipeline.runners import flow_settings
    from pipeline.runners import task_runner as make_runner

    _hand_logging_to_prefect()
    runner = make_runner(flow_settings(_params(params), task_runner, address, max_workers))
    musicrep_pipeline.with_options(task_runner=runner)(params_path=str(_params_file(params)), root=str(_root()))


@app.command()
def serve(
    cron: Annotated[str, typer.Option(help="cron schedule")] = "0 3 * * *",
    name: Annotated[str, typer.Option(help="deployment name")] = "nightly",
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Register a scheduled Prefect deployment of the pipeline and serve it."""
    from pipeline.flows.serve import serve_pipeline

    _hand_logging_to_prefect()
    serve_pipeline(cron=cron, name=name, params_path=str(_params_file(params)))


def _register_predict_commands() -> None:
    """``predict``, ``embed`` and ``register`` (pipeline/predict_cli.py); an import error is a bug, not hidden."""
    from pipeline.predict_cli import register_commands

    register_commands(app)


_register_predict_commands()


def _register_representation_commands() -> None:
    """``export`` and ``probe`` (pipeline/representation_cli.py)."""
    from pipeline.representation_cli import register_commands

    register_commands(app)


_register_representation_commands()


GLOBAL_FLAGS = ("--debug", "--verbose", "-v")
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


def main() -> None:
    """Entry point of the ``musicrep`` console script.

    Exit codes: 0 done; 2 a problem the user can fix (one line naming it and the fix);
    1 an unexpected error (one line; ``--debug`` anywhere on the command line shows the
    traceback); 130 interrupted (re-running the command resumes).
    """
    sys.argv = [sys.argv[0], *hoist_global_options(sys.argv[1:])]
    debug = "--debug" in sys.argv[1:]
    try:
        app()
    except UserError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        typer.secho("interrupted; finished outputs are kept, and re-running the same command resumes.", fg="red", err=True)
        raise SystemExit(130) from None
    except Exception as exc:  # noqa: BLE001 - the last resort: one line, traceback on request
        if debug:
            raise
        typer.secho(
            f"error: unexpected {type(exc).__name__}: {exc}. Re-run with --debug to see the traceback, and please report it.",
            fg="red",
            err=True,
        )
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
