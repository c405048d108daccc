"""Where this process sits in a run, as its launcher (torchrun, srun, or cgatrain itself) says.

Free of torch, so that the `cgatrain` command can decide what to do before paying for importing it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

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
