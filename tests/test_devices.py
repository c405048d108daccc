"""Device and backend planning: GPUs shared round-robin, NCCL only with one GPU per agent, refusals named."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
from test_config import composed

from cgatrain.comm import NeighborExchange, RoundStats, plan_devices
from cgatrain.comm.devices import device_problems, gpus_on_node
from cgatrain.comm.staging import Wire
from cgatrain.config import ConfigError, validate

NCCL = "nccl" if dist.is_nccl_available() else "gloo"


def test_cpu_only_machine_computes_on_cpu_over_gloo() -> None:
    plan = plan_devices("auto", "auto", "auto", local_rank=2, local_agents=5, visible=0, node_gpus=0)
    assert (plan.compute, plan.backend, plan.wire, plan.staged, plan.pin_memory) == (torch.device("cpu"), "gloo", torch.device("cpu"), False, False)


def test_one_gpu_per_agent_talks_nccl_directly() -> None:
    plan = plan_devices("auto", "auto", "auto", local_rank=3, local_agents=4, visible=4, node_gpus=4)
    assert plan.compute == torch.device("cuda", 3) and plan.backend == NCCL
    if NCCL == "nccl":
        assert plan.wire == plan.compute and not plan.staged


@pytest.mark.parametrize(("agents", "gpus"), [(5, 1), (5, 4), (40, 1), (40, 8)])
def test_more_agents_than_gpus_share_them_round_robin_over_staged_gloo(agents: int, gpus: int) -> None:
    plans = [plan_devices("auto", "auto", "auto", rank, agents, visible=gpus, node_gpus=gpus) for rank in range(agents)]
    assert [p.compute for p in plans] == [torch.device("cuda", rank % gpus) for rank in range(agents)]
    assert all(p.backend == "gloo" and p.wire == torch.device("cpu") and p.staged for p in plans)
    # Every GPU gets ceil or floor of agents / gpus agents.
    loads = [sum(p.compute.index == g for p in plans) for g in range(gpus)]
    assert max(loads) - min(loads) <= 1


def test_gloo_with_cuda_compute_is_allowed_and_staged() -> None:
    plan = plan_devices("cuda", "gloo", "auto", local_rank=1, local_agents=2, visible=2, node_gpus=2)
    assert plan.compute == torch.device("cuda", 1) and plan.backend == "gloo" and plan.staged
    assert "staged" in plan.describe()


def test_device_cpu_wins_over_visible_gpus() -> None:
    plan = plan_devices("cpu", "auto", "auto", local_rank=0, local_agents=2, visible=2, node_gpus=2)
    assert plan.compute == torch.device("cpu") and plan.backend == "gloo" and not plan.staged


def test_forced_staging_on_cpu_runs_the_staged_path() -> None:
    plan = plan_devices("cpu", "gloo", "always", local_rank=0, local_agents=3, visible=0, node_gpus=0)
    assert plan.staged and plan.wire == torch.device("cpu") and not plan.pin_memory  # pinning would start CUDA in a CPU agent
    assert plan_devices("cuda", "gloo", "auto", local_rank=1, local_agents=2, visible=2, node_gpus=2).pin_memory


def test_a_cpu_agent_never_pins_its_staging_buffers(monkeypatch: pytest.MonkeyPatch) -> None:
    from cgatrain.comm.staging import Wire

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a CUDA machine whose agents compute on CPUs
    wire = Wire(torch.device("cpu"), "gloo", staged=True)
    assert not wire.pool.pin_memory and not wire.async_copies
    assert "pinned" not in wire.describe()


@pytest.mark.parametrize(
    ("device", "backend", "staging", "agents", "gpus", "message"),
    [
        ("auto", "nccl", "auto", 5, 4, "comm.backend=nccl needs one GPU per agent (NCCL refuses two ranks on one GPU): 5 agents on this node, 4 GPUs"),
        ("cuda", "nccl", "auto", 40, 1, "40 agents on this node, 1 GPUs"),
        ("cuda", "auto", "auto", 2, 0, "train.device=cuda but no CUDA GPU is visible"),
        ("cpu", "nccl", "auto", 1, 2, "comm.backend=nccl needs agents on GPUs, but train.device=cpu"),
        ("auto", "nccl", "auto", 1, 0, "comm.backend=nccl needs agents on GPUs"),
        ("tpu", "auto", "auto", 1, 0, "train.device must be one of"),
        ("auto", "mpi", "auto", 1, 0, "comm.backend must be auto, gloo or nccl"),
        ("auto", "auto", "never", 1, 0, "comm.staging must be one of"),
    ],
)
def test_impossible_combinations_are_refused_with_the_reason(device: str, backend: str, staging: str, agents: int, gpus: int, message: str) -> None:
    problems = device_problems(device, backend, staging, agents, gpus)
    assert any(message in problem for problem in problems), problems
    with pytest.raises(ValueError, match="comm.backend|train.device|comm.staging"):
        plan_devices(device, backend, staging, 0, agents, visible=gpus, node_gpus=gpus)


def test_srun_gpus_per_task_counts_the_node_gpus() -> None:
    srun = {"SLURM_PROCID": "3", "SLURM_STEP_ID": "0", "SLURM_GPUS_ON_NODE": "4"}
    assert gpus_on_node(1, srun) == 4  # each task sees only its own GPU
    assert gpus_on_node(1, {**srun, "SLURM_STEP_ID": "batch"}) == 1
    assert gpus_on_node(0, srun) == 0
    plan = plan_devices("auto", "auto", "auto", local_rank=3, local_agents=4, visible=1, node_gpus=4)
    assert plan.compute == torch.device("cuda", 0) and plan.backend == NCCL


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusals of a machine without CUDA")
def test_config_refuses_cuda_and_nccl_before_start_on_a_cpu_machine() -> None:
    with pytest.raises(ConfigError) as error:
        validate(composed("train.device=cuda", "agents=3"))
    assert "train.device=cuda but no CUDA GPU is visible" in str(error.value)
    with pytest.raises(ConfigError) as error:
        validate(composed("comm.backend=nccl", "agents=3"))
    assert "comm.backend=nccl needs agents on GPUs" in str(error.value)
    validate(composed("train.device=cpu", "comm.staging=always", "agents=3"))


class _FixedStall:
    """Stands in for the CUDA events around an NCCL round's stream wait."""

    def seconds(self) -> float:
        return 0.25


