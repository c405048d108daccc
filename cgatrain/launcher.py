"""Starting agents: spawned here on 127.0.0.1, or already started by torchrun or srun."""

from __future__ import annotations

import datetime
import multiprocessing
import os
import signal
import sys
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from cgatrain.comm import init_comm, plan_devices, teardown_comm


class AgentFailure(RuntimeError):
    """An agent process died or raised; the message names the agent."""

    def __init__(self, message: str, agent: int) -> None:
        super().__init__(message)
        self.agent = agent


def run_agent(
    cfg: Mapping[str, Any],
    run_dir: Path,
    rank: int,
    world_size: int,
    local_rank: int,
    local_world_size: int,
    store: dist.Store | None = None,
) -> str:
    """Everything one agent process does: join the group, train, leave. Returns the run status."""
    from cgatrain.train.trainer import Trainer  # heavy imports only inside agent processes

    comm = cfg["comm"]
    torch.set_num_threads(int(comm.get("threads_per_agent", 1)))
    # GPUs shared round-robin by the agents of a node; NCCL only when each has its own (comm/devices.py).
    plan = plan_devices(str(cfg["train"].get("device", "auto")), str(comm.get("backend", "auto")),
                        str(comm.get("staging", "auto")), local_rank, local_world_size)
    device = init_comm(plan.backend, rank, world_size, local_rank, float(comm.get("timeout_s", 180)), store, plan.compute)
    try:
        trainer = Trainer(cfg, run_dir, rank, world_size, device)
        trainer.setup()
        status = trainer.fit()
    except Exception:
        print(f"agent {rank} failed:\n{traceback.format_exc()}", file=sys.stderr, flush=True)
        raise
    else:
        return status
    finally:
        teardown_comm()


def _spawned_agent(rank: int, world_size: int, store_port: int, cfg: dict[str, Any], run_dir: str) -> None:
    """Entry point of an agent process spawned by `spawn_agents` (local rank = rank)."""
    timeout = datetime.timedelta(seconds=float(cfg["comm"].get("timeout_s", 180)))
    store = dist.TCPStore("127.0.0.1", store_port, world_size, is_master=False, timeout=timeout)
    run_agent(cfg, Path(run_dir), rank, world_size, rank, world_size, store)


def _describe_exit(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        return f"was killed by {signal.Signals(-exitcode).name}"
    return f"exited with code {exitcode}"


def spawn_agents(cfg: dict[str, Any], run_dir: Path, poll_seconds: float = 0.5) -> None:
    """Run `cfg['agents']` agent processes on this machine and wait for all of them.

    A TCP store on a free port, held here for the run's lifetime, lets agents rendezvous without
    a port race; if any agent dies or raises, the others are stopped and AgentFailure names it.
    """
    world_size = int(cfg["agents"])
    timeout = datetime.timedelta(seconds=float(cfg["comm"].get("timeout_s", 180)))
    store = dist.TCPStore("127.0.0.1", 0, world_size, is_master=True, wait_for_workers=False, timeout=timeout)
    # A fork server that imported torch once starts each agent in a fraction of a second and,
    # unlike plain fork, never inherits this process's threads or CUDA state.
    multiprocessing.get_context("forkserver").set_forkserver_preload(["cgatrain.launcher", "cgatrain.train.trainer"])
    context = mp.start_processes(
        _spawned_agent,
        args=(world_size, store.port, cfg, str(run_dir)),
        nprocs=world_size,
        join=False,
        start_method="forkserver",
    )
    try:
        while not context.join(timeout=poll_seconds):
            pass
    except mp.ProcessExitedException as error:
        raise AgentFailure(f"agent {error.error_index} (pid {error.error_pid}) {_describe_exit(error.exit_code)}", error.error_index) from None
    except mp.ProcessRaisedException as error:
        last_line = str(error).strip().splitlines()[-1] if str(error).strip() else "raised an exception"
        raise AgentFailure(f"agent {error.error_index} (pid {error.error_pid}) failed: {last_line}", error.error_index) from None
    finally:
        for process in context.processes:
            if process.is_alive():
                process.kill()
        del store

