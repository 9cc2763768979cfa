"""``musicrep predict`` / ``embed`` / ``register`` on real and awkward audio (CPU, ~30 s).

One tiny keyword model (hcnn, trained for one short epoch on ``synth_keywords``) is shared by
the module. Inputs: FSDD recordings (8 kHz wav; synthetic 8 kHz stand-ins when the mirror is
absent), a 44.1 kHz stereo mp3, a 60-s 22.05 kHz flac, a file too short for one chunk, a
corrupt "wav" and a text file that folder search must ignore.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from pipeline.core.errors import UserError
from pipeline.core.paths import Layout
from pipeline.inference.predict import ChunkStream, embed, predict, resolve_model_dir, stream_audio
from pipeline.orchestration import stages
from tests.conftest import REPO, SHARED, tiny_overrides

TASK, MODEL = "synth_keywords", "hcnn"


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A project with one trained keyword model; returns ``(layout, model_dir)``."""
    from pipeline.config.params import load_params

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("predict-proj")
    overrides = tiny_overrides(tasks=[TASK], models=[MODEL], n_clips=48)
    overrides["features"] = {"enabled": False}
    params = load_params(REPO / "params.yaml", overrides=overrides)
    layout = Layout(root)
    stages.download(TASK, params, layout)
    stages.segment(TASK, params, layout)
    model_dir = stages.train(TASK, MODEL, params, layout, resume=False)
    return layout, model_dir


@pytest.fixture(scope="module")
def audio(tmp_path_factory):
    """Folder of inputs; returns ``(folder, readable files, corrupt file)``."""
    d = tmp_path_factory.mktemp("audio")
    (d / "sub").mkdir()
    rng = np.random.default_rng(0)
    fsdd = sorted((SHARED / "data" / "fsdd" / "recordings").glob("*.wav"))[:4]
    readable = []
    if fsdd:
        for f in fsdd:
            readable.append(Path(shutil.copy(f, d / f.name)))
    else:  # stand-ins at the same rate and length as FSDD
        for i in range(4):
            t = np.arange(int(8000 * 0.4)) / 8000
            sf.write(d / f"tone_{i}.wav", (0.3 * np.sin(2 * np.pi * (200 + 100 * i) * t)).astype(np.float32), 8000)
            readable.append(d / f"tone_{i}.wav")
    t = np.arange(int(44100 * 2.5)) / 44100
    stereo = np.stack([0.3 * np.sin(2 * np.pi * 440 * t), 0.2 * rng.standard_normal(len(t))], 1).astype(np.float32)
    sf.write(d / "sub" / "music.mp3", stereo, 44100)
    readable.append(d / "sub" / "music.mp3")
    long = (0.1 * rng.standard_normal((22050 * 60, 2))).astype(np.float32)
    sf.write(d / "sub" / "long.flac", long, 22050)
    readable.append(d / "sub" / "long.flac")
    sf.write(d / "short.wav", (0.2 * rng.standard_normal(1600)).astype(np.float32), 16000)  # 0.1 s
    readable.append(d / "short.wav")
    corrupt = d / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really audio" + rng.bytes(300))
    (d / "notes.txt").write_text("not audio, must be ignored by folder search")
    return d, readable, corrupt


# ----------------------------------------------------------------------------- streaming (no model)
@pytest.mark.parametrize("rate", [8000, 44100])
def test_streamed_resampling_equals_whole_file(tmp_path, rate) -> None:
    from pipeline.audio.io import read_audio

    x = (0.1 * np.random.default_rng(1).standard_normal((int(rate * 3.3), 2))).astype(np.float32)
    sf.write(tmp_path / "a.wav", x, rate)
    whole = read_audio(tmp_path / "a.wav")
    streamed = np.concatenate(list(stream_audio(tmp_path / "a.wav", 16000, block_seconds=0.25)))
    assert streamed.shape == whole.shape
    np.testing.assert_allclose(streamed, whole, atol=1e-5)


def test_chunk_stream_positions(tmp_path) -> None:
    sf.write(tmp_path / "a.wav", np.full(40000, 0.1, np.float32), 16000)  # 2.5 s
    chunks = list(ChunkStream(tmp_path / "a.wav", 16000, 16000, 16000, block_seconds=0.3))
    assert [(c.start_s, c.end_s) for c in chunks] == [(0.0, 1.0), (1.0, 2.0), (1.5, 2.5)]  # tail end-aligned
    assert all(len(c.samples) == 16000 for c in chunks)
    sf.write(tmp_path / "b.wav", np.full(4000, 0.1, np.float32), 16000)  # shorter than a chunk
    (only,) = list(ChunkStream(tmp_path / "b.wav", 16000, 16000, 16000))
    assert (only.start_s, only.end_s, len(only.samples)) == (0.0, 0.25, 16000)
    assert only.samples[:6000].max() == 0 and only.samples[6000:10000].min() == pytest.approx(
        0.1, abs=1e-3
    )  # centred (16-bit wav)


