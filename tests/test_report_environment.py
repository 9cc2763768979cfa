"""The report's environment is stated once: one block for cells that ran alike, a row per deviating
cell, the device (never the CUDA build of torch) and bf16 per model."""

from __future__ import annotations

from pathlib import Path

from pipeline.report.collect import Entry
from pipeline.report.environment import environment_rows
from pipeline.report.render import render_report

TAGS = {
    "python": "3.12.3",
    "torch": "2.11.0+cu130",
    "torchaudio": "2.11.0+cu130",
    "cuda": "13.0",
    "cpu": "Intel(R) Xeon(R) Processor",
    "cpu_cores": "2",
    "platform": "Linux-6.8-x86_64",
    "git_commit": "f2ce64f0123456789",
    "profile": "smoke",
}


def _cell(model: str, seed: int = 0, device: str = "cpu", bf16: bool = False, **tags: str) -> Entry:
    card = {"config": {"variant": model}, "metadata": {"device": device}}
    run = {"tags": {**TAGS, "bf16": str(bf16), **tags}}
    return Entry("synth_tags", model, Path("models") / model, seed, card=card, run=run)


def _cells() -> list[Entry]:
    return [_cell("fcn"), _cell("fcn", 1), _cell("musicnn", bf16=True), _cell("hcnn"), Entry("synth_tags", "crnn", Path("x"))]


def test_identical_cells_give_one_environment_and_no_deviations() -> None:
    rows, deviations = environment_rows(_cells())
    env = dict(rows)
    assert deviations == []
    assert env["device"] == "CPU: Intel(R) Xeon(R) Processor, 2 cores"
    assert env["torch"] == "2.11.0+cu130" and env["git commit"] == "f2ce64f01234"
    assert env["bf16 autocast (forward)"] == "on: musicnn; off: fcn, hcnn"
    assert not any("13.0" in value for _, value in rows)  # the CUDA build is no device
    assert [label for label, _ in rows].count("device") == 1


def test_a_deviating_cell_is_listed_alone() -> None:
    cells = [*_cells(), _cell("hcnn", 1, device="cuda", gpu="NVIDIA H100 80GB HBM3", torch="2.10.0")]
    rows, deviations = environment_rows(cells)
    assert dict(rows)["device"].startswith("CPU")
    assert deviations == [
        ["synth_tags/hcnn seed 1", "device", "GPU: NVIDIA H100 80GB HBM3"],
        ["synth_tags/hcnn seed 1", "torch", "2.10.0"],
    ]


def test_the_page_states_the_environment_once(tmp_path: Path) -> None:
    from tests.test_report_page import _context

    rows, _ = environment_rows(_cells())
    context = {**_context(), "environment": {"header": ["environment", "value"], "rows": rows}, "deviations": None}
    markdown, _html = render_report(context)
    section = markdown.split("Environment behind the numbers")[-1]
    assert section.count("| device |") == 1 and "Every trained cell ran in this environment." in section
    assert "13.0" not in section
