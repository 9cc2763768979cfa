"""Batch inference across files (:func:`pipeline.inference.predict.iter_outputs`) and the streaming writers.

An untrained tiny model is enough: the checks compare batching layouts with each other and
with one forward pass per chunk, never with labels. CPU, a few seconds.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from pipeline.inference import predict as P
from pipeline.inference import writers as W
from pipeline.models.base import ModelConfig
from pipeline.models.zoo import build_model

SR, LENGTH = 16000, 8000  # half-second chunks


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return build_model(ModelConfig("fcn", 5, False, width=0.125, input_length=LENGTH)).eval()


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> list[Path]:
    """Twelve files of 0.2-2.3 s (1-5 chunks each), mono and stereo, 16 and 8 kHz."""
    d = tmp_path_factory.mktemp("clips")
    rng = np.random.default_rng(0)
    out = []
    for i in range(12):
        sr = 8000 if i % 4 == 3 else SR
        n = int(sr * (0.2 + 0.19 * i))
        x = 0.1 * rng.standard_normal((n, 2 if i % 3 == 0 else 1)).astype(np.float32)
        out.append(d / f"f{i:02d}.wav")
        sf.write(out[-1], x, sr, subtype="FLOAT")
    return out


def _score(net):
    return lambda x: torch.softmax(net(x).float(), -1)


def _reference(net, path: Path, hop: int = LENGTH) -> tuple[np.ndarray, np.ndarray]:
    """Mean and max of the chunk scores, one chunk per forward pass."""
    rows = []
    with torch.inference_mode():
        for c in P.ChunkStream(path, SR, LENGTH, hop):
            rows.append(_score(net)(torch.from_numpy(c.samples)[None])[0].numpy())
    rows = np.stack(rows)
    return rows.mean(0), rows.max(0)


@pytest.mark.parametrize("batch_size", [1, 3, 7, 64])
def test_batches_across_files_match_one_chunk_at_a_time(net, files, batch_size) -> None:
    outs = list(P.iter_outputs(net, files, _score(net), chunk=LENGTH, hop=LENGTH, batch_size=batch_size, keep_chunks=True))
    assert [o.path for o in outs] == [str(f) for f in files]  # input order
    for f, o in zip(files, outs):
        mean, _ = _reference(net, f)
        np.testing.assert_allclose(o.vector, mean, rtol=1e-4, atol=1e-6)
        assert o.n_chunks == len(o.chunks) == len(list(P.ChunkStream(f, SR, LENGTH, LENGTH)))
        assert [c[0] for c in o.chunks] == list(range(o.n_chunks))
        np.testing.assert_allclose(np.stack([c[3] for c in o.chunks]).mean(0), o.vector, rtol=1e-5, atol=1e-6)
        assert o.duration_s == pytest.approx(sf.info(f).duration, abs=1e-3)
    mx = list(P.iter_outputs(net, files, _score(net), chunk=LENGTH, hop=LENGTH // 2, batch_size=batch_size, aggregate="max"))
    for f, o in zip(files, mx):
        np.testing.assert_allclose(o.vector, _reference(net, f, LENGTH // 2)[1], rtol=1e-4, atol=1e-6)


def test_bad_files_are_reported_and_skipped_in_place(net, files, tmp_path) -> None:
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot audio" + bytes(200))
    truncated = tmp_path / "truncated.wav"  # refused at open: its header declares more data than present
    blob = tmp_path / "t.wav"
    sf.write(blob, np.zeros(SR * 3, np.float32) + 0.01, SR)
    truncated.write_bytes(blob.read_bytes()[: len(blob.read_bytes()) // 2])
    inputs = [files[0], corrupt, files[1], truncated, files[2]]
    errors: list[tuple[str, str]] = []
    outs = list(
        P.iter_outputs(
            net, inputs, _score(net), chunk=LENGTH, hop=LENGTH, batch_size=4, on_error=lambda p, r: errors.append((p, r))
        )
    )
    assert [o.path for o in outs] == [str(files[0]), str(files[1]), str(files[2])]
    assert [Path(p).name for p, _ in errors] == ["corrupt.wav", "truncated.wav"]
    for f, o in zip(files[:3], outs):
        np.testing.assert_allclose(o.vector, _reference(net, f)[0], rtol=1e-4, atol=1e-6)


def test_a_failure_mid_stream_drops_only_that_file(net, files, monkeypatch) -> None:
    from pipeline.audio.io import AudioError

    real = P.ChunkStream

    class Failing(real):
        def __iter__(self):
            for i, c in enumerate(super().__iter__()):
                if self.path == files[5] and i == 2:
                    raise AudioError("decoding failed mid-file (test)")
                yield c

    monkeypatch.setattr(P, "ChunkStream", Failing)
    errors: list[str] = []
    outs = list(
        P.iter_outputs(net, files, _score(net), chunk=LENGTH, hop=LENGTH, batch_size=3, on_error=lambda p, r: errors.append(p))
    )
    assert errors == [str(files[5])]
    assert [o.path for o in outs] == [str(f) for i, f in enumerate(files) if i != 5]


def test_out_of_memory_in_a_batch_reports_its_files_and_goes_on(net, files) -> None:
    calls = {"n": 0}

    def fn(x):
        calls["n"] += 1
        if calls["n"] == 2:
            raise MemoryError
        return _score(net)(x)

    errors: list[tuple[str, str]] = []
    outs = list(
        P.iter_outputs(net, files[:6], fn, chunk=LENGTH, hop=LENGTH, batch_size=2, on_error=lambda p, r: errors.append((p, r)))
    )
    assert errors and all(r == "out of memory" for _, r in errors)
    assert sorted([o.path for o in outs] + [p for p, _ in errors]) == sorted(map(str, files[:6]))
    assert [o.path for o in outs] == [str(f) for f in files[:6] if str(f) not in dict(errors)]


def test_results_stream_out_with_bounded_lookahead(net, files, monkeypatch) -> None:
    opened: list[Path] = []
    real = P.ChunkStream

    class Counting(real):
        def __iter__(self):
            opened.append(self.path)
            yield from super().__iter__()

    monkeypatch.setattr(P, "ChunkStream", Counting)
    many = files * 5  # 60 inputs
    gen = P.iter_outputs(net, many, _score(net), chunk=LENGTH, hop=LENGTH, batch_size=4)
    first = next(gen)
    assert first.path == str(many[0])
    assert len(opened) <= 6  # a batch of 4 chunks spans at most 4 files (+ the one being read)
    seen = 1 + sum(1 for _ in gen)
    assert seen == len(many) and len(opened) == len(many)


def test_streamed_csv_and_json_match_the_whole_list_layout(capsys) -> None:
    labels = ["a", "b", "c"]
    records = [
        {
            "path": f"/x/{i}.wav",
            "duration_s": 1.25 * i,
            "n_chunks": i + 1,
            "top": [{"label": labels[j], "score": s} for j, s in zip(order, scores)],
            "scores": dict(zip(labels, [0.1 * i, 1e-7, 0.5])),
        }
        for i, (order, scores) in enumerate([((2, 0, 1), (0.5, 0.0, 1e-7)), ((2, 0, 1), (0.5, 0.1, 1e-7))])
    ]
    pred = P.Predictions(records, [], labels, Path("."), False)
    top_k = 5  # more than the labels: NaN scores, empty labels
    fh = io.StringIO()
    sink = W.CsvStream(fh, top_k)
    for r in records:
        sink(r)
    expected = W.predictions_frame(pred, top_k)
    assert fh.getvalue() == expected.to_csv(index=False)  # byte for byte, NaN as empty fields
    js = W.JsonListStream()
    for r in records:
        js(r)
    js.close()
    assert capsys.readouterr().out == json.dumps(records, indent=2) + "\n"
    empty = W.JsonListStream()
    empty.close()
    assert capsys.readouterr().out == "[]\n"


def test_resampler_is_torchaudios_and_threads_are_restored() -> None:
    import torchaudio.functional as AF

    from pipeline.audio.io import resample, torch_threads

    x = np.random.default_rng(3).standard_normal(22050).astype(np.float32)
    before = torch.get_num_threads()
    np.testing.assert_array_equal(resample(x, 22050, 16000), AF.resample(torch.from_numpy(x), 441, 320).numpy())
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError):
        with torch_threads(1):
            assert torch.get_num_threads() == 1
            raise RuntimeError
    assert torch.get_num_threads() == before
    assert not math.isnan(float(resample(x, 22050, 16000).sum()))