def test_long_files_are_read_block_by_block(tmp_path, monkeypatch) -> None:
    sf.write(tmp_path / "long.wav", np.zeros((22050 * 40, 2), np.float32) + 0.01, 22050)
    requested: list[int] = []
    original = sf.SoundFile.read

    def spy(self, frames=-1, *args, **kwargs):
        requested.append(frames)
        return original(self, frames, *args, **kwargs)

    monkeypatch.setattr(sf.SoundFile, "read", spy)
    monkeypatch.setattr(sf, "read", lambda *a, **k: pytest.fail("whole-file sf.read used"))
    n = sum(len(b) for b in stream_audio(tmp_path / "long.wav", 16000, block_seconds=5.0))
    assert n == 16000 * 40
    assert requested and all(0 < f <= 22050 * 5 for f in requested)  # never the whole 40 s


# ----------------------------------------------------------------------------- predict
def _cli(*args: str):
    from pipeline.cli.main import app

    return CliRunner().invoke(app, list(args), env={"COLUMNS": "250"})


def test_predict_json_and_csv(project, audio, tmp_path) -> None:
    _, model_dir = project
    folder, readable, corrupt = audio
    out_csv = tmp_path / "pred.csv"
    result = _cli("predict", str(folder), "--model", str(model_dir), "--json", "--csv", str(out_csv), "--top-k", "3")
    assert result.exit_code == 0, result.output
    records = json.loads(result.stdout)
    assert sorted(Path(r["path"]).name for r in records) == sorted(p.name for p in readable)
    card = json.loads((model_dir / "model.json").read_text())
    labels, length = card["labels"], card["config"]["input_length"]
    for r in records:
        assert len(r["top"]) == 3 and set(r["scores"]) == set(labels)
        assert r["top"][0]["score"] == pytest.approx(max(r["scores"].values()))
        assert sum(r["scores"].values()) == pytest.approx(1.0, abs=1e-4)  # single-label: softmax
    by_name = {Path(r["path"]).name: r for r in records}
    assert by_name["long.flac"]["duration_s"] == pytest.approx(60.0, abs=1e-3)
    assert by_name["long.flac"]["n_chunks"] == int(np.ceil(60 * 16000 / length))  # full chunks + 1 end-aligned if needed
    assert by_name["short.wav"]["n_chunks"] == 1
    assert str(corrupt) in result.stderr and result.stderr.count("corrupt.wav") == 1
    assert "notes.txt" not in result.stderr + result.stdout
    table = pd.read_csv(out_csv)
    assert len(table) == len(readable)
    assert {"path", "top1_label", "top1_score", "top3_label"} <= set(table.columns)
    assert {f"score:{k}" for k in labels} <= set(table.columns)
    assert set(table["top1_label"]) <= set(labels)


def test_predict_table_aggregate_max_and_chunk_options(project, audio) -> None:
    _, model_dir = project
    folder, readable, _ = audio
    long = next(p for p in readable if p.name == "long.flac")
    result = _cli(
        "predict", str(long), "--model", str(model_dir), "--aggregate", "max", "--chunk-seconds", "2", "--hop-seconds", "1"
    )
    assert result.exit_code == 0, result.output
    assert "single-label" in result.stdout and str(long) in result.stdout  # rich table
    mean = predict([long], str(model_dir), chunk_seconds=2, hop_seconds=1)
    mx = predict([long], str(model_dir), chunk_seconds=2, hop_seconds=1, aggregate="max")
    assert mean.records[0]["n_chunks"] == 59  # starts 0, 1, ..., 58 s
    assert all(mx.records[0]["scores"][k] >= v - 1e-6 for k, v in mean.records[0]["scores"].items())
    with pytest.raises(UserError, match="aggregate"):
        predict([long], str(model_dir), aggregate="median")


def test_predict_short_name_and_bad_model(project, audio) -> None:
    layout, model_dir = project
    assert resolve_model_dir(f"{TASK}/{MODEL}", layout.root) == model_dir
    with pytest.raises(UserError, match="not a packaged model") as err:
        resolve_model_dir(f"{TASK}/nope", layout.root)
    assert f"{TASK}/{MODEL}" in str(err.value)  # lists what exists


def test_exit_code_2_when_no_input_is_readable(project, audio, monkeypatch, capsys) -> None:
    from pipeline.cli.main import main

    _, model_dir = project
    _, _, corrupt = audio
    monkeypatch.setattr(sys, "argv", ["musicrep", "predict", str(corrupt), "/no/such/file.wav", "--model", str(model_dir)])
    with pytest.raises(SystemExit) as ex:
        main()
    assert ex.value.code == 2
    err = capsys.readouterr().err
    assert "corrupt.wav" in err and "/no/such/file.wav" in err and "none of the 2 inputs" in err
    assert "Traceback" not in err


