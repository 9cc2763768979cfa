"""Where the Prefect flow's tasks run (params ``flow:``, ``musicrep flow --task-runner``) and the GPU limit.

* ``thread``: Prefect's :class:`~prefect.task_runners.ThreadPoolTaskRunner` in the flow's own
  process (the default; torch releases the GIL).
* ``dask``: :class:`prefect_dask.DaskTaskRunner` on an existing scheduler (``flow.address``,
  e.g. ``tcp://10.0.0.5:8786``) or on a temporary ``distributed.LocalCluster`` of
  ``flow.max_workers`` single-threaded worker processes bound to 127.0.0.1.
* ``ray``: :class:`prefect_ray.RayTaskRunner` on an existing cluster (``ray://host:10001`` or
  ``auto``) or a temporary local Ray with ``flow.max_workers`` CPUs.

GPU cells (``runtime.device`` resolving to CUDA, or ``flow.gpu_tag: on``) carry the Prefect tag
``gpu``; the flow sets the tag concurrency limit ``gpu`` to ``flow.gpu_concurrency`` (one per
GPU) before it submits them, so the Prefect server lets at most that many GPU cells run at
once, on every runner, while the data stages run freely; cells running in threads of one process
each borrow one of its GPUs (:func:`cell_gpu`). See ``docs/scaling.md``.

Every worker must reach the same project folder (``root``), the MLflow tracking server and the
Prefect API: on one machine that is automatic; across machines use a shared file system or a
DVC remote, the team MLflow server (``make mlflow-server``) and ``PREFECT_API_URL``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator, MutableMapping
from typing import TYPE_CHECKING, Any, NamedTuple

import torch
from pydantic import ValidationError

from pipeline.config.params import FlowParams
from pipeline.core.choices import TASK_RUNNERS as RUNNERS
from pipeline.core.errors import UserError
from pipeline.core.lazy import lazy, optional_module
from pipeline.models.runtime import resolve_runtime

if TYPE_CHECKING:
    from prefect.task_runners import TaskRunner

    from pipeline.config.params import FlowParams, Params

log = logging.getLogger(__name__)

# Prefect at first use: `musicrep cell` imports this module for pin_cell_gpu and never needs it
prefect_client = lazy("prefect.client.orchestration")
prefect_runners = lazy("prefect.task_runners")

GPU_TAG = "gpu"
"""Prefect tag of GPU cells; the tag concurrency limit of the same name caps them."""


def flow_settings(
    params: Params, task_runner: str | None = None, address: str | None = None, max_workers: int | None = None
) -> FlowParams:
    """``params.flow`` with the command line's choices on top (``None`` keeps the params value)."""

    if task_runner is not None and task_runner not in RUNNERS:
        raise UserError(f"unknown task runner {task_runner!r}; use one of {', '.join(RUNNERS)}.")
    over = {
        k: v for k, v in {"task_runner": task_runner, "address": address, "max_workers": max_workers}.items() if v is not None
    }
    try:
        return FlowParams.model_validate({**params.flow.model_dump(), **over})
    except ValidationError as exc:
        err = exc.errors()[0]
        raise UserError(f"invalid flow setting {'.'.join(map(str, err['loc']))}={err.get('input')!r}: {err['msg']}.") from None


def _local_dask(fp: FlowParams) -> tuple[str, dict[str, Any]]:
    """A temporary ``distributed.LocalCluster`` of single-threaded worker processes bound to 127.0.0.1."""
    cluster = {
        "n_workers": fp.max_workers,
        "threads_per_worker": 1,
        "processes": True,
        "host": "127.0.0.1",
        "dashboard_address": None,
    }
    where = f"a temporary Dask LocalCluster of {fp.max_workers} single-threaded workers"
    return where, {"cluster_class": "distributed.LocalCluster", "cluster_kwargs": cluster}


def _local_ray(fp: FlowParams) -> tuple[str, dict[str, Any]]:
    """A temporary local Ray with ``fp.max_workers`` CPUs and this machine's GPUs, no dashboard."""
    init = {"num_cpus": fp.max_workers, "num_gpus": visible_gpus(), "include_dashboard": False, "_node_ip_address": "127.0.0.1"}
    return f"a temporary local Ray with {fp.max_workers} CPUs", {"init_kwargs": init}


class ClusterRunner(NamedTuple):
    """A Prefect task runner that runs on a cluster: the one at ``flow.address``, else a temporary local one."""

    integration: str  # the Prefect integration package (an optional dependency)
    class_name: str  # its task runner class
    remote: str  # what ``flow.address`` names, for the log
    local: Callable[[FlowParams], tuple[str, dict[str, Any]]]  # the local cluster: (what it is, the runner's arguments)


