"""The robustness stage end to end on a tiny trained model and a hand-made segments directory."""

from __future__ import annotations

import json
import math
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from pipeline.config.params import REFERENCE_ROBUSTNESS_GRID, Params, load_params, render_resolved
from pipeline.config.profiles import profile_defaults
from pipeline.core.io_utils import write_json
from pipeline.core.paths import Layout
from pipeline.models import checkpoint
from pipeline.models import inference as model_inference
from pipeline.models.base import AudioModel, ModelConfig
from pipeline.models.checkpoint import save_model
from pipeline.robustness.noises import noise_dependencies
from pipeline.robustness.plots import plot_robustness, plot_task_curves
from pipeline.robustness.stage import (
    COLUMNS,
    format_level,
    level_key,
    robustness_summary,
    run_robustness,
    validate_grid,
)

SR = 16_000
N = 8_000  # 0.5-s clips
LABELS = ["low", "high", "click"]
TASK = "tiny_tags"


def _clip(rng: np.random.Generator, labels: list[str]) -> np.ndarray:
    t = np.arange(N) / SR
    x = 0.003 * rng.standard_normal(N)
    if "low" in labels:
        x += 0.3 * np.sin(2 * np.pi * rng.uniform(250, 350) * t)
    if "high" in labels:
        x += 0.3 * np.sin(2 * np.pi * rng.uniform(2500, 3500) * t)
    if "click" in labels:
        x[:: int(rng.integers(600, 1000))] += 0.8
    return x.astype(np.float32)


def _write_segments(root: Path, n_train: int = 48, n_test: int = 16) -> list[tuple[np.ndarray, list[str], str]]:
    """``data/segments/tiny_tags/``: one shard, manifest and meta.json as the segment stage writes them."""
    rng = np.random.default_rng(0)
    seg_dir = Layout(root).segments(TASK)
    seg_dir.mkdir(parents=True)
    clips, rows, offset = [], [], 0
    for i in range(n_train + n_test):
        split = "train" if i < n_train else "test"
        labels = [lab for lab in LABELS if rng.random() < 0.5] or [LABELS[i % 3]]
        if split == "test" and i - n_train < 3:  # every class has positives and negatives in test
            labels = [LABELS[i - n_train]]
        wave = _clip(rng, labels)
        clips.append((wave, labels, split))
        rows.append(
            {
                "clip_id": f"c{i:03d}",
                "split": split,
                "labels": labels,
                "shard": "shard-00000.npy",
                "offset": offset,
                "n_samples": N,
                "source_sha256": "0" * 64,
                "source_path": f"c{i:03d}.wav",
            }
        )
        offset += N
    np.save(seg_dir / "shard-00000.npy", np.concatenate([c[0] for c in clips]))
    pd.DataFrame(rows).to_parquet(seg_dir / "manifest.parquet", index=False)
    write_json(
        seg_dir / "meta.json", {"dataset": TASK, "task": "tagging", "kind": "multilabel", "labels": LABELS, "sample_rate": SR}
    )
    return clips


def _train(model: AudioModel, clips, steps: int = 40) -> AudioModel:
    torch.manual_seed(0)
    train = [(w, lab) for w, lab, split in clips if split == "train"]
    x = torch.from_numpy(np.stack([w for w, _ in train]))
    y = torch.tensor([[float(lab in labs) for lab in LABELS] for _, labs in train])
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    model.train()
    for _step in range(steps):
        idx = torch.randperm(len(x))[:16]
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def _params(grid: dict[str, list[float]], noise_source: str = "synthetic") -> Params:
    d = profile_defaults("smoke")
    d["evaluate"] = {**d["evaluate"], "n_chunks": 2, "threshold": 0.1}
    d["runtime"] = {**d["runtime"], "device": "cpu", "eval_batch_size": 16}
    d["robustness"] = {"enabled": True, "protocol": "grid", "grid": grid, "noise_source": noise_source, "max_clips": 12}
    return Params.model_validate(d)


class _TinyFrontend(torch.nn.Module):
    hop_length = 256

    def __init__(self) -> None:
        super().__init__()
        import torchaudio

        self.mel = torchaudio.transforms.MelSpectrogram(SR, n_fft=512, hop_length=256, n_mels=32)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return torch.log(self.mel(wave) + 1e-6)  # (batch, mels, frames)

    def cache_spec(self):
        return None


