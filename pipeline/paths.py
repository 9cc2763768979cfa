"""Where every stage reads and writes, relative to the project root (DESIGN §3)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Layout:
    """File layout of one project directory.

    Args:
        root: the project root (where ``params.yaml`` and ``dvc.yaml`` live).
    """

    root: Path = Path(".")

    def raw(self, dataset: str) -> Path:
        return self.root / "data" / "raw" / dataset

    def segments(self, dataset: str) -> Path:
        return self.root / "data" / "segments" / dataset

    def features(self, dataset: str) -> Path:
        return self.root / "data" / "features" / dataset

    def model(self, task: str, model: str) -> Path:
        return self.root / "models" / task / model

    def metrics(self, task: str, model: str) -> Path:
        return self.root / "metrics" / task / model

    def reports(self) -> Path:
        return self.root / "reports"
