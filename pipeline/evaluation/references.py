"""Published results shown beside ours: the SMC 2020 MTAT table, with each row's status.

Source: Won, Ferraro, Bogdanov & Serra, "Evaluation of CNN-based automatic music tagging models",
SMC 2020 ([SMC20] in docs/spec.md; repository ``minzwon/sota-music-tagging-models``), the MTAT
test results as macro ROC-AUC / PR-AUC. Only the short-chunk ResNet row is confirmed by an
independent listing (the Papers-with-Code entry for [SMC20]: 91.29 / 46.14); the other rows are
recalled values not yet checked against the paper or the repository's ``figs/performance.png``, and
every output that shows them says so (``paper (SMC20, recalled, unverified)``). Also in docs/spec.md §7 and §9.5.

The ICASSP 2020 HCNN table (Won et al., "Data-driven harmonic filters for audio representation
learning": MTAT, Speech Commands, DCASE 2017 task 4) could not be retrieved with the available
search tools, so it is not here: no numbers from memory. Add its rows (status ``confirmed``) once
copied from the paper's results table.

The numbers are MTAT's, on the reference split, so they are shown only for the ``mtat`` task.
"""

from __future__ import annotations

from dataclasses import dataclass

CONFIRMED = "confirmed"
RECALLED = "recalled, unverified"


@dataclass(frozen=True)
class Reference:
    """One published row: our registry's variant name, the paper's numbers and how sure we are of them."""

    model: str
    roc_auc: float
    pr_auc: float
    status: str
    paper: str = "SMC20"

    @property
    def source(self) -> str:
        """How the row is marked in ``compare`` and the report, e.g. ``paper (SMC20, recalled, unverified)``."""
        return f"paper ({self.paper}, {self.status})"


SMC20_MTAT: tuple[Reference, ...] = (
    Reference("fcn", 0.9005, 0.4295, RECALLED),
    Reference("musicnn", 0.9106, 0.4493, RECALLED),
    Reference("samplecnn", 0.9058, 0.4422, RECALLED),
    Reference("samplecnn_se", 0.9103, 0.4520, RECALLED),
    Reference("crnn", 0.8722, 0.3625, RECALLED),
    Reference("cnnsa", 0.9077, 0.4452, RECALLED),
    Reference("hcnn", 0.9127, 0.4611, RECALLED),
    Reference("short_cnn", 0.9126, 0.4590, RECALLED),
    Reference("short_res", 0.9129, 0.4614, CONFIRMED),
)
"""[SMC20] Table: MTAT test ROC-AUC / PR-AUC per model (docs/spec.md §7)."""

REFERENCES: dict[str, tuple[Reference, ...]] = {"mtat": SMC20_MTAT}
"""Task -> the published rows on that task's data and split."""


def references_for(task: str) -> tuple[Reference, ...]:
    """The published rows for ``task`` (empty for every task but ``mtat``)."""
    return REFERENCES.get(task, ())
