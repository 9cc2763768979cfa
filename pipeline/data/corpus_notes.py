"""Pieces of the music21 corpus as plain note arrays, and what an excerpt of them holds.

A piece is read once (``music21.corpus.parse``, ties joined) into one array per part with
columns ``onset, duration`` (quarter notes) and ``pitch`` (MIDI). The excerpt functions work on
these arrays: which notes fall in a window, how long a part sounds there, and the key that
music21's Krumhansl-Schmuckler analysis finds for the window with its correlation coefficient.

The corpus (music21, BSD-3-Clause; the scores' own notes in docs/datasets.md) is chosen by
composer; :data:`COLLECTIONS` lists what the ``corpus_tags`` dataset draws and which tag each
collection gives.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.core.lazy import lazy

music21_corpus = lazy("music21.corpus")  # seconds to import; only the rendered dataset reads scores
music21_keys = lazy("music21.analysis.discrete")

#: corpus collection (``music21.corpus.getComposer`` name) -> (origin tag, relative share of the pieces)
COLLECTIONS: dict[str, tuple[str, int]] = {
    "bach": ("bach", 20),  # chorales, 4 parts (baroque)
    "palestrina": ("palestrina", 10),  # masses, 4-8 parts (renaissance)
    "monteverdi": ("monteverdi", 10),  # madrigals, 5 parts (late renaissance)
    "trecento": ("trecento", 10),  # 14th-century Italian songs, 2-3 parts (medieval)
    "ryansMammoth": ("folk", 10),  # Ryan's Mammoth Collection (1883): fiddle tunes, one line
}
SUFFIXES = (".mxl", ".krn", ".xml", ".abc")


@dataclass(frozen=True)
class Piece:
    """A parsed corpus piece: ``parts`` are ``(n, 3)`` arrays of onset, duration (quarters), pitch."""

    name: str
    origin: str
    parts: list[np.ndarray]

    @property
    def length(self) -> float:
        """Quarter notes from the start to the last note's end."""
        return max(float((p[:, 0] + p[:, 1]).max()) for p in self.parts)


def corpus_paths(collection: str) -> list[str]:
    """Sorted corpus-relative paths of one collection's scores (music21's own order is not guaranteed)."""

    paths = {str(p) for p in music21_corpus.getComposer(collection) if str(p).endswith(SUFFIXES)}
    return sorted(paths)


def _part_notes(part) -> np.ndarray:  # noqa: ANN001 (a music21 Part)
    """``(n, 3)`` onset, duration, pitch of a part's pitched notes, tied notes joined into one."""
    rows: list[list[float]] = []
    open_ties: dict[int, int] = {}
    for n in part.flatten().notes:
        duration = float(n.duration.quarterLength)
        if duration <= 0:  # grace notes
            continue
        onset = float(n.offset)
        for sub in n.notes if n.isChord else [n]:
            pitch, tie = int(sub.pitch.midi), sub.tie.type if sub.tie is not None else None
            if tie in ("stop", "continue") and pitch in open_ties:
                row = rows[open_ties[pitch]]
                row[1] = onset + duration - row[0]
            else:
                rows.append([onset, duration, float(pitch)])
                open_ties[pitch] = len(rows) - 1
            if tie not in ("start", "continue"):
                open_ties.pop(pitch, None)
    return np.array(sorted(rows), dtype=np.float64).reshape(-1, 3)


def parse_piece(path: str, origin: str) -> Piece | None:
    """The parts of the score at ``path`` with at least one pitched note (``None`` if it has none)."""

    score = music21_corpus.parse(path)
    parts = [notes for notes in map(_part_notes, getattr(score, "parts", None) or [score]) if len(notes)]
    name = path.split("/corpus/")[-1].rsplit(".", 1)[0].replace("/", "_")
    return Piece(name, origin, parts) if parts else None


def window(part: np.ndarray, start: float, length: float) -> np.ndarray:
    """Notes of ``part`` sounding in ``[start, start + length)`` quarters, clipped and shifted to 0."""
    end = part[:, 0] + part[:, 1]
    keep = (part[:, 0] < start + length) & (end > start)
    on = np.maximum(part[keep, 0], start) - start
    off = np.minimum(end[keep], start + length) - start
    return np.stack([on, off - on, part[keep, 2]], axis=1)


def sounding(notes: np.ndarray) -> float:
    """Quarters during which at least one of ``notes`` sounds (union of their spans)."""
    total, reach = 0.0, -np.inf
    for onset, duration, _ in sorted(notes.tolist()):
        end = onset + duration
        if end > reach:
            total += end - max(onset, reach)
            reach = end
    return total


def key_of(notes: list[np.ndarray]) -> tuple[str, float, float]:
    """The key analysis of music21's ``Stream.analyze("key")`` on ``notes`` (windowed parts):
    ``(mode, correlation coefficient, margin over the best key of the other mode)``.

    The same computation on arrays (music21 builds a Stream first, 30 ms an excerpt): the
    pitch-class histogram weighted by duration, correlated (Pearson) with music21's
    Aarden-Essen major and minor profiles in all 12 rotations; the best of the 24 wins.
    """
    everything = np.concatenate(notes)
    histogram = np.bincount(everything[:, 2].astype(int) % 12, weights=everything[:, 1], minlength=12)
    if histogram.std() == 0:
        return "major", 0.0, 0.0
    centred = histogram - histogram.mean()
    r = _key_profiles() @ (centred / np.linalg.norm(centred))  # Pearson r with the 24 keys
    best = {"major": float(r[:12].max()), "minor": float(r[12:].max())}
    mode = max(best, key=best.__getitem__)
    return mode, best[mode], best[mode] - min(best.values())


def _key_profiles() -> np.ndarray:
    """music21's Aarden-Essen key profiles (12 major, then 12 minor rotations), centred, unit norm."""

    weights = music21_keys.AardenEssen()
    rows = np.stack(
        [np.roll(np.asarray(weights.getWeights(m), dtype=np.float64), t) for m in ("major", "minor") for t in range(12)]
    )
    rows -= rows.mean(axis=1, keepdims=True)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)
