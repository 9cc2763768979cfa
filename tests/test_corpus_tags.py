"""The rendered-music dataset ``corpus_tags``: exact tags, split by piece, byte-identical rebuilds.

One small build (11 pieces, 24 clips of 2 s) is shared by the tests of this module; the build
runs through the source (``musicrep download``) and the segment stage like the smoke grid's.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.core.paths import Layout
from pipeline.data import corpus_notes, rendered
from pipeline.data.render import Note, Renderer
from pipeline.data.shards import SegmentStore
from pipeline.orchestration import stages
from tests.conftest import REPO, tiny_overrides

pytest.importorskip("music21")
pytest.importorskip("tinysoundfont")


def _digests(raw: Path) -> dict[str, str]:
    return {
        p.relative_to(raw).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(raw.rglob("*"))
        if p.is_file() and p.suffix in (".wav", ".csv", ".txt")
    }


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, object]:
    from pipeline.config.params import load_params

    params = load_params(REPO / "params.yaml", overrides=tiny_overrides(tasks=["corpus_tags"], n_clips=24))
    layout = Layout(tmp_path_factory.mktemp("corpus"))
    raw = stages.download("corpus_tags", params, layout)
    return raw, stages.segment("corpus_tags", params, layout), params


def test_manifest_has_eight_instrument_families_and_exact_tag_groups(built) -> None:
    _, seg, _ = built
    store = SegmentStore(seg)
    m = store.manifest
    assert len(m) >= 20 and store.multilabel and store.labels == rendered.TAGS
    heard = {t for labels in m["labels"] for t in labels}
    assert len(heard & set(rendered.FAMILIES)) >= 8
    for labels in map(set, m["labels"]):  # one tag of each exclusive group, at least one instrument
        for group in ("tempo", "mode", "size", "origin"):
            assert len(labels & set(rendered.TAG_GROUPS[group])) == 1, (group, labels)
        families = labels & set(rendered.FAMILIES)
        assert 1 <= len(families) <= rendered.MAX_PARTS
        assert len(families) == 1 or "ensemble" in labels  # a solo is one instrument
    assert set(m["n_samples"]) == {2 * 16_000}


def test_no_piece_in_two_splits(built) -> None:
    raw, seg, _ = built
    table = pd.read_csv(raw / "labels.csv")
    assert table.groupby("piece")["split"].nunique().max() == 1
    assert set(table["split"]) == {"train", "val", "test"}
    m = SegmentStore(seg).manifest  # the clip id names the piece: corpus_tags_p012_e03
    piece = m["clip_id"].str.extract(r"_p(\d+)_e")[0]
    assert m.groupby(piece)["split"].nunique().max() == 1


def test_rebuild_is_byte_identical(built, tmp_path: Path) -> None:
    raw, _, params = built
    s = params.datasets.corpus_tags
    again = tmp_path / "again"
    rendered.generate(again, s.n_clips, s.clip_seconds, params.seed, s.val_fraction, s.test_fraction, s.n_pieces, s.soundfont)
    assert _digests(again) == _digests(raw) and len(_digests(raw)) > 20


def test_key_analysis_matches_music21() -> None:
    from music21 import note, stream

    piece = corpus_notes.parse_piece(corpus_notes.corpus_paths("bach")[50], "bach")
    for start in (0.0, 6.0, 12.0):
        parts = [corpus_notes.window(p, start, 5.0) for p in piece.parts]
        s = stream.Stream()
        for part in parts:
            for onset, duration, pitch in part.tolist():
                n = note.Note(int(pitch), quarterLength=duration)
                s.insert(onset, n)
        expected = s.analyze("key")
        mode, r, margin = corpus_notes.key_of(parts)
        assert mode == expected.mode and r == pytest.approx(expected.correlationCoefficient, abs=1e-9) and margin >= 0


def test_renders_notes_independently_of_earlier_renders() -> None:
    renderer = Renderer()
    note_a = [Note(0.1, 0.6, 0, 60, 100)]
    alone = renderer.render(note_a, {0: 0}, 1.0)
    renderer.render([Note(0.0, 1.0, 0, 40, 127), Note(0.0, 1.0, 1, 72, 127)], {0: 19, 1: 56}, 1.0)
    after = renderer.render(note_a, {0: 0}, 1.0)
    assert np.array_equal(alone, after)
    assert np.abs(alone[:1500]).max() == 0 and np.abs(alone[2000:9000]).max() > 0.01  # silent before the onset