CLUSTER_RUNNERS = {
    "dask": ClusterRunner("prefect_dask", "DaskTaskRunner", "the Dask scheduler", _local_dask),
    "ray": ClusterRunner("prefect_ray", "RayTaskRunner", "the Ray cluster", _local_ray),
}
"""The cluster runners by ``flow.task_runner``."""


def task_runner(fp: FlowParams) -> TaskRunner[Any]:
    """The Prefect task runner for ``fp`` (a fresh one per flow run): on the cluster at ``fp.address``, else a local one."""
    if fp.task_runner == "thread":
        return prefect_runners.ThreadPoolTaskRunner(max_workers=fp.max_workers)
    runner = CLUSTER_RUNNERS[fp.task_runner]
    runner_class = getattr(optional_module(runner.integration), runner.class_name)
    if fp.address:
        log.info("flow tasks on %s %s", runner.remote, fp.address)
        return runner_class(address=fp.address)
    where, settings = runner.local(fp)
    log.info("flow tasks on %s", where)
    return runner_class(**settings)


def gpu_cells(params: Params) -> bool:
    """Whether the grid's cells are GPU cells (tagged ``gpu``): ``flow.gpu_tag``, or where ``runtime.device`` resolves."""
    if params.flow.gpu_tag != "auto":
        return params.flow.gpu_tag == "on"
    return cells_on_cuda(params)


def cells_on_cuda(params: Params) -> bool:
    """Whether the grid's cells run on CUDA: the device of their :class:`~pipeline.models.runtime.Runtime`.

    Raises:
        UserError: ``runtime.device`` cannot run here.
    """
    return resolve_runtime(params).device.type == "cuda"


def cell_slots(params: Params, cpus: int | None = None) -> int:
    """Grid cells to run at once on this machine (``make repro``'s JOBS, ``musicrep dag --jobs``).

    ``runtime.gpu_cells`` per visible GPU when the cells run on CUDA (one cell per GPU by default:
    several cells on one GPU compete for its memory and its loader workers for the CPUs), else one
    per CPU (``cpus``, default the CPUs this process may use, as ``nproc`` counts them). Raises the device's one-line
    :class:`~pipeline.core.errors.UserError` when ``runtime.device`` cannot run here.
    """

    if cells_on_cuda(params):
        return max(1, visible_gpus()) * params.runtime.gpu_cells
    usable = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1)
    return max(1, cpus or len(usable))


CELL_SLOT_VAR = "MUSICREP_CELL_SLOT"
"""The parallel slot (0 .. JOBS-1) of a cell process, set by ``make repro``'s ``xargs --process-slot-var``."""


