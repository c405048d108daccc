"""Process-group setup and teardown: the one place that knows how agents find each other."""

from __future__ import annotations

import datetime
import inspect

import torch
import torch.distributed as dist

from cgatrain.comm.launch_env import LaunchEnv, detect_launch_env, slurm_first_host

__all__ = ["LaunchEnv", "choose_backend", "detect_launch_env", "init_comm", "slurm_first_host", "teardown_comm"]

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