class _TinyBackend(torch.nn.Module):
    def __init__(self, n_classes: int) -> None:
        super().__init__()
        self.conv = torch.nn.Conv1d(32, 16, 3, padding=1)
        self.norm = torch.nn.BatchNorm1d(32)
        self.head = torch.nn.Linear(16, n_classes)

    def embed(self, feats: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(self.norm(feats))).amax(dim=-1)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(feats))


def _stub_build_model(config: ModelConfig) -> AudioModel:
    return AudioModel(_TinyFrontend(), _TinyBackend(config.n_classes), config)


def _unknown_variant(variant: str):
    raise ValueError(f"unknown model variant {variant!r}")  # as the registry: so train.bf16: auto keeps fp32


@pytest.fixture()
def stub_zoo(monkeypatch):
    """A stand-in ``pipeline.models.zoo`` with a tiny mel-CNN, patched where it is looked up: ``load_model``
    builds through ``checkpoint.build_model``, ``train.bf16: auto`` asks ``inference.resolve_variant``."""
    module = types.SimpleNamespace(build_model=_stub_build_model, resolve_variant=_unknown_variant)
    monkeypatch.setattr(checkpoint, "build_model", module.build_model)
    monkeypatch.setattr(model_inference, "resolve_variant", module.resolve_variant)
    return module


def _check_outputs(root: Path, model_name: str, table: pd.DataFrame, grid: dict[str, list[float]]) -> dict:
    out = Layout(root).metrics(TASK, model_name)
    for name in ("robustness.parquet", "robustness.csv", "robustness.json", "robustness_scores.parquet"):
        assert (out / name).stat().st_size > 0, name
    scores = pd.read_parquet(out / "robustness_scores.parquet")
    assert len(scores) == 12 * len({(p, v) for p, v in zip(table["perturbation"], table["level"].fillna(-999))})
    assert not list(out.glob(".*.tmp"))  # atomic writes leave no temporaries
    assert list(table.columns) == COLUMNS
    stored = pd.read_parquet(out / "robustness.parquet")
    pd.testing.assert_frame_equal(stored, table)
    assert len(pd.read_csv(out / "robustness.csv")) == len(table)
    points = {("clean", None)} | {(p, v) for p, levels in grid.items() for v in levels}
    got = {(p, None if math.isnan(v) else v) for p, v in zip(table["perturbation"], table["level"])}
    assert got == points
    assert set(table["metric"]) == {"roc_auc", "pr_auc", "f1_sample", "f1_micro"}
    assert np.isfinite(table["value"]).all()
    assert (table["n_clips"] == 12).all()
    flat = json.loads((out / "robustness.json").read_text())
    assert "clean/roc_auc" in flat
    for p, levels in grid.items():
        for v in levels:
            assert f"{p}/{level_key(p, v)}/roc_auc" in flat
    return flat


def test_stage_on_trained_stub_model(tmp_path, stub_zoo) -> None:
    clips = _write_segments(tmp_path)
    config = ModelConfig(variant="tiny", n_classes=3, multilabel=True, width=1.0, input_length=N)
    model = _train(_stub_build_model(config), clips)
    save_model(model, Layout(tmp_path).model(TASK, "tiny"), LABELS, {"task": TASK})
    grid = {
        "white_noise": [20.0, 0.0, -10.0],
        "background_noise": [0.0],
        "pitch_shift": [1.0],
        "time_stretch": [1.25],
        "gain": [-6.0],
        "ref_dynamic_range": [4.0],
    }

    table = run_robustness(TASK, "tiny", _params(grid), Layout(tmp_path), track=False)

    flat = _check_outputs(tmp_path, "tiny", table, grid)
    assert flat["clean/roc_auc"] > 0.9  # the model learned the task
    assert flat["white_noise/snr_0/roc_auc"] <= flat["clean/roc_auc"] + 1e-9
    assert flat["white_noise/snr_m10/roc_auc"] < flat["clean/roc_auc"]
    small = {"white_noise": [0.0], "background_noise": [0.0]}
    again = run_robustness(TASK, "tiny", _params(small), Layout(tmp_path), track=False)
    keep = table["perturbation"].isin(["clean", *small]) & (table["level"].isna() | (table["level"] == 0.0))
    pd.testing.assert_frame_equal(again, table[keep].reset_index(drop=True))  # deterministic re-run

    summary = robustness_summary([table])
    assert {"clean", "drop", "relative_degradation"} <= set(summary.columns)
    row = summary[(summary.perturbation == "white_noise") & (summary.level == -10.0) & (summary.metric == "roc_auc")]
    assert row["relative_degradation"].iloc[0] > 0
    assert plot_robustness(table, tmp_path / "one.png").stat().st_size > 0  # drawn by the report
    both = pd.concat([table, table.assign(model="tiny2")])
    png = plot_task_curves(both, TASK, tmp_path / "curves.png")
    assert png.stat().st_size > 0


