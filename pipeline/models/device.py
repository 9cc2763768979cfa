"""Which device a stage runs on: ``runtime.device`` resolved here, in one place (and torch's one
notice that does not concern this machine, :func:`quiet_onednn_tf32_notice`).

- ``cpu``: the CPU.
- ``cuda``: the GPU; without a usable CUDA it is one :class:`UserError` line (exit 2) naming the
  CUDA/driver state (``torch.cuda.is_available()``, ``torch.version.cuda``, the driver's message).
- ``auto``: CUDA when usable, else the CPU, and the choice is logged once per process. Under
  ``profile: paper`` (meant for a GPU) ``auto`` refuses the CPU the same way, so that a torch
  build the driver cannot run is found at the first cell and not from an ETA of days; running
  the paper profile on the CPU is asked for with ``--set runtime.device=cpu``.
"""

from __future__ import annotations

import functools
import logging
import warnings

import torch

from pipeline.core.choices import DEVICES as DEVICE_CHOICES
from pipeline.core.errors import UserError

log = logging.getLogger(__name__)


def cuda_state() -> str:
    """One phrase on CUDA here: the GPUs torch sees, or why it sees none (build and driver)."""
    built = torch.version.cuda
    if torch.cuda.is_available():
        return f"CUDA {built} with {torch.cuda.device_count()} GPU(s), the first a {torch.cuda.get_device_name(0)}"
    build = f"torch {torch.__version__} built for CUDA {built}" if built else f"torch {torch.__version__} built without CUDA"
    try:
        torch.cuda.init()
        driver = "no GPU visible"
    except (AssertionError, RuntimeError) as exc:
        driver = (str(exc).strip() or type(exc).__name__).splitlines()[0].split(". ")[0].rstrip(".")
    return f"torch.cuda.is_available() is False ({build}; driver: {driver})"


def pick_device(requested: str = "auto", *, profile: str | None = None) -> torch.device:
    """``runtime.device`` -> the torch device (module docstring); ``profile``: the params' profile.

    Raises:
        UserError: ``cuda`` without a usable CUDA, or ``auto`` under ``profile: paper`` without one.
    """
    if requested not in DEVICE_CHOICES:
        raise UserError(f"runtime.device must be one of {', '.join(DEVICE_CHOICES)}, got {requested!r}.")
    if requested == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        if requested == "auto":
            _log_choice("cuda", cuda_state())
        return torch.device("cuda")
    if requested == "cuda":
        raise UserError(
            f"runtime.device is cuda but {cuda_state()}; install the torch build that matches the NVIDIA driver "
            "(requirements.lock pins it) or run on the CPU with --set runtime.device=cpu."
        )
    if profile == "paper":
        raise UserError(
            f"profile paper is meant for a GPU but {cuda_state()}; fix the CUDA install, "
            "or ask for the CPU on purpose with --set runtime.device=cpu (or runtime.device: cpu in params.yaml)."
        )
    _log_choice("cpu", cuda_state())
    return torch.device("cpu")


@functools.cache
def _log_choice(device: str, why: str) -> None:
    """Log ``device: auto``'s choice once per process."""
    log.info("runtime.device auto: running on %s (%s)", device, why)


ONEDNN_TF32_NOTICE = r"TF32 acceleration on top of oneDNN is available for Intel GPUs"
"""The start of the UserWarning torch emits whenever ``torch.backends.mkldnn.flags`` is entered on a build
without Intel GPU support (every CPU training run); it concerns Intel GPUs only."""


def quiet_onednn_tf32_notice() -> None:
    """Ignore torch's :data:`ONEDNN_TF32_NOTICE` (and nothing else) in this process; called where training
    sets the oneDNN flags (:func:`pipeline.training.train.train_model`). Idempotent: ``warnings`` keeps one copy."""

    warnings.filterwarnings("ignore", message=ONEDNN_TF32_NOTICE, category=UserWarning)
