"""Render speed (x real time) and build time of ``corpus_tags`` (docs/benchmarks.md).

1. Render: the excerpts of ``--pieces`` pieces are drawn once (notes, programs), then rendered
   ``--rounds`` times through each soundfont; seconds of audio / seconds of CPU (process time,
   one thread: TinySoundFont is single-threaded) = times real time.
2. Build: ``pipeline.data.rendered.generate`` with the profile's settings into a temporary
   folder, wall and CPU time (music21 caches parsed scores in its temp folder: the first build on
   a machine parses, later ones read the cache; run it twice to see both).

    .venv/bin/python benchmarks/corpus_render.py --pieces 6 --rounds 3 [--soundfont /path/FluidR3_GM.sf2]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.config.params import load_params  # noqa: E402
from pipeline.data import rendered  # noqa: E402
from pipeline.data.render import BUNDLED, Renderer  # noqa: E402

log = logging.getLogger("corpus_render")


def render_speed(soundfont: str, pieces: int, rounds: int, seconds: float) -> float:
    """Times real time of rendering the excerpts of ``pieces`` pieces (CPU time of the renders only)."""
    chosen = rendered.select_pieces(pieces, seconds, seed=0)
    renderer = Renderer(soundfont, rendered.SR)
    calls = []

    def capture(notes, programs, secs):  # record what the generator renders, once
        calls.append((notes, programs, secs))
        return original(notes, programs, secs)

    original, renderer.render = renderer.render, capture
    for p, piece in enumerate(chosen):
        for e in range(8):
            rendered.make_excerpt(piece, seconds, 0, p, e, renderer)
    renderer.render = original
    t0 = time.process_time()
    for _ in range(rounds):
        for notes, programs, secs in calls:
            renderer.render(notes, programs, secs)
    cpu = time.process_time() - t0
    audio = rounds * sum(c[2] for c in calls)
    log.info(
        "%s: %d renders, %.1f s of audio in %.2f s CPU = %.0fx real time", soundfont, len(calls) * rounds, audio, cpu, audio / cpu
    )
    return audio / cpu


def build_time() -> tuple[float, float, int]:
    """Wall and CPU seconds of one default build (``params.yaml`` settings), and the clips written."""
    s = load_params(REPO / "params.yaml").datasets.corpus_tags
    with tempfile.TemporaryDirectory() as tmp:
        w0, c0 = time.perf_counter(), time.process_time()
        table = rendered.generate(
            Path(tmp), s.n_clips, s.clip_seconds, 0, s.val_fraction, s.test_fraction, s.n_pieces, s.soundfont
        )
        return time.perf_counter() - w0, time.process_time() - c0, len(table)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pieces", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--soundfont", action="append", default=None, help="repeatable; default the bundled timgm6mb")
    ap.add_argument("--no-build", action="store_true")
    args = ap.parse_args()
    for sf in args.soundfont or [BUNDLED]:
        render_speed(sf, args.pieces, args.rounds, 3.0)
    if not args.no_build:
        wall, cpu, n = build_time()
        log.info("build: %d clips in %.1f s wall, %.1f s CPU", n, wall, cpu)


if __name__ == "__main__":
    main()
