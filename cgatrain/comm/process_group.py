"""Process-group setup and teardown: the one place that knows how agents find each other."""

from __future__ import annotations

import datetime
import inspect
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.distributed as dist

# Step ids of a batch script's own shell (batch, extern), where cgatrain spawns agents itself.
SLURM_NON_SRUN_STEPS = ("batch", "extern", "4294967294", "4294967295")


@dataclass(frozen=True)
class LaunchEnv:
    """Where this process sits in the run, as told by the launcher that started it."""

    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    launcher: str  # "spawn", "torchrun" or "slurm"
    run_id: str | None = None
    master_addr: str | None = None
    master_port: int | None = None


def slurm_first_host(nodelist: str) -> str:
    """First host of a Slurm node list such as ``gpu[003-005,009],cpu01`` (gives ``gpu003``)."""
    first = re.match(r"([^,\[]+)(\[([^\]]+)\])?", nodelist.strip())
    if first is None or not first.group(1):
        raise ValueError(f"cannot parse SLURM node list {nodelist!r}")
    prefix, ranges = first.group(1), first.group(3)
    if ranges is None:
        return prefix
    return prefix + ranges.split(",")[0].split("-")[0]


def _slurm_tasks_on_this_node(env: Mapping[str, str]) -> int:
    """Tasks on this node from SLURM_STEP_TASKS_PER_NODE (e.g. "4(x2),3") indexed by SLURM_NODEID."""
    counts: list[int] = []
    for part in env.get("SLURM_STEP_TASKS_PER_NODE", env.get("SLURM_TASKS_PER_NODE", "")).split(","):
        match = re.fullmatch(r"(\d+)(?:\(x(\d+)\))?", part.strip())
        if match:
            counts += [int(match.group(1))] * int(match.group(2) or 1)
    node = int(env.get("SLURM_NODEID", 0))
    return counts[node] if node < len(counts) else int(env["SLURM_NTASKS"])


def detect_launch_env(environ: Mapping[str, str] | None = None) -> LaunchEnv | None:
    """The rank layout given by torchrun (RANK/WORLD_SIZE) or srun (SLURM_PROCID/...), or None."""
    env = os.environ if environ is None else environ
    if env.get("CGATRAIN_LAUNCHER") == "spawn":
        return None
    if "RANK" in env and "WORLD_SIZE" in env and "TORCHELASTIC_RUN_ID" in env:
        return LaunchEnv(
            rank=int(env["RANK"]),
            world_size=int(env["WORLD_SIZE"]),
            local_rank=int(env.get("LOCAL_RANK", 0)),
            local_world_size=int(env.get("LOCAL_WORLD_SIZE", env["WORLD_SIZE"])),
            launcher="torchrun",
            run_id=env.get("TORCHELASTIC_RUN_ID"),
        )
    # SLURM_STEP_ID marks a task started by srun; the batch script itself runs in no step or the batch/extern step.
    if "SLURM_PROCID" in env and "SLURM_NTASKS" in env and env.get("SLURM_STEP_ID", "batch") not in SLURM_NON_SRUN_STEPS:
        job = env.get("SLURM_JOB_ID", "0")
        return LaunchEnv(
            rank=int(env["SLURM_PROCID"]),
            world_size=int(env["SLURM_NTASKS"]),
            local_rank=int(env.get("SLURM_LOCALID", 0)),
            local_world_size=_slurm_tasks_on_this_node(env),
            launcher="slurm",
            run_id=f"{job}.{env['SLURM_STEP_ID']}",
            master_addr=env.get("MASTER_ADDR") or slurm_first_host(env.get("SLURM_JOB_NODELIST", "localhost")),
            # A port derived from the job id lets every task agree without talking.
            master_port=int(env.get("MASTER_PORT", 15000 + int(re.sub(r"\D", "", job) or 0) % 20000)),
        )
    return None


def choose_backend(requested: str, local_world_size: int) -> str:
    """NCCL when every local agent has its own GPU, Gloo otherwise; an explicit request wins."""
    if requested not in ("auto", "gloo", "nccl"):
        raise ValueError(f"comm.backend must be auto, gloo or nccl, not {requested!r}")
    if requested != "auto":
        return requested
    enough_gpus = torch.cuda.is_available() and torch.cuda.device_count() >= local_world_size
    return "nccl" if enough_gpus and dist.is_nccl_available() else "gloo"


def init_comm(
    backend: str,
    rank: int,
    world_size: int,
    local_rank: int,
    timeout_s: float,
    store: dist.Store | None = None,
    device: torch.device | None = None,
) -> torch.device:
    """Join the process group (env:// unless a store is given) and return this agent's compute device.

    `device` comes from `comm.devices.plan_devices`; without it, cuda:local_rank on NCCL, else the CPU.
    """
    if device is None:
        device = torch.device("cuda", local_rank) if backend == "nccl" else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    timeout = datetime.timedelta(seconds=timeout_s)
    kwargs = eager_init_kwargs(backend, device)
    if store is None:
        dist.init_process_group(backend, init_method="env://", rank=rank, world_size=world_size, timeout=timeout, **kwargs)
    else:
        dist.init_process_group(backend, store=store, rank=rank, world_size=world_size, timeout=timeout, **kwargs)
    # The first collective involves every rank, so later p2p batches cannot hang (pytorch#74701).
    warm = torch.ones(1, device=device if backend == "nccl" else "cpu")
    dist.all_reduce(warm)
    return device


def eager_init_kwargs(backend: str, device: torch.device) -> dict[str, torch.device]:
    """`device_id` for NCCL, so it builds its communicator now, not at the first collective (pytorch#108378).

    torch 2.2 has no `device_id`; there the warm-up all-reduce of `init_comm` builds it just as early.
    """
    if backend != "nccl" or "device_id" not in inspect.signature(dist.init_process_group).parameters:
        return {}
    return {"device_id": device}


def teardown_comm() -> None:
    """Leave the process group if one is up; safe to call twice."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
