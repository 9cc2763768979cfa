"""The still-improving warning (pipeline.training.convergence) and its mark in the report's comparison table."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from pipeline.report.collect import Entry
from pipeline.report.tables import comparison_rows
from pipeline.training.convergence import MARK, still_improving, still_improving_note


@pytest.mark.parametrize(
    ("best", "run", "expected"),
    [(8, 8, True), (7, 8, False), (20, 20, True), (19, 20, True), (18, 20, False), (1, 1, True), (3, 5, False)],
)
def test_still_improving_is_the_last_tenth_of_the_epochs(best: int, run: int, expected: bool) -> None:
    assert still_improving(best, run) is expected


def test_unknown_epochs_are_not_flagged() -> None:
    assert not still_improving(None, 8) and not still_improving(3, None) and not still_improving("n/a", 8)


def test_note_names_the_epoch_and_the_remedy() -> None:
    note = still_improving_note(8, 8)
    assert note is not None and note.startswith("validation still improving at epoch 8; more epochs would likely help")
    assert still_improving_note(4, 8) is None


def _entry(best_epoch: int, epochs: int, card_flag: bool | None = None) -> Entry:
    meta = {"kind": "single", "best_epoch": best_epoch}
    if card_flag is not None:
        meta["still_improving"] = card_flag
    e = Entry("synth_keywords", "fcn", Path("/nonexistent"), card={"config": {}, "metadata": meta})
    e.history = pd.DataFrame({"epoch": range(1, epochs + 1)})
    e.eval = {"test/accuracy": 0.75}
    return e


def test_comparison_table_marks_still_improving_cells_only() -> None:
    header, rows = comparison_rows([_entry(8, 8)], "synth_keywords")
    row = dict(zip(header, rows[0]))
    assert row["accuracy"].endswith(MARK) and row["best epoch"] == f"8 {MARK}"
    header, rows = comparison_rows([_entry(4, 8)], "synth_keywords")
    assert MARK not in "".join(rows[0])


def test_the_cards_flag_wins_over_the_history() -> None:
    assert not _entry(8, 8, card_flag=False).still_improving and _entry(2, 8, card_flag=True).still_improving
