"""Shared source classes for the embedded generated datasets: ``synth_*`` and ``corpus_tags``."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import pandas as pd

from pipeline.core.errors import UserError
from pipeline.core.io_utils import stable_hash, write_json
from pipeline.data import rendered, synth
from pipeline.data.catalog import Catalog, SourceInfo

if TYPE_CHECKING:
    from pipeline.config.params import Params


@dataclass
class SyntheticSource(SourceInfo):
    """A generated dataset; ``fetch`` generates it, keyed by its parameters and seed."""

    origin: ClassVar[str] = "synthetic"
    clip_seconds: float = 4.0

    def _settings(self, params: Params) -> dict:
        p = getattr(params.datasets, self.name)
        return {
            "n_clips": p.n_clips,
            "clip_seconds": p.clip_seconds,
            "seed": params.seed,
            "val_fraction": p.val_fraction,
            "test_fraction": p.test_fraction,
            "generator": 1,
        }

    def fetch(self, raw_dir: Path, params: Params) -> None:
        settings = self._settings(params)
        stamp = raw_dir / "COMPLETE.json"
        key = stable_hash(settings)
        if stamp.exists() and pd.read_json(stamp, typ="series").get("key") == key:
            return
        if stamp.exists():
            stamp.unlink()
        self._generate(raw_dir, settings)
        write_json(stamp, {"key": key, **settings})

    def _generate(self, raw_dir: Path, settings: dict) -> None:
        synth.generate(
            self.name,
            raw_dir,
            settings["n_clips"],
            settings["clip_seconds"],
            settings["seed"],
            settings["val_fraction"],
            settings["test_fraction"],
        )

    def catalog(self, raw_dir: Path, params: Params) -> Catalog:
        if not (raw_dir / "COMPLETE.json").exists():
            raise UserError(f"{raw_dir} holds no complete {self.name} dataset; run `musicrep download {self.name}` first.")
        table = pd.read_csv(raw_dir / "labels.csv", keep_default_na=False)
        vocab = (raw_dir / "vocabulary.txt").read_text().split()
        table["labels"] = table["labels"].map(lambda s: [x for x in s.split(";") if x])
        table["start_s"] = 0.0
        table["duration_s"] = math.nan
        return Catalog(
            clips=table,
            labels=vocab,
            expected=len(table),
            split_source=f"generated: {self.split_rule} (datasets.{self.name}.val_fraction, test_fraction, seed)",
            vocabulary_source="generated: the generator's vocabulary.txt",
        )

    @property
    def split_rule(self) -> str:
        """How the generator splits its clips, in words."""
        return "seeded random split of the clips"


@dataclass
class RenderedSource(SyntheticSource):
    """``corpus_tags``: music21 corpus excerpts rendered through a GM soundfont (:mod:`pipeline.data.rendered`)."""

    origin: ClassVar[str] = "rendered"

    def _settings(self, params: Params) -> dict:
        p = getattr(params.datasets, self.name)
        return {**super()._settings(params), "n_pieces": p.n_pieces, "soundfont": p.soundfont, "generator": "rendered-1"}

    def _generate(self, raw_dir: Path, settings: dict) -> None:
        rendered.generate(raw_dir, **{k: v for k, v in settings.items() if k != "generator"})

    @property
    def split_rule(self) -> str:
        return "seeded split of the pieces per collection, a piece never crossing splits"
