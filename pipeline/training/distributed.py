"""One training run over several processes under ``torchrun`` (issue 13): torch.distributed + DDP.

``torchrun --nproc-per-node=N -m pipeline.cli.main train TASK MODEL`` (or ``--nnodes``/``--rdzv-endpoint``
for several machines) sets ``RANK``/``WORLD_SIZE``/``MASTER_ADDR``; :func:`init` then joins the
process group (NCCL on CUDA, gloo on CPU) and :func:`wrap` puts the model in
:class:`~torch.nn.parallel.DistributedDataParallel`. Rank ``r`` trains the batches ``b`` of each
epoch plan with ``b % N == r`` (:class:`pipeline.training.batches.EpochSampler`), DDP averages the
gradients, the epoch's training loss is averaged over the ranks, and only rank 0 logs to
MLflow, writes checkpoints and packages the model. Without ``WORLD_SIZE`` (or with 1) nothing
changes: :func:`init` returns ``(0, 1)`` and :func:`wrap` returns its argument.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

log = logging.getLogger(__name__)


def world() -> tuple[int, int]:
    """``(rank, world size)`` of this process (``(0, 1)`` outside torchrun)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def init(device: torch.device) -> tuple[int, int]:
    """Join torchrun's process group when ``WORLD_SIZE`` > 1; returns ``(rank, world size)``."""
    rank, size = world()
    if size > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        torch.distributed.init_process_group(backend=backend)
        rank, size = torch.distributed.get_rank(), torch.distributed.get_world_size()
        if device.type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        log.info("rank %d of %d (%s)", rank, size, backend)
    return rank, size


def local_device(device: torch.device) -> torch.device:
    """This rank's GPU (``LOCAL_RANK``) on CUDA; the device unchanged otherwise."""
    if device.type == "cuda" and world()[1] > 1:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


class _Call(nn.Module):
    """A module whose forward is ``fn`` (DDP needs a module; the feature-cache path calls a method)."""

    def __init__(self, owner: nn.Module, fn: Any) -> None:
        super().__init__()
        self.owner, self.fn = owner, fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


def wrap(model: nn.Module, forward: Any, device: torch.device) -> Any:
    """``forward`` under DDP when in a process group of more than one; else ``forward`` itself."""
    if world()[1] <= 1:
        return forward

    ids = [device.index] if device.type == "cuda" else None
    module = forward if isinstance(forward, nn.Module) else _Call(model, forward)
    return DistributedDataParallel(module, device_ids=ids, find_unused_parameters=module is not model)


def mean(value: torch.Tensor) -> torch.Tensor:
    """``value`` averaged over the ranks (itself with one process)."""
    size = world()[1]
    if size <= 1:
        return value
    out = value.detach().clone().float()
    torch.distributed.all_reduce(out)
    return out / size


def barrier() -> None:
    if world()[1] > 1 and torch.distributed.is_initialized():
        torch.distributed.barrier()


def finish() -> None:
    """Leave the process group (end of a distributed training)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