def test_tampered_checkpoint_is_refused(project, audio, tmp_path, monkeypatch, capsys) -> None:
    from pipeline.cli.main import main

    _, model_dir = project
    bad = tmp_path / "tampered"
    shutil.copytree(model_dir, bad)
    blob = bytearray((bad / "model.pt").read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    (bad / "model.pt").write_bytes(bytes(blob))
    with pytest.raises(UserError, match="checksum"):
        predict([audio[1][0]], str(bad))
    monkeypatch.setattr(sys, "argv", ["musicrep", "predict", str(audio[1][0]), "--model", str(bad)])
    with pytest.raises(SystemExit) as ex:
        main()
    assert ex.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "checksum" in err[0]


# ----------------------------------------------------------------------------- embed
def test_embed_parquet_per_chunk(project, audio, tmp_path) -> None:
    _, model_dir = project
    folder, readable, corrupt = audio
    out = tmp_path / "emb.parquet"
    result = _cli("embed", str(folder), "--model", str(model_dir), "--out", str(out), "--per-chunk")
    assert result.exit_code == 0, result.output
    assert "corrupt.wav" in result.stderr
    table = pq.read_table(out)
    emb_type = table.schema.field("embedding").type
    assert str(emb_type.value_type) == "float" and emb_type.list_size > 0  # fixed_size_list<float32>[dim]
    assert table.schema.field("chunk").type == "int32"
    df = table.to_pandas()
    files = df[df["chunk"] == -1]
    assert sorted(Path(f).name for f in files["file"]) == sorted(p.name for p in readable)
    long = df[df["file"].str.endswith("long.flac")]
    chunks = long[long["chunk"] >= 0]
    length = json.loads((model_dir / "model.json").read_text())["config"]["input_length"]
    assert len(chunks) == int(np.ceil(60 * 16000 / length))
    assert chunks["end_s"].max() == pytest.approx(60.0) and chunks["start_s"].min() == 0.0
    mean = np.stack(chunks["embedding"].to_numpy()).mean(0)
    np.testing.assert_allclose(np.asarray(long[long["chunk"] == -1]["embedding"].iloc[0]), mean, rtol=1e-4, atol=1e-5)


def test_embed_npy_with_index(project, audio, tmp_path) -> None:
    _, model_dir = project
    _, readable, _ = audio
    out = tmp_path / "emb.npy"
    result = _cli("embed", *map(str, readable[:3]), "--model", str(model_dir), "--out", str(out))
    assert result.exit_code == 0, result.output
    matrix = np.load(out)
    index = pd.read_csv(tmp_path / "emb.csv")
    assert matrix.dtype == np.float32 and matrix.shape[0] == len(index) == 3
    assert list(index["chunk"]) == [-1, -1, -1] and list(index["row"]) == [0, 1, 2]
    logits = embed(readable[:1], str(model_dir), layer="logits")
    assert logits.matrix.shape == (1, len(json.loads((project[1] / "model.json").read_text())["labels"]))
    with pytest.raises(UserError, match="layer"):
        embed(readable[:1], str(model_dir), layer="conv3")


# ----------------------------------------------------------------------------- registry
def test_registry_round_trip(project, audio, tmp_path, monkeypatch) -> None:
    from pipeline.tracking.registry import register_model, resolve_model_uri

    monkeypatch.setenv("MUSICREP_MODEL_CACHE", str(tmp_path / "cache"))
    layout, model_dir = project
    _, readable, _ = audio
    name, version = register_model(model_dir, layout.root)
    assert name == f"musicrep-{TASK}-{MODEL}"
    assert register_model(model_dir, layout.root) == (name, version)  # idempotent: same files, same version
    local = resolve_model_uri(f"models:/{name}/{version}", layout.root)
    assert (local / "model.pt").read_bytes() == (model_dir / "model.pt").read_bytes()
    direct = predict(readable[:3], str(model_dir))
    via_registry = predict(readable[:3], f"models:/{name}/{version}")
    for a, b in zip(direct.records, via_registry.records):
        assert a["path"] == b["path"]
        np.testing.assert_allclose(list(a["scores"].values()), list(b["scores"].values()), rtol=1e-5, atol=1e-6)
    assert resolve_model_uri(f"models:/{name}/latest", layout.root) == local
    result = _cli("register", str(model_dir))
    assert result.exit_code == 0 and result.stdout.strip() == f"models:/{name}/{version}"
    # a modified cache entry is detected and replaced by a fresh download
    (local / "model.pt").write_bytes(b"garbage")
    assert (resolve_model_uri(f"models:/{name}/{version}", layout.root) / "model.pt").read_bytes() == (
        model_dir / "model.pt"
    ).read_bytes()
    with pytest.raises(UserError, match="does not exist"):
        resolve_model_uri(f"models:/{name}/999", layout.root)
    with pytest.raises(UserError, match="registry URI"):
        resolve_model_uri("models:/", layout.root)
