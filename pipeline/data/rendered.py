"""The embedded rendered-music dataset ``corpus_tags``: corpus excerpts through a GM soundfont.

Excerpts of a few seconds from the music21 corpus (:mod:`pipeline.data.corpus_notes`), each
part given a General MIDI program within its range, rendered at 16 kHz mono through
TinySoundFont (:mod:`pipeline.data.render`). Every tag is exact by construction:

- **instrument family** (9): a part is rendered only if it sounds for at least
  :data:`MIN_SOUNDING` of the excerpt, and its family is tagged; parts that sound less are left
  out (not rendered), so every tagged family is heard and no unheard one is tagged;
- **tempo** ``slow`` (50-70 quarter notes a minute) or ``fast`` (110-150): nothing in between;
- **mode** ``major`` / ``minor``: music21's key analysis of the rendered notes; an excerpt whose
  correlation coefficient is below :data:`MIN_KEY_CONFIDENCE`, or whose best key of the other
  mode comes within :data:`MIN_MODE_MARGIN` of it (a relative major and minor), is not used;
- **size** ``solo`` (one part rendered) or ``ensemble`` (two to four);
- **origin**: the composer or collection the corpus names (``bach``, ``palestrina``,
  ``monteverdi``, ``trecento``, ``folk``).

Tempo, transposition (-4..+5 semitones), programs, loudness and the excerpt's place are drawn
per excerpt from ``default_rng([seed, piece, excerpt, attempt])``; pieces are split between
train/val/test per collection, so a piece never crosses splits. The clip id names the piece
(``corpus_tags_p012_e03``). Same seed, same soundfont, same machine: byte-identical files.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from pipeline.core.io_utils import atomic_path
from pipeline.data import corpus_notes
from pipeline.data.corpus_notes import Piece
from pipeline.data.render import BUNDLED, Note, Renderer

log = logging.getLogger(__name__)
SR = 16_000
MIN_SOUNDING = 0.5
MIN_KEY_CONFIDENCE = 0.8
MIN_MODE_MARGIN = 0.05
MAX_PARTS = 4
ATTEMPTS = 30
TEMPI = {"slow": (50.0, 70.0), "fast": (110.0, 150.0)}

#: family -> General MIDI programs (0-based) with the range (MIDI pitches) each is given
FAMILIES: dict[str, list[tuple[int, int, int]]] = {
    "piano": [(0, 21, 108)],  # acoustic grand
    "organ": [(19, 24, 96), (16, 24, 96)],  # church, drawbar
    "strings": [(40, 55, 100), (41, 48, 88), (42, 36, 76), (43, 28, 60), (48, 28, 96)],  # violin, viola, cello, bass, ensemble
    "brass": [(56, 54, 84), (57, 40, 72), (60, 34, 77), (58, 28, 55)],  # trumpet, trombone, horn, tuba
    "woodwind": [(73, 60, 96), (68, 58, 91), (71, 50, 91), (70, 34, 72)],  # flute, oboe, clarinet, bassoon
    "guitar": [(24, 40, 83), (25, 40, 83)],  # nylon, steel
    "plucked": [(6, 29, 89), (46, 24, 103), (105, 48, 84)],  # harpsichord, harp, banjo
    "mallet": [(12, 45, 96), (11, 53, 89), (13, 65, 108)],  # marimba, vibraphone, xylophone
    "voice": [(52, 40, 84), (53, 40, 84)],  # choir aahs, voice oohs
}
ORIGINS = [origin for origin, _ in corpus_notes.COLLECTIONS.values()]
TAGS = [*FAMILIES, *TEMPI, "major", "minor", "solo", "ensemble", *ORIGINS]
#: tag groups for the per-group scores of docs/results.md
TAG_GROUPS = {
    "instrument": list(FAMILIES),
    "tempo": list(TEMPI),
    "mode": ["major", "minor"],
    "size": ["solo", "ensemble"],
    "origin": ORIGINS,
}


@dataclass(frozen=True)
class Excerpt:
    """One rendered excerpt: its audio and tags."""

    audio: np.ndarray
    tags: list[str]


def _programs(parts: list[np.ndarray], rng: np.random.Generator) -> list[tuple[str, int]]:
    """A ``(family, program)`` within range for each part, distinct families where possible."""
    chosen: list[tuple[str, int]] = []
    for part in parts:
        lo, hi = int(part[:, 2].min()), int(part[:, 2].max())
        fits = {f: [p for p, a, b in progs if a <= lo and hi <= b] for f, progs in FAMILIES.items()}
        fits = {f: p for f, p in fits.items() if p}
        fresh = [f for f in fits if f not in {c[0] for c in chosen}] or list(fits)
        family = fresh[rng.integers(len(fresh))]
        chosen.append((family, fits[family][rng.integers(len(fits[family]))]))
    return chosen


def _pick_parts(piece: Piece, start: float, length: float, solo: bool, rng: np.random.Generator) -> list[np.ndarray]:
    """The windowed parts that sound long enough, in a random order, one (solo) or 2-4 of them."""
    heard = [
        w
        for w in (corpus_notes.window(p, start, length) for p in piece.parts)
        if corpus_notes.sounding(w) >= MIN_SOUNDING * length
    ]
    heard = [heard[i] for i in rng.permutation(len(heard))]
    if solo:
        return heard[:1]
    return heard[:MAX_PARTS] if len(heard) >= 2 else []


def _try_excerpt(piece: Piece, seconds: float, tempo: str, rng: np.random.Generator, renderer: Renderer) -> Excerpt | None:
    """One draw of tempo, window, size and transposition; ``None`` when it gives no exact tags."""
    bpm = rng.uniform(*TEMPI[tempo])
    length = seconds * bpm / 60.0
    start = float(rng.integers(0, max(1, int(piece.length - length) + 1)))
    solo = len(piece.parts) == 1 or rng.random() < 0.3
    parts = _pick_parts(piece, start, length, solo, rng)
    if not parts:
        return None
    mode, confidence, margin = corpus_notes.key_of(parts)
    if confidence < MIN_KEY_CONFIDENCE or margin < MIN_MODE_MARGIN:
        return None
    shift = int(rng.integers(-4, 6))
    parts = [p + np.array([0.0, 0.0, shift]) for p in parts]
    programs = _programs(parts, rng)
    to_s = 60.0 / bpm
    notes = [
        Note(on * to_s, (on + dur) * to_s, ch, int(pitch), int(velocity))
        for ch, (part, velocity) in enumerate(zip(parts, rng.integers(70, 111, size=len(parts))))
        for on, dur, pitch in part.tolist()
    ]
    audio = renderer.render(notes, {ch: prog for ch, (_, prog) in enumerate(programs)}, seconds)
    peak = float(np.max(np.abs(audio)))
    if peak <= 0:
        return None
    audio = audio / peak * 10 ** (rng.uniform(-12, -3) / 20)
    size = "solo" if len(parts) == 1 else "ensemble"
    tags = sorted({f for f, _ in programs} | {tempo, mode, size, piece.origin})
    return Excerpt(audio.astype(np.float32), tags)


def make_excerpt(piece: Piece, seconds: float, seed: int, piece_id: int, excerpt_id: int, renderer: Renderer) -> Excerpt | None:
    """Excerpt ``excerpt_id`` of a piece: the first of :data:`ATTEMPTS` seeded draws with exact tags.

    The tempo class alternates with the excerpt number (balanced classes); the draws vary the rest.
    """
    tempo = list(TEMPI)[(excerpt_id + piece_id) % len(TEMPI)]
    for attempt in range(ATTEMPTS):
        found = _try_excerpt(piece, seconds, tempo, np.random.default_rng([seed, piece_id, excerpt_id, attempt]), renderer)
        if found is not None:
            return found
    return None


def select_pieces(n_pieces: int, seconds: float, seed: int) -> list[Piece]:
    """``n_pieces`` corpus pieces, in proportion to :data:`~corpus_notes.COLLECTIONS`, seeded."""
    weights = {c: n for c, (_, n) in corpus_notes.COLLECTIONS.items()}
    total = sum(weights.values())
    pieces = []
    for index, (collection, (origin, _)) in enumerate(corpus_notes.COLLECTIONS.items()):
        want = max(1, round(n_pieces * weights[collection] / total))
        paths = corpus_notes.corpus_paths(collection)
        found: list[Piece] = []
        for i in np.random.default_rng([seed, 20_000 + index]).permutation(len(paths)):
            piece = corpus_notes.parse_piece(paths[i], origin)
            if piece is not None and piece.length >= 3 * seconds * TEMPI["fast"][1] / 60:
                found.append(piece)
            if len(found) == want:
                break
        pieces += found
    return pieces


def piece_splits(pieces: list[Piece], val: float, test: float, seed: int) -> list[str]:
    """Split of each piece: pieces dealt in a seeded order stratified by origin, the first ones to test, then val.

    Each origin's pieces are shuffled and spread evenly over the order, so every split holds the
    origins in about their proportions.
    """
    keys = []
    for index, origin in enumerate(ORIGINS):
        members = [i for i, p in enumerate(pieces) if p.origin == origin]
        shuffled = np.random.default_rng([seed, 30_000 + index]).permutation(len(members))
        keys += [((rank + 0.5) / len(members), index, members[j]) for rank, j in enumerate(shuffled)]
    order = [i for _, _, i in sorted(keys)]
    n_test, n_val = max(1, round(len(order) * test)), max(1, round(len(order) * val))
    split = ["train"] * len(pieces)
    for rank, i in enumerate(order[: n_test + n_val]):
        split[i] = "test" if rank < n_test else "val"
    return split


def generate(
    out_dir: Path,
    n_clips: int,
    clip_seconds: float,
    seed: int,
    val_fraction: float,
    test_fraction: float,
    n_pieces: int,
    soundfont: str = BUNDLED,
) -> pd.DataFrame:
    """Write ``corpus_tags`` into ``out_dir`` (``audio/*.wav``, ``labels.csv``, ``vocabulary.txt``)."""
    out_dir = Path(out_dir)
    (out_dir / "audio").mkdir(parents=True, exist_ok=True)
    pieces = select_pieces(n_pieces, clip_seconds, seed)
    splits = piece_splits(pieces, val_fraction, test_fraction, seed)
    per_piece = -(-n_clips // len(pieces))
    renderer = Renderer(soundfont, SR)
    rows = []
    for p, (piece, split) in enumerate(zip(pieces, splits)):
        for e in range(per_piece):
            excerpt = make_excerpt(piece, clip_seconds, seed, p, e, renderer)
            if excerpt is None:
                continue
            clip_id = f"corpus_tags_p{p:03d}_e{e:02d}"
            with atomic_path(out_dir / "audio" / f"{clip_id}.wav") as tmp:
                sf.write(tmp, excerpt.audio, SR, subtype="PCM_16", format="WAV")
            rows.append(
                {
                    "clip_id": clip_id,
                    "path": f"audio/{clip_id}.wav",
                    "split": split,
                    "labels": ";".join(excerpt.tags),
                    "piece": piece.name,
                }
            )
    table = pd.DataFrame(rows)
    with atomic_path(out_dir / "labels.csv") as tmp:
        table.to_csv(tmp, index=False)
    with atomic_path(out_dir / "vocabulary.txt") as tmp:
        tmp.write_text("\n".join(TAGS) + "\n")
    log.info("rendered corpus_tags: %d clips of %.1f s from %d pieces in %s", len(table), clip_seconds, len(pieces), out_dir)
    return table