def test_stage_logs_into_the_models_mlflow_run(tmp_path, stub_zoo) -> None:
    """Real MLflow store (tests/conftest.py): robust/* metrics and plots land in the training run."""
    from pipeline.tracking import runs as tracking

    _write_segments(tmp_path)
    config = ModelConfig(variant="tiny", n_classes=3, multilabel=True, width=1.0, input_length=N)
    params = _params({"white_noise": [10.0]})
    run = tracking.TrainingRun(TASK, "tiny", params, root=tmp_path)
    save_model(_stub_build_model(config), Layout(tmp_path).model(TASK, "tiny"), LABELS, {"mlflow_run_id": run.run_id})
    run_robustness(TASK, "tiny", params, Layout(tmp_path))
    client = tracking.client(tmp_path)
    metrics = client.get_run(run.run_id).data.metrics
    assert "robust/white_noise/snr_10/roc_auc" in metrics and "robust/clean/roc_auc" in metrics
    flat = json.loads((Layout(tmp_path).metrics(TASK, "tiny") / "robustness.json").read_text())
    assert metrics["robust/white_noise/snr_10/roc_auc"] == pytest.approx(flat["white_noise/snr_10/roc_auc"])
    names = {f.path for f in client.list_artifacts(run.run_id, "robustness")}
    assert {"robustness/robustness_scores.parquet", "robustness/robustness.parquet"} <= names


def test_stage_with_zoo_model(tmp_path) -> None:
    zoo = pytest.importorskip("pipeline.models.zoo")
    clips = _write_segments(tmp_path, n_train=32)
    config = ModelConfig(variant="fcn", n_classes=3, multilabel=True, width=0.125, input_length=N)
    model = _train(zoo.build_model(config), clips, steps=15)
    save_model(model, Layout(tmp_path).model(TASK, "fcn"), LABELS, {"task": TASK})
    grid = {"white_noise": [10.0, 0.0], "background_noise": [0.0]}
    table = run_robustness(TASK, "fcn", _params(grid), Layout(tmp_path), track=False)
    _check_outputs(tmp_path, "fcn", table, grid)


def test_bad_grid_is_a_user_error(tmp_path, stub_zoo) -> None:
    from pipeline.core.errors import UserError

    with pytest.raises(UserError, match="unknown perturbation"):
        run_robustness(TASK, "tiny", _params({"reverb": [1.0]}), Layout(tmp_path), track=False)
    with pytest.raises(UserError, match="rate must be > 0"):
        run_robustness(TASK, "tiny", _params({"time_stretch": [0.0]}), Layout(tmp_path), track=False)


def test_level_names_are_filesystem_safe() -> None:
    assert level_key("white_noise", 10.0) == "snr_10"
    assert level_key("white_noise", -5.0) == "snr_m5"
    assert level_key("pitch_shift", -1.0) == "semitones_m1"
    assert level_key("time_stretch", 2**-0.5) == "rate_0p707107"
    assert level_key("gain", -20.0) == "db_m20"
    assert level_key("ref_dynamic_range", 4.0) == "preset_4"
    assert format_level(-0.0) == "0"


@pytest.mark.fast
def test_reference_protocol_expands_to_the_ref_grid(tmp_path) -> None:
    """`robustness.protocol: reference` (issue 27, deliverable 6): the paper profile's named alternative grid."""
    path = tmp_path / "params.yaml"
    path.write_text("profile: paper\n")
    paper = load_params(path)
    assert paper.robustness.protocol == "grid" and "background_noise" in paper.robustness.grid
    path.write_text("profile: paper\nrobustness: {protocol: reference}\n")
    reference = load_params(path)
    grid = reference.robustness.grid
    assert grid == REFERENCE_ROBUSTNESS_GRID and sum(map(len, grid.values())) == 14
    assert set(grid) == {"ref_time_stretch", "ref_pitch_shift", "ref_dynamic_range", "ref_white_noise"}
    assert grid["ref_time_stretch"][0] == 2**-0.5 and grid["ref_white_noise"] == [0.1, 0.2, 0.3, 0.4]
    validate_grid(grid)  # every level is one the ref_* perturbations accept
    assert yaml.safe_load(render_resolved(reference))["robustness"]["grid"] == grid  # what DVC's cells track
    assert noise_dependencies(reference) == []  # no background noise in the reference protocol: no noise input
