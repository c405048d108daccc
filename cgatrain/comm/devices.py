"""Where an agent computes and how it talks: compute device, backend and wire device, fixed before start.

The compute device holds the model, the data shard and the algorithm's state. The wire device is
where the backend wants the tensors of a send/recv: the GPU for NCCL, the host for Gloo (whose
send/recv take CPU tensors only). When the two differ, rounds go through host staging buffers
(see `cgatrain.comm.staging`); algorithms never see the difference.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.distributed as dist

DEVICES = ("auto", "cpu", "cuda")
BACKENDS = ("auto", "gloo", "nccl")
STAGING = ("auto", "always")
# Step ids of a batch script's own shell, where SLURM_GPUS_ON_NODE does not describe srun tasks.
_NON_SRUN_STEPS = ("batch", "extern", "4294967294", "4294967295")


@dataclass(frozen=True)
class DevicePlan:
    """One agent's devices and backend."""

    compute: torch.device  # model, data and algorithm state
    backend: str  # "gloo" or "nccl"
    wire: torch.device  # where send/recv tensors must live for the backend
    staged: bool  # every round copies through separate buffers on the wire device

    @property
    def pin_memory(self) -> bool:
        """Host staging buffers are page-locked only for a GPU's copies (pinning on a CPU agent would
        create a CUDA context, hundreds of MB of GPU memory, for nothing)."""
        return self.staged and self.wire.type == "cpu" and self.compute.type == "cuda"

    def describe(self) -> str:
        """One line for the run banner."""
        how = f"staged through {'pinned ' if self.pin_memory else ''}{self.wire.type} buffers" if self.staged else "direct"
        return f"compute on {self.compute}, {self.backend} ({how})"


def visible_gpus() -> int:
    """CUDA devices this process can see (0 without CUDA)."""
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def gpus_on_node(visible: int | None = None, environ: Mapping[str, str] | None = None) -> int:
    """GPUs of this node for the agents on it.

    Under srun with `--gpus-per-task`, each task sees only its own GPU while SLURM_GPUS_ON_NODE
    counts all of them; otherwise every agent sees every GPU of the node.
    """
    env = os.environ if environ is None else environ
    count = visible_gpus() if visible is None else visible
    in_srun_step = "SLURM_PROCID" in env and env.get("SLURM_STEP_ID", "batch") not in _NON_SRUN_STEPS
    if in_srun_step and env.get("SLURM_GPUS_ON_NODE", "").isdigit() and count > 0:
        return max(count, int(env["SLURM_GPUS_ON_NODE"]))
    return count


def device_problems(device: str, backend: str, staging: str, local_agents: int, gpus: int) -> list[str]:
    """Every reason this device/backend combination cannot run, naming the config keys."""
    problems = []
    if device not in DEVICES:
        problems.append(f"train.device must be one of {DEVICES}, not {device!r}")
    if backend not in BACKENDS:
        problems.append(f"comm.backend must be auto, gloo or nccl, not {backend!r}")
    if staging not in STAGING:
        problems.append(f"comm.staging must be one of {STAGING}, not {staging!r}")
    if problems:
        return problems
    if device == "cuda" and gpus == 0:
        problems.append("train.device=cuda but no CUDA GPU is visible (torch.cuda.is_available() is False); use train.device=auto or cpu")
    on_gpu = device == "cuda" or (device == "auto" and gpus > 0)
    if backend == "nccl" and not on_gpu:
        problems.append(f"comm.backend=nccl needs agents on GPUs, but train.device={device} puts them on the CPU ({gpus} GPUs visible); use comm.backend=gloo")
    elif backend == "nccl" and local_agents > gpus:
        problems.append(
            f"comm.backend=nccl needs one GPU per agent (NCCL refuses two ranks on one GPU): {local_agents} agents on this node, "
            f"{gpus} GPUs; use comm.backend=auto or gloo to share the GPUs through host staging buffers"
        )
    elif backend == "nccl" and not dist.is_nccl_available():
        problems.append("comm.backend=nccl but this torch build has no NCCL")
    return problems


def plan_devices(device: str, backend: str, staging: str, local_rank: int, local_agents: int,
                 visible: int | None = None, node_gpus: int | None = None) -> DevicePlan:
    """The agent's plan: GPUs shared round-robin (cuda:(local_rank % gpus)), NCCL only with one GPU per agent."""
    visible = visible_gpus() if visible is None else visible
    node_gpus = gpus_on_node(visible) if node_gpus is None else node_gpus
    problems = device_problems(device, backend, staging, local_agents, node_gpus)
    if problems:
        raise ValueError("; ".join(problems))
    on_gpu = device == "cuda" or (device == "auto" and visible > 0)
    compute = torch.device("cuda", local_rank % visible) if on_gpu else torch.device("cpu")
    if backend == "auto":
        backend = "nccl" if on_gpu and local_agents <= node_gpus and dist.is_nccl_available() else "gloo"
    wire = compute if backend == "nccl" else torch.device("cpu")
    return DevicePlan(compute, backend, wire, staged=compute != wire or staging == "always")
