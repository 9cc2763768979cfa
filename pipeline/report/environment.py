"""The report's environment, stated once: where and with what the trained cells ran, and only the
cells that differ from that.

Each trained cell records its environment in its model card (``device``) and its MLflow run's
tags (:func:`pipeline.tracking.runs.environment_tags`: ``cpu``, ``gpu``, ``python``, ``torch``, ...;
``bf16`` from training). The most common value of each field is the grid's environment; a cell
with another value is a *deviation*, listed on its own. A field a cell does not record (no MLflow
run, an older run) is neither. The device says where the cells ran (``CPU: <model name>`` or
``GPU: <name>``); the CUDA build of torch is part of its version string (``2.11.0+cu130``), not a
device. bf16 autocast is decided per variant (:func:`pipeline.models.inference.use_bf16`), so it
is stated per model.
"""

from __future__ import annotations

import platform
from collections import Counter
from importlib import metadata

from pipeline import __version__
from pipeline.report.collect import Entry

CELL_FIELDS = (
    ("python", "python"),
    ("torch", "torch"),
    ("torchaudio", "torchaudio"),
    ("platform", "platform"),
    ("git commit", "git_commit"),
    ("profile", "profile"),
)
"""(label, MLflow run tag) of the versions each cell records."""

REPORT_PACKAGES = ("numpy", "pandas", "scikit-learn", "mlflow", "matplotlib", "soundfile")
"""Libraries of the process that builds the report (tables, figures, registry)."""


def describe_device(device: str, tags: dict[str, str]) -> str:
    """``CPU: Intel(R) Xeon(R) Processor, 2 cores`` or ``GPU: NVIDIA H100 80GB HBM3``; never a CUDA build."""
    if device.startswith("cuda"):
        return f"GPU: {tags.get('gpu', 'unknown')}"
    if device == "cpu":
        name = tags.get("cpu")
        cores = f", {tags['cpu_cores']} cores" if tags.get("cpu_cores") else ""
        return f"CPU: {name}{cores}" if name else "CPU"
    return device


def cell_environment(e: Entry) -> dict[str, str]:
    """The recorded environment of one trained cell: ``device`` and the :data:`CELL_FIELDS` it has."""
    tags = e.run.get("tags", {})
    device = str((e.card or {}).get("metadata", {}).get("device") or tags.get("device") or "")
    env = {"device": describe_device(device, tags)} if device else {}
    for label, tag in CELL_FIELDS:
        if tags.get(tag):
            env[label] = str(tags[tag])[:12] if tag == "git_commit" else str(tags[tag])
    return env


def _mode(values: list[str]) -> str:
    """The most common value (the first seen among equals)."""
    return Counter(values).most_common(1)[0][0]


def _bf16(entries: list[Entry]) -> tuple[str | None, dict[str, str]]:
    """``"on: hcnn, musicnn; off: fcn"`` over the models' usual bf16, and each model's usual value."""
    per_model: dict[str, list[str]] = {}
    for e in entries:
        value = e.run.get("tags", {}).get("bf16")
        if value is not None:
            per_model.setdefault(e.model, []).append("on" if value == "True" else "off")
    usual = {model: _mode(values) for model, values in per_model.items()}
    parts = [f"{state}: {', '.join(m for m, v in usual.items() if v == state)}" for state in ("on", "off")]
    return ("; ".join(p for p in parts if not p.endswith(": ")) or None), usual


def environment_rows(entries: list[Entry]) -> tuple[list[list[str]], list[list[str]]]:
    """The grid's environment as ``[field, value]`` rows, and ``[cell, field, value]`` per deviating cell.

    Args:
        entries: the report's cells; those not trained are left out.

    Returns:
        ``(environment, deviations)``: the common value of each field over the trained cells
        (bf16 autocast per model, then the report process's own libraries), and the cells whose
        recorded value differs; empty deviations when every cell ran alike.
    """
    trained = [e for e in entries if e.trained]
    envs = {id(e): cell_environment(e) for e in trained}
    common = {}
    for label in ("device", *(label for label, _ in CELL_FIELDS)):
        values = [envs[id(e)][label] for e in trained if label in envs[id(e)]]
        if values:
            common[label] = _mode(values)
    rows = [[label, value] for label, value in common.items()]
    bf16, usual = _bf16(trained)
    if bf16:
        rows.insert(1, ["bf16 autocast (forward)", bf16])
    deviations = []
    for e in trained:
        cell = f"{e.task}/{e.model} seed {e.seed}"
        deviations += [[cell, label, v] for label, v in envs[id(e)].items() if v != common[label]]
        value = e.run.get("tags", {}).get("bf16")
        if value is not None and ("on" if value == "True" else "off") != usual[e.model]:
            deviations.append([cell, "bf16 autocast (forward)", "on" if value == "True" else "off"])
    return rows + report_versions(), deviations


def report_versions() -> list[list[str]]:
    """``[library, version]`` of the process building the report (``musicrep``, numpy, pandas, ...)."""
    rows = [["musicrep (report)", __version__], ["python (report)", platform.python_version()]]
    for pkg in REPORT_PACKAGES:
        try:
            rows.append([f"{pkg} (report)", metadata.version(pkg)])
        except metadata.PackageNotFoundError:
            rows.append([f"{pkg} (report)", "not installed"])
    return rows