def test_nccl_rounds_count_the_stream_stall_not_host_time() -> None:
    wire = Wire(torch.device("cpu"), "gloo", staged=False)
    wire.stream_timed = True  # as for NCCL on a GPU, where the host never blocks in a round
    exchange = NeighborExchange(0, 1, torch.device("cpu"), wire=wire)
    exchange.stats["model"] = RoundStats()
    exchange._count_seconds("model", 5.0, _FixedStall())  # type: ignore[arg-type]
    exchange._count_seconds("model", 7.0, None)  # host seconds of an NCCL round mean nothing
    assert exchange.stats["model"].seconds == 0.0  # read lazily, not at wait()
    assert exchange.total_seconds() == 0.25
    assert exchange.state_dict()["model"]["seconds"] == 0.25


def test_host_rounds_count_host_seconds() -> None:
    exchange = NeighborExchange(0, 1, torch.device("cpu"), wire=Wire(torch.device("cpu"), "gloo", staged=True))
    exchange.stats["model"] = RoundStats()
    exchange._count_seconds("model", 0.5, None)
    assert exchange.total_seconds() == 0.5 and "staging buffers" in exchange.wire.describe()


def test_cuda_compute_over_gloo_must_be_staged() -> None:
    with pytest.raises(ValueError, match="must be staged"):
        Wire(torch.device("cuda", 0), "gloo", staged=False)


def test_nccl_gets_device_id_for_eager_setup_where_torch_has_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from cgatrain.comm import process_group

    gpu = torch.device("cuda", 1)
    assert process_group.eager_init_kwargs("gloo", gpu) == {}
    assert process_group.eager_init_kwargs("nccl", gpu) == {"device_id": gpu}  # torch >= 2.3

    def init_without_device_id(backend=None, init_method=None, timeout=None, world_size=-1, rank=-1, store=None):  # torch 2.2's signature
        raise AssertionError("not called")

    monkeypatch.setattr(process_group.dist, "init_process_group", init_without_device_id)
    assert process_group.eager_init_kwargs("nccl", gpu) == {}
