"""runtime.device resolved in one place, and the cells `make repro` runs at once (issue 27, deliverable 2)."""

from __future__ import annotations

import logging
import os
import subprocess

import pytest
import torch

from pipeline.config.params import load_params
from pipeline.core.errors import UserError
from pipeline.models import device as device_mod
from pipeline.models.device import pick_device
from pipeline.orchestration import cell as cell_stage
from pipeline.orchestration.runners import CELL_SLOT_VAR, cell_slots, pin_cell_gpu
from tests.conftest import REPO
from tests.test_faults import _cli


@pytest.fixture
def no_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture
def gpus(monkeypatch: pytest.MonkeyPatch):
    """Pretend ``n`` CUDA GPUs are visible."""

    def fake(n: int) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: n)
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda *_: "NVIDIA H100 80GB HBM3")

    return fake


@pytest.mark.fast
def test_cuda_without_cuda_is_one_line_naming_the_cuda_state(no_cuda: None) -> None:
    with pytest.raises(UserError, match=r"runtime.device is cuda but torch.cuda.is_available\(\) is False") as err:
        pick_device("cuda")
    message = str(err.value)
    assert "\n" not in message and "driver:" in message and "--set runtime.device=cpu" in message
    assert (f"CUDA {torch.version.cuda}" if torch.version.cuda else "built without CUDA") in message


@pytest.mark.fast
def test_paper_profile_refuses_the_cpu_unless_asked(no_cuda: None) -> None:
    with pytest.raises(UserError, match="profile paper is meant for a GPU.*--set runtime.device=cpu"):
        pick_device("auto", profile="paper")
    assert pick_device("cpu", profile="paper").type == "cpu"
    assert pick_device("auto", profile="smoke").type == "cpu"


@pytest.mark.fast
def test_auto_logs_the_device_it_chose(no_cuda: None, caplog: pytest.LogCaptureFixture) -> None:
    device_mod._log_choice.cache_clear()
    with caplog.at_level(logging.INFO, logger="pipeline.models.device"):
        pick_device("auto")
    assert "runtime.device auto: running on cpu (torch.cuda.is_available() is False" in caplog.text


@pytest.mark.fast
@pytest.mark.parametrize("n_gpus,per_gpu,expected", [(1, 1, 1), (1, 2, 2), (4, 1, 4), (0, 1, 1)])
def test_cells_at_once_on_cuda_are_gpu_cells_per_gpu(gpus, n_gpus: int, per_gpu: int, expected: int) -> None:
    gpus(n_gpus)
    p = load_params(REPO / "params.yaml", overrides={"runtime": {"device": "cuda", "gpu_cells": per_gpu}})
    assert cell_slots(p, cpus=16) == expected


@pytest.mark.fast
def test_cells_at_once_on_cpu_are_the_cpus(no_cuda: None) -> None:
    p = load_params(REPO / "params.yaml", overrides={"runtime": {"device": "auto"}})
    assert cell_slots(p, cpus=16) == 16


@pytest.mark.fast
def test_dag_jobs_exits_2_with_one_line_when_cuda_is_missing(no_cuda: None, monkeypatch, capsys) -> None:
    code, err = _cli(monkeypatch, capsys, "--project", str(REPO), "--set", "runtime.device=cuda", "dag", "--jobs")
    assert code == 2 and len(err) == 1 and "runtime.device is cuda" in err[0]


@pytest.mark.skipif(torch.cuda.is_available(), reason="counts the cores of a machine without CUDA")
def test_make_repro_runs_the_cells_musicrep_counts() -> None:
    """`make -n repro` shows `xargs -P <musicrep dag --jobs>`: here, without CUDA, one cell per core."""
    env = {**os.environ, "PATH": f"{REPO / '.venv' / 'bin'}:{os.environ['PATH']}"}
    dry = subprocess.run(["make", "-n", "-o", ".venv/.installed", "repro"], cwd=REPO, capture_output=True, text=True, env=env)
    assert f"xargs -P {len(os.sched_getaffinity(0))} " in dry.stdout, dry.stdout + dry.stderr
    assert "musicrep dag --jobs >/dev/null" in dry.stdout  # the device check runs before the data stages
    assert f"--process-slot-var={CELL_SLOT_VAR} -I{{}}" in dry.stdout  # each cell's slot: its GPU (pin_cell_gpu)


@pytest.mark.fast
@pytest.mark.parametrize("n_gpus,per_gpu,expected", [(4, 1, "0123"), (4, 2, "00112233"), (2, 1, "0101"), (2, 3, "000111")])
def test_parallel_cells_are_pinned_one_gpu_each(gpus, n_gpus: int, per_gpu: int, expected: str) -> None:
    """make repro's slot i -> CUDA_VISIBLE_DEVICES = i // runtime.gpu_cells (mod the GPUs); only the GPU count is faked."""
    gpus(n_gpus)
    p = load_params(REPO / "params.yaml", overrides={"runtime": {"device": "cuda", "gpu_cells": per_gpu}})
    pinned = ""
    for slot in range(len(expected)):
        environ = {CELL_SLOT_VAR: str(slot)}
        assert pin_cell_gpu(p, environ) == environ["CUDA_VISIBLE_DEVICES"]
        pinned += environ["CUDA_VISIBLE_DEVICES"]
    assert pinned == expected


