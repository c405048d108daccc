"""Warn before spawning when the agents far outnumber the CPU cores or GPUs this machine offers."""

from __future__ import annotations

import os

# Above this many agent threads per core, steps slow down and timings mostly measure time-sharing.
THREADS_PER_CORE_LIMIT = 4


def available_cores() -> int:
    """CPU cores this process may run on (respects taskset, cgroups' cpusets and Slurm's binding)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def oversubscription_warning(agents: int, threads_per_agent: int, cores: int, gpus: int) -> str | None:
    """One warning line naming the numbers, or None when the machine can hold the agents."""
    problems = []
    threads = agents * threads_per_agent
    if threads > THREADS_PER_CORE_LIMIT * cores:
        problems.append(f"agents={agents} x comm.threads_per_agent={threads_per_agent} = {threads} threads on {cores} CPU core(s) "
                        f"(more than {THREADS_PER_CORE_LIMIT} per core): every step will wait for a core, and timings will mostly measure that")
    if 0 < gpus < agents:
        problems.append(f"agents={agents} but {gpus} GPU(s) visible: NCCL needs one GPU per agent, so agents will share devices or run on Gloo")
    if not problems:
        return None
    return "warning: " + "; ".join(problems) + ". Use fewer agents, or more nodes (torchrun, srun, hydra/launcher=submitit_slurm)."


def check_capacity(agents: int, threads_per_agent: int) -> str | None:
    """The warning for this machine, if any."""
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return oversubscription_warning(agents, threads_per_agent, available_cores(), gpus)
