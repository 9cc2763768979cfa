"""Typed params: validation messages, profiles, stable hashes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.config.params import grid_model, load_params
from pipeline.core.errors import UserError
from pipeline.evaluation.family_summary import FAMILIES, model_family
from pipeline.models.grid import grid_models
from tests.conftest import full_repo_params

REPO = Path(__file__).resolve().parents[1]


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _default() -> dict:
    return full_repo_params()


@pytest.mark.fast
def test_default_params_load() -> None:
    p = load_params(REPO / "params.yaml")
    assert p.profile == "smoke"
    assert p.grid.tasks == ["corpus_tags", "synth_keywords", "synth_events"]
    assert p.train.epochs >= 1


@pytest.mark.fast
def test_misspelt_key_is_one_line_naming_it(tmp_path: Path) -> None:
    data = _default()
    data["train"]["epocs"] = 3
    with pytest.raises(UserError) as exc:
        load_params(_write(tmp_path, data))
    msg = str(exc.value)
    assert "train.epocs" in msg and "\n" not in msg
    assert "epochs" in msg  # the allowed keys are listed


@pytest.mark.fast
def test_misspelt_top_level_section(tmp_path: Path) -> None:
    data = _default()
    data["trian"] = {"epochs": 1}
    with pytest.raises(UserError, match="'trian'"):
        load_params(_write(tmp_path, data))


@pytest.mark.fast
@pytest.mark.parametrize(
    "key,value,needle",
    [
        (("train", "lr"), -1, "train.lr"),
        (("train", "epochs"), "many", "train.epochs"),
        (("train", "optimizer"), "adagrad", "train.optimizer"),
        (("evaluate", "n_chunks"), 0, "evaluate.n_chunks"),
    ],
)
def test_bad_values_name_key_and_value(tmp_path: Path, key, value, needle) -> None:
    data = _default()
    data[key[0]][key[1]] = value
    with pytest.raises(UserError) as exc:
        load_params(_write(tmp_path, data))
    assert needle in str(exc.value) and repr(value) in str(exc.value)


@pytest.mark.fast
def test_bad_profile(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="profile"):
        load_params(_write(tmp_path, {"profile": "huge"}))


@pytest.mark.fast
def test_profile_paper_alone_is_complete(tmp_path: Path) -> None:
    p = load_params(_write(tmp_path, {"profile": "paper"}))
    assert p.grid.tasks == ["mtat", "speech_commands", "dcase2017_task4"]
    assert p.train.width == 1.0 and p.evaluate.n_chunks == 16 and p.train.epochs == 200


def _field(path: tuple[str, ...]):
    """The pydantic field of a dotted params path (``None`` below a free-form mapping)."""
    from pydantic import BaseModel

    from pipeline.config.params import Params

    model, field = Params, None
    for part in path:
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
        field = model.model_fields.get(part)
        if field is None:
            return None
        model = field.annotation
    return field


def _leaves(d: dict, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for key, value in d.items():
        if isinstance(value, dict) and value:
            out.append(prefix + (key,))
            out += _leaves(value, prefix + (key,))
        else:
            out.append(prefix + (key,))
    return out


@pytest.mark.fast
@pytest.mark.parametrize("profile", ["smoke", "paper"])
def test_profile_files_are_the_only_source_of_their_defaults(profile: str) -> None:
    """Every key a profile YAML sets has no default of its own in the pydantic models."""
    from pydantic_core import PydanticUndefined

    from pipeline.config.params import Params
    from pipeline.config.profiles import profile_defaults

    defaults = profile_defaults(profile)
    Params.model_validate(defaults)  # the profile alone is complete and valid
    with_default = [
        ".".join(path)
        for path in _leaves(defaults)
        if (f := _field(path)) is not None and (f.default is not PydanticUndefined or f.default_factory is not None)
    ]
    assert not with_default, f"these keys have a default both in the profile and in pipeline/config/params.py: {with_default}"


def test_profile_files_ship_with_the_package() -> None:
    from importlib import resources

    names = {p.name for p in resources.files("pipeline.config.profiles").iterdir()}
    assert {"common.yaml", "smoke.yaml", "paper.yaml"} <= names
    text = (REPO / "pyproject.toml").read_text()
    assert '"pipeline.config.profiles" = ["*.yaml"]' in text


@pytest.mark.fast
def test_params_yaml_holds_only_what_the_project_changes() -> None:
    """The shipped params.yaml spells out no key at its profile's default, except the grid
    (dvc.yaml's matrices read ``grid.tasks`` and ``grid.seeds`` from it) and the profile."""
    from pipeline.config.profiles import profile_defaults

    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    defaults = profile_defaults(raw["profile"])
    same = [
        ".".join(path)
        for path in _leaves(raw)
        if path[0] not in ("profile", "grid")
        and not isinstance(_get(raw, path), dict)
        and _get(defaults, path) == _get(raw, path)
    ]
    assert not same, f"params.yaml repeats profile defaults: {same}"


def _get(d: dict, path: tuple[str, ...]):
    for part in path:
        if not isinstance(d, dict) or part not in d:
            return object()
        d = d[part]
    return d


@pytest.mark.fast
def test_the_shipped_grid_has_every_front_end_family() -> None:
    """A fresh clone's `compare` and report summary show mel, waveform, harmonic and learnable (issue 31)."""
    params = load_params(REPO / "params.yaml")
    assert {model_family(model, params) for model in grid_models(params)} == set(FAMILIES)


@pytest.mark.fast
def test_committed_resolved_params_are_current() -> None:
    """params.resolved.yaml (what dvc.yaml's stages track) matches params.yaml over its profile."""
    from pipeline.config.params import RESOLVED_PARAMS, render_resolved

    assert (REPO / RESOLVED_PARAMS).read_text() == render_resolved(load_params(REPO / "params.yaml")), (
        "params.resolved.yaml is stale: run `musicrep params --resolve` (or `dvc repro params`)"
    )


def test_a_changed_profile_default_reaches_the_resolved_params(tmp_path: Path) -> None:
    """A value left to the profile is still part of the resolved params, so DVC sees it change."""
    from pipeline.config.params import render_resolved

    path = _write(tmp_path, {"profile": "smoke", "grid": {"tasks": ["synth_tags"], "models": ["fcn"], "seeds": [0]}})
    text = render_resolved(load_params(path))
    assert "epochs: 8" in text and "n_chunks: 3" in text
    assert "epochs: 3" in render_resolved(load_params(path, overrides={"train": {"epochs": 3}}))


def test_hash_is_stable_across_processes() -> None:
    code = "from pipeline.config.params import load_params; print(load_params('params.yaml').section_hash('train','features'))"
    outs = {
        subprocess.run(
            [sys.executable, "-c", code],
            cwd=REPO,
            capture_output=True,
            text=True,
            env={"PYTHONHASHSEED": str(s), "PATH": ""},
            check=True,
        ).stdout.strip()
        for s in (1, 2)
    }
    assert len(outs) == 1
    assert load_params(REPO / "params.yaml").section_hash("train", "features") in outs


@pytest.mark.fast
def test_hash_changes_with_values(tmp_path: Path) -> None:
    data = _default()
    a = load_params(_write(tmp_path, data)).section_hash("train")
    data["train"]["lr"] = 0.5
    assert load_params(_write(tmp_path, data)).section_hash("train") != a


@pytest.mark.fast
def test_variant_alias(tmp_path: Path) -> None:
    data = _default()
    data["variants"] = {
        "hcnn_h3": {"model": "hcnn", "options": {"n_harmonics": 3}},
        "mus_mtat": {"model": "musicnn", "init": "sota:mtat/musicnn", "freeze": "backbone"},
    }
    data["train"]["input_seconds"] = 1.5
    p = load_params(_write(tmp_path, data))
    h3, fcn, mus = (grid_model(p, name) for name in ("hcnn_h3", "fcn", "mus_mtat"))
    assert (h3.variant, h3.options, h3.width, h3.init, h3.freeze) == ("hcnn", {"n_harmonics": 3}, p.train.width, None, "none")
    assert (fcn.variant, fcn.options, fcn.width) == ("fcn", {}, p.train.width)
    assert (mus.variant, mus.init, mus.freeze) == ("musicnn", "sota:mtat/musicnn", "backbone")
    assert mus.width == 1.0  # an init without a width: the published models' width
    assert {m.max_samples for m in (h3, fcn, mus)} == {round(1.5 * p.segment.sample_rate)}  # the smoke crop, in samples
    assert {m.profile for m in (h3, fcn, mus)} == {p.profile}


def test_cli_check_reports_misspelt_key(tmp_path: Path) -> None:
    data = _default()
    data["segment"]["shard_mbb"] = 1
    path = _write(tmp_path, data)
    res = subprocess.run(
        [sys.executable, "-m", "pipeline", "params", "--check", str(path)], cwd=REPO, capture_output=True, text=True
    )
    assert res.returncode == 2
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "segment.shard_mbb" in lines[0]
    ok = subprocess.run([sys.executable, "-m", "pipeline", "params", "--check"], cwd=REPO, capture_output=True, text=True)
    assert ok.returncode == 0 and "OK" in ok.stdout


@pytest.mark.fast
@pytest.mark.parametrize("profile", ["smoke", "paper"])
def test_profile_grids_run_every_registry_model(profile: str) -> None:
    """The profiles' grids are the registry's models, in its order: ``all`` (the registry is the one list)."""
    from pipeline.config.params import Params
    from pipeline.config.profiles import profile_defaults
    from pipeline.models.grid import grid_models
    from pipeline.models.zoo import VARIANTS

    assert profile_defaults(profile)["grid"]["models"] == "all"
    assert grid_models(Params.model_validate(profile_defaults(profile))) == list(VARIANTS)


@pytest.mark.fast
def test_all_expands_to_the_registry_and_keeps_the_other_entries() -> None:
    from pipeline.models.grid import expand_models
    from pipeline.models.zoo import VARIANTS

    assert expand_models(["all"]) == list(VARIANTS)
    assert expand_models(["hcnn", "all", "mfcc+short_cnn"]) == ["hcnn", *[v for v in VARIANTS if v != "hcnn"], "mfcc+short_cnn"]
    assert expand_models(["fcn", "fcn"]) == ["fcn"]


@pytest.mark.fast
def test_only_the_grid_module_reads_grid_models() -> None:
    """Everything walks the grid through pipeline.models.grid, so ``all`` is expanded everywhere."""
    readers = [
        str(p.relative_to(REPO))
        for p in sorted((REPO / "pipeline").rglob("*.py")) + sorted((REPO / "flows").rglob("*.py"))
        if ".grid.models" in p.read_text() and p.name != "grid.py"
    ]
    assert not readers, f"read params.grid.models through pipeline.models.grid.grid_models: {readers}"


@pytest.mark.fast
def test_runtime_section_is_not_tracked_by_the_cells() -> None:
    """Run-time keys (device, threads, kernels, workers, inference batch) re-run nothing; every result key is tracked."""
    from pipeline.config.params import TrainParams
    from pipeline.orchestration.dag import CELL_PARAMS

    assert not [k for k in CELL_PARAMS if k.startswith("runtime")]
    assert {f"train.{k}" for k in TrainParams.model_fields} <= set(CELL_PARAMS)
    assert {"evaluate.n_chunks", "robustness.grid"} <= set(CELL_PARAMS)


@pytest.mark.fast
@pytest.mark.parametrize(
    ("section", "key", "new"), [("train", "device", "device"), ("evaluate", "batch_size", "eval_batch_size")]
)
def test_keys_moved_to_runtime_name_their_new_place(tmp_path: Path, section: str, key: str, new: str) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"profile": "smoke", section: {key: 16 if key == "batch_size" else "cpu"}}))
    with pytest.raises(UserError, match=rf"'{section}\.{key}' moved to 'runtime\.{new}'"):
        load_params(path)
