"""The short-clip protocol (docs/decisions.md): the input length of every pair of the paper grid."""

from __future__ import annotations

import pytest
import torch

from pipeline.models.base import ModelConfig
from pipeline.models.zoo import VARIANTS, build_model, input_length_for

# The paper grid's tasks: (clip samples at 16 kHz as the sources cut them, task kind).
TASKS = {"mtat": (465_600, "multilabel"), "speech_commands": (16_000, "single"), "dcase2017_task4": (160_000, "multilabel")}

# L in samples per (model, task); a paper L longer than the clip is capped at the clip
# (Sample-CNNs: rounded up to a frame of 3 samples); HCNN keeps the reference's per-task L.
PAPER_GRID = {
    "fcn": (464_000, 16_000, 160_000),
    "crnn": (464_000, 16_000, 160_000),
    "musicnn": (48_000, 16_000, 48_000),
    "samplecnn": (59_049, 16_002, 59_049),
    "samplecnn_se": (59_049, 16_002, 59_049),
    "hcnn": (80_000, 16_384, 48_000),
    "cnnsa": (240_000, 16_000, 160_000),
    "short_cnn": (59_049, 16_000, 59_049),
    "short_res": (59_049, 16_000, 59_049),
    "attention_rnn": (16_000, 16_000, 16_000),
    "gated_crnn": (160_000, 16_000, 160_000),
}


@pytest.mark.fast
def test_the_pinned_grid_covers_the_registry() -> None:
    assert set(PAPER_GRID) == set(VARIANTS)


@pytest.mark.fast
@pytest.mark.parametrize("model", sorted(PAPER_GRID))
@pytest.mark.parametrize("task_index,task", list(enumerate(TASKS)))
def test_paper_input_length_of_every_pair(model: str, task_index: int, task: str) -> None:
    clip, kind = TASKS[task]
    length = input_length_for(model, "paper", clip, kind)
    assert length == PAPER_GRID[model][task_index]
    assert length <= max(clip, VARIANTS[model].paper.task_lengths.get("keywords", 0), clip + 2)


@pytest.mark.fast
@pytest.mark.parametrize("model", ["fcn", "crnn", "cnnsa", "samplecnn"])
def test_capped_pairs_build_and_run_on_one_second_words(model: str) -> None:
    length = input_length_for(model, "paper", 16_000, "single")
    net = build_model(ModelConfig(model, n_classes=35, multilabel=False, width=0.25, input_length=length)).eval()
    with torch.no_grad():
        assert net(torch.randn(2, length)).shape == (2, 35)
