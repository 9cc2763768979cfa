"""Render note lists to audio through a General MIDI soundfont (TinySoundFont, pip only).

The renderer drives :class:`tinysoundfont.Synth` directly: note-on and note-off events sorted by
time, audio generated between them. TinySoundFont is single-threaded C code with no random
state, so the same notes, programs and soundfont give the same samples on one machine.

Soundfonts: ``timgm6mb`` is the General MIDI soundfont that ``pretty_midi`` ships
(``pretty_midi/TimGM6mb.sf2``, 6 MB, GPL-2 by Tim Brechbill); any other value is a path to an
``.sf2`` file (docs/datasets.md lists the freely licensed ones we checked).
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.core.errors import UserError
from pipeline.core.lazy import lazy

tinysoundfont = lazy("tinysoundfont")  # only the rendered dataset synthesises notes

log = logging.getLogger(__name__)
BUNDLED = "timgm6mb"


@dataclass(frozen=True)
class Note:
    """One note: ``channel`` plays ``pitch`` (MIDI number) from ``start`` to ``end`` seconds."""

    start: float
    end: float
    channel: int
    pitch: int
    velocity: int


def soundfont_path(name: str) -> Path:
    """The ``.sf2`` file of ``name`` (``timgm6mb`` = pretty_midi's bundled GM soundfont, else a path)."""
    if name == BUNDLED:
        spec = importlib.util.find_spec("pretty_midi")
        if spec is None or spec.origin is None:
            raise UserError("the bundled soundfont comes with pretty_midi; install it with `pip install pretty_midi==0.2.11`.")
        return Path(spec.origin).parent / "TimGM6mb.sf2"
    path = Path(name).expanduser()
    if not path.is_file():
        raise UserError(f"soundfont {name!r} is not a file; give a path to an .sf2 file or `{BUNDLED}`.")
    return path


def _events(notes: list[Note], n_samples: int, sr: int) -> list[tuple[int, int, int, int, int]]:
    """``(sample, on?, channel, pitch, velocity)`` sorted: offs before ons at the same sample."""
    out = []
    for n in notes:
        on, off = int(round(n.start * sr)), min(n_samples, int(round(n.end * sr)))
        if off > on:
            out.append((on, 1, n.channel, n.pitch, n.velocity))
            out.append((off, 0, n.channel, n.pitch, 0))
    return sorted(out)


class Renderer:
    """A TinySoundFont synthesizer with one soundfont loaded (12 ms), reset before every render.

    ``reset`` releases every voice and restores every channel's defaults (then 0.1 s of output
    is discarded while the released voices fade), so a render does not depend on the ones
    before it: the same notes give the same samples whatever came first.
    """

    def __init__(self, soundfont: str = BUNDLED, sr: int = 16_000) -> None:
        self.sr = sr
        self.synth = tinysoundfont.Synth(samplerate=sr)
        self.sfid = self.synth.sfload(str(soundfont_path(soundfont)))

    def render(self, notes: list[Note], programs: dict[int, int], seconds: float) -> np.ndarray:
        """Mono float32 audio of ``notes`` (``programs``: channel -> GM program, 0-based), ``seconds`` long."""
        synth, n_samples = self.synth, int(round(seconds * self.sr))
        synth.soundfonts[self.sfid].reset()  # ends voices with a quick (few ms) release ...
        synth.generate(self.sr // 10)  # ... which this discarded 0.1 s lets finish
        for channel, program in sorted(programs.items()):
            synth.program_select(channel, self.sfid, 0, program)
        chunks, done = [], 0
        for sample, on, channel, pitch, velocity in _events(notes, n_samples, self.sr) + [(n_samples, 0, 0, 0, 0)]:
            if sample > done:
                chunks.append(np.frombuffer(synth.generate(sample - done), dtype=np.float32))
                done = sample
            if sample >= n_samples:
                break
            if on:
                synth.noteon(channel, pitch, velocity)
            else:
                synth.noteoff(channel, pitch)
        stereo = np.concatenate(chunks).reshape(-1, 2) if chunks else np.zeros((n_samples, 2), np.float32)
        return stereo.mean(axis=1).astype(np.float32)
