"""The fixed value sets of the options that params, the Python API and the command line share.

One place for each set; it imports nothing, so the command line builds its choices and help
from it without loading torch. The modules that act on a value check it against the set here.
"""

from __future__ import annotations

DEVICES = ("auto", "cpu", "cuda")
"""``runtime.device`` and ``--device``: auto = CUDA when usable, else the CPU."""

BF16_MODES = ("auto", "on", "off")
"""``train.bf16``, ``evaluate.bf16`` and ``--bf16``: bf16 autocast of the forward."""

AGGREGATES = ("mean", "max")
"""``predict --aggregate``: how a file's chunk scores become its scores."""

LAYERS = ("pooled", "logits")
"""``embed``/``probe --layer``: the back-end feature before the classifier, or the logits."""

BATCH_SIZE = 32
"""``--batch-size`` of predict and embed: chunks per forward pass, as ``runtime.eval_batch_size``. On CPU 64
and 128 were no faster per chunk (128 and, for sample-level models, 64 slower: activations outgrow the
caches); pass more on a GPU."""

PROFILES = ("smoke", "paper")
"""The params profiles shipped with the package (``profile:``, ``params --init``)."""

TABLE_FORMATS = ("table", "csv", "json", "markdown")
"""``compare --format``."""

EXPORT_FORMATS = ("onnx",)
"""``export --format``."""

TASK_RUNNERS = ("thread", "dask", "ray")
"""``flow.task_runner`` and ``flow --task-runner``."""