def gpu_for_slot(slot: int, gpus: int, per_gpu: int) -> int:
    """The GPU (0 .. gpus-1) of parallel slot ``slot``: ``per_gpu`` consecutive slots share one GPU."""
    return (slot // max(1, per_gpu)) % gpus


def visible_gpus() -> int:
    """GPUs this process may use, counted without initialising CUDA: torch asks the driver's NVML library
    first, so ``CUDA_VISIBLE_DEVICES`` set afterwards still takes effect."""

    return torch.cuda.device_count()


def pin_cell_gpu(params: Params, environ: MutableMapping[str, str] | None = None) -> str | None:
    """Pin a parallel cell process to one GPU: ``CUDA_VISIBLE_DEVICES`` from its ``make repro`` slot.

    ``make repro`` runs ``musicrep dag --jobs`` cells at once (``runtime.gpu_cells`` per GPU) and tells
    each its slot in :data:`CELL_SLOT_VAR`; slot ``i`` gets GPU ``i // gpu_cells`` (of those already in
    ``CUDA_VISIBLE_DEVICES``, when set), so every GPU carries ``gpu_cells`` cells instead of all cells
    landing on GPU 0. Nothing changes outside ``make repro``, on the CPU, under torchrun, or with one GPU.
    Call it before anything asks torch about CUDA. Returns the device id it set, or ``None``.
    """
    environ = os.environ if environ is None else environ
    slot = environ.get(CELL_SLOT_VAR)
    if slot is None or params.runtime.device == "cpu" or int(environ.get("WORLD_SIZE", "1")) > 1:
        return None
    gpus = visible_gpus()
    if gpus < 2:
        return None
    listed = [d.strip() for d in environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    ids = listed if len(listed) == gpus else [str(i) for i in range(gpus)]
    device = ids[gpu_for_slot(int(slot), gpus, params.runtime.gpu_cells)]
    environ["CUDA_VISIBLE_DEVICES"] = device
    log.info("cell slot %s of make repro: pinned to GPU %s of %d (CUDA_VISIBLE_DEVICES=%s)", slot, device, gpus, device)
    return device


class GpuSlots:
    """The GPUs of one process, lent to the grid cells that run in its threads (the flow's thread runner).

    A cell holds one GPU while it runs, at most ``per_gpu`` cells a GPU, the least busy first (ties go
    to the first GPU at or after ``first``), and waits while every GPU is full. Without it every cell
    of the process would train on the current device, GPU 0.
    """

    def __init__(self, gpus: int, per_gpu: int = 1, first: int = 0) -> None:
        if gpus < 1 or per_gpu < 1:
            raise ValueError(f"GpuSlots needs at least one GPU and one cell a GPU, got {gpus} and {per_gpu}")
        self.busy = [0] * gpus
        self.per_gpu = per_gpu
        self.order = [(first + i) % gpus for i in range(gpus)]
        self._changed = threading.Condition()

    @contextlib.contextmanager
    def hold(self) -> Iterator[int]:
        """Wait for a GPU with room, hold it for the ``with`` block; yields its index."""
        with self._changed:
            self._changed.wait_for(lambda: min(self.busy) < self.per_gpu)
            index = min(self.order, key=lambda i: self.busy[i])
            self.busy[index] += 1
        try:
            yield index
        finally:
            with self._changed:
                self.busy[index] -= 1
                self._changed.notify_all()


_PROCESS_SLOTS: dict[tuple[int, int], GpuSlots] = {}
_PROCESS_SLOTS_LOCK = threading.Lock()
"""One :class:`GpuSlots` per process (and GPU count, cells a GPU): the process's record of the GPUs its
threads hold. Process-wide by nature: the threads of one flow run share the process's GPUs."""


def _worker_index() -> int:
    """This Dask worker's number (a local cluster names them 0, 1, ...), else 0: where its GPU search starts."""
    distributed = sys.modules.get("distributed")
    try:
        name = distributed.get_worker().name if distributed is not None else 0
    except ValueError:  # not inside a Dask worker
        return 0
    return name if isinstance(name, int) else 0


def process_gpu_slots(params: Params) -> GpuSlots | None:
    """This process's :class:`GpuSlots` when its cells run on CUDA and it sees several GPUs, else None
    (the CPU, one GPU, torchrun, or a ``make repro`` cell that :func:`pin_cell_gpu` pinned to one)."""
    if params.runtime.device == "cpu" or int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return None
    gpus = visible_gpus()
    if gpus < 2 or not cells_on_cuda(params):
        return None
    key = (gpus, params.runtime.gpu_cells)
    with _PROCESS_SLOTS_LOCK:
        if key not in _PROCESS_SLOTS:
            _PROCESS_SLOTS[key] = GpuSlots(gpus, params.runtime.gpu_cells, first=_worker_index())
        return _PROCESS_SLOTS[key]


@contextlib.contextmanager
def cell_gpu(params: Params, label: str = "cell") -> Iterator[int | None]:
    """Run the ``with`` block (a grid cell in this thread) on one GPU of the process: ``torch.cuda.device``
    makes it the current device, which ``runtime.device: cuda``/``auto`` use. Yields the GPU index, or
    None where :func:`process_gpu_slots` has nothing to share (the block then runs as it would)."""
    slots = process_gpu_slots(params)
    if slots is None:
        yield None
        return
    with slots.hold() as index, torch.cuda.device(index):
        log.info("%s on GPU %d of %d (cells per GPU: %d)", label, index, len(slots.busy), slots.per_gpu)
        yield index


@contextlib.contextmanager
def gpu_request(params: Params, runner: TaskRunner | None) -> Iterator[None]:
    """Tasks submitted in the ``with`` block ask a Ray runner for ``1 / runtime.gpu_cells`` GPU each.

    Ray hides every GPU from a task that asks for none (``CUDA_VISIBLE_DEVICES=''``), so a GPU cell
    would train on the CPU; asked for a share, Ray gives it one GPU of its own. Other runners: nothing.
    """
    if runner is None or type(runner).__name__ != CLUSTER_RUNNERS["ray"].class_name:
        yield
        return
    with optional_module("prefect_ray").context.remote_options(num_gpus=1 / params.runtime.gpu_cells):
        yield


def ensure_gpu_limit(slots: int) -> None:
    """Create or update the Prefect tag concurrency limit ``gpu`` to ``slots`` (on the API in force)."""

    with prefect_client.get_client(sync_client=True) as client:
        client.create_concurrency_limit(tag=GPU_TAG, concurrency_limit=slots)  # an upsert on Prefect >= 3.4
    log.info("Prefect concurrency limit %r: %d GPU cell(s) at once", GPU_TAG, slots)