@pytest.mark.fast
def test_pinning_keeps_to_the_users_gpus_and_stays_out_of_the_way(gpus) -> None:
    gpus(2)
    p = load_params(REPO / "params.yaml", overrides={"runtime": {"device": "auto", "gpu_cells": 1}})
    environ = {CELL_SLOT_VAR: "1", "CUDA_VISIBLE_DEVICES": "5,7"}
    assert pin_cell_gpu(p, environ) == "7" and environ["CUDA_VISIBLE_DEVICES"] == "7"  # the second of the user's two
    assert pin_cell_gpu(p, {}) is None  # not a make repro cell
    assert pin_cell_gpu(p, {CELL_SLOT_VAR: "1", "WORLD_SIZE": "2"}) is None  # torchrun places its ranks itself
    cpu = load_params(REPO / "params.yaml", overrides={"runtime": {"device": "cpu"}})
    assert pin_cell_gpu(cpu, {CELL_SLOT_VAR: "1"}) is None
    gpus(1)
    assert pin_cell_gpu(p, {CELL_SLOT_VAR: "3"}) is None  # one GPU: nothing to choose


@pytest.mark.fast
def test_musicrep_cell_pins_itself_before_the_cell_runs(gpus, monkeypatch, capsys) -> None:
    """The command `make repro` runs per cell (`musicrep cell`) sets CUDA_VISIBLE_DEVICES from its slot first."""
    gpus(2)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)  # restored (absent) after the test
    monkeypatch.setenv(CELL_SLOT_VAR, "1")
    seen = {}
    monkeypatch.setattr(
        cell_stage, "cell", lambda *a, **k: seen.setdefault("visible", os.environ.get("CUDA_VISIBLE_DEVICES")) and {}
    )
    code, err = _cli(monkeypatch, capsys, "--project", str(REPO), "--set", "runtime.device=cuda", "cell", "synth_keywords", "fcn")
    assert code == 0 and seen == {"visible": "1"}, err


# --- the Prefect flow's thread runner: cells in one process share its GPUs -------------------------------


@pytest.mark.fast
def test_gpu_slots_lend_the_least_busy_gpu_and_wait_when_all_are_full() -> None:
    import threading

    from pipeline.orchestration.runners import GpuSlots

    slots = GpuSlots(gpus=2, per_gpu=1)
    with slots.hold() as a, slots.hold() as b:
        assert {a, b} == {0, 1} and slots.busy == [1, 1]
        got: list[int] = []
        waiter = threading.Thread(target=lambda: got.extend(slots.hold().__enter__() for _ in range(1)))
        waiter.start()
        waiter.join(timeout=0.3)
        assert waiter.is_alive() and got == []  # both GPUs full: the third cell waits
    waiter.join(timeout=5)
    assert got == [0]  # the first GPU freed (ties go to the first)
    assert GpuSlots(gpus=3, per_gpu=2, first=2).order == [2, 0, 1]  # a Dask worker k starts at GPU k
    with pytest.raises(ValueError, match="at least one GPU"):
        GpuSlots(gpus=0)


@pytest.mark.fast
def test_flow_cells_in_threads_each_take_a_gpu_of_their_own(gpus, monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """Two cells running at once in the thread runner's threads train on GPUs 0 and 1, not both on GPU 0."""
    import contextlib
    import threading

    import yaml

    import pipeline.flows.pipeline_flow as flow_mod
    from pipeline.orchestration import runners

    gpus(2)
    monkeypatch.setattr(runners, "_PROCESS_SLOTS", {})
    current: dict[str, int] = {}
    both_running = threading.Barrier(2, timeout=10)

    @contextlib.contextmanager
    def fake_device(index: int):  # torch.cuda.device without a driver: record the thread's current GPU
        current[threading.current_thread().name] = index
        yield

    def fake_cell(dataset, model, params, layout, **kw):
        both_running.wait()  # the two cells overlap, as under a thread runner with 2 workers
        return {"gpu": current[threading.current_thread().name]}

    monkeypatch.setattr(runners.torch.cuda, "device", fake_device)
    monkeypatch.setattr(flow_mod.stages, "cell", fake_cell)
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"profile": "smoke", "runtime": {"device": "cuda"}}))
    results: list[dict] = []
    threads = [
        threading.Thread(
            target=lambda m=m: results.append(flow_mod.cell_task.fn("synth_keywords", m, 0, str(params), str(tmp_path)))
        )
        for m in ("fcn", "hcnn")
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert sorted(r["gpu"] for r in results) == [0, 1]
    gpus(1)
    monkeypatch.setattr(runners, "_PROCESS_SLOTS", {})
    assert runners.process_gpu_slots(load_params(params)) is None  # one GPU: nothing to share


@pytest.mark.fast
def test_gpu_cells_on_ray_ask_for_their_gpu_share() -> None:
    """Ray hides the GPUs from a task that asks none: GPU cells submitted on a Ray runner ask 1 / gpu_cells each."""
    pytest.importorskip("prefect_ray")
    from prefect.task_runners import ThreadPoolTaskRunner
    from prefect_ray.context import RemoteOptionsContext
    from prefect_ray.task_runners import RayTaskRunner

    from pipeline.orchestration.runners import gpu_request

    p = load_params(REPO / "params.yaml", overrides={"runtime": {"device": "cuda", "gpu_cells": 2}})
    with gpu_request(p, RayTaskRunner()):
        assert RemoteOptionsContext.get().current_remote_options == {"num_gpus": 0.5}
    assert RemoteOptionsContext.get().current_remote_options == {}
    for other in (ThreadPoolTaskRunner(), None):  # threads borrow a GPU in the task itself (cell_gpu)
        with gpu_request(p, other):
            assert RemoteOptionsContext.get().current_remote_options == {}
