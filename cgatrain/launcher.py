"""Starting agents: spawned here on 127.0.0.1, or already started by torchrun or srun."""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.forkserver
import multiprocessing.resource_tracker
import os
import signal
import sys
import threading
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from tqdm import tqdm

from cgatrain.comm import init_comm, plan_devices, teardown_comm
from cgatrain.comm.rendezvous import bounded_rendezvous, join_loopback_store, loopback_store, pin_gloo_to_loopback
from cgatrain.registry import import_exported_plugins
from cgatrain.supervisor import HANDLED_SIGNALS, AgentFailure, Supervisor
from cgatrain.train import lifecycle

__all__ = ["AgentFailure", "error_line", "run_agent", "spawn_agents"]


def run_agent(
    cfg: Mapping[str, Any],
    run_dir: Path,
    rank: int,
    world_size: int,
    local_rank: int,
    local_world_size: int,
    store: dist.Store | None = None,
    parent_pid: int | None = None,
) -> str:
    """Everything one agent process does: join the group, train, leave. Returns the run status."""
    from cgatrain.train.trainer import Trainer  # heavy imports only inside agent processes

    comm = cfg["comm"]
    timeout_s = float(comm.get("timeout_s", 180))
    life = lifecycle.current()
    life.install_signal_handlers()
    torch.set_num_threads(int(comm.get("threads_per_agent", 1)))
    # GPUs shared round-robin by the agents of a node; NCCL only when each has its own (comm/devices.py).
    plan = plan_devices(str(cfg["train"].get("device", "auto")), str(comm.get("backend", "auto")),
                        str(comm.get("staging", "auto")), local_rank, local_world_size)
    with bounded_rendezvous(rank, timeout_s, f"{store.host}:{store.port}" if isinstance(store, dist.TCPStore) else None):
        device = init_comm(plan.backend, rank, world_size, local_rank, timeout_s, store, plan.compute)
    store = store if store is not None else dist.distributed_c10d._get_default_store()
    life.start_liveness(store, rank, parent_pid)
    try:
        trainer = Trainer(cfg, run_dir, rank, world_size, device)
        trainer.setup()
        status = trainer.fit()
    except Exception as error:
        last_line = error_line(error)
        blame = lifecycle.describe_stalled(store, world_size, exclude=rank) if parent_pid is None else None
        print(f"agent {rank} failed:\n{traceback.format_exc()}" + (f"\nagent {rank}: {blame}" if blame else ""), file=sys.stderr, flush=True)
        _publish_error(store, rank, last_line)
        raise
    else:
        if status == "interrupted":
            # Leave together, after rank 0 wrote summary.json: under `srun --kill-on-bad-exit` the first
            # task to exit with the requeue status would otherwise kill rank 0 mid-write.
            with contextlib.suppress(RuntimeError):
                dist.barrier()
        return status
    finally:
        life.stop_liveness()
        teardown_comm()


def error_line(error: BaseException) -> str:
    """The error's type and the last line of its message: what names it in summaries and the store."""
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[-1] if text else ''}"


def _publish_error(store: dist.Store, rank: int, message: str) -> None:
    with contextlib.suppress(Exception):  # the store's host may be what failed
        store.set(lifecycle.ERROR_KEY.format(rank=rank), message)


def _spawned_agent(rank: int, world_size: int, store_port: int, cfg: dict[str, Any], run_dir: str, parent_pid: int) -> None:
    """Entry point of an agent process spawned by `spawn_agents` (local rank = rank)."""
    lifecycle.current().install_signal_handlers()  # before anything slow: Ctrl-C must never raise here
    signal.pthread_sigmask(signal.SIG_UNBLOCK, HANDLED_SIGNALS)  # what came since the fork arrives now
    # tqdm's default lock is a POSIX semaphore: SIGKILLed by a second Ctrl-C, the agent would leak it (a warning).
    tqdm.set_lock(threading.RLock())
    import_exported_plugins()  # a submitit job's agents: the user's registered algorithms, models...
    timeout_s = float(cfg["comm"].get("timeout_s", 180))
    pin_gloo_to_loopback()
    store = join_loopback_store(store_port, world_size, timeout_s)
    try:
        run_agent(cfg, Path(run_dir), rank, world_size, rank, world_size, store, parent_pid)
    except Exception:
        sys.exit(1)
    sys.exit(lifecycle.exit_code(lifecycle.current().agreed))


def _start_fork_server() -> None:
    """Start the fork server (and resource tracker) with the stop signals ignored and blocked.

    A signal to the whole process group (Ctrl-C, scancel, docker stop, an IDE) must not kill them,
    in the fork server's torch import or later: multiprocessing would lose the agents' exit codes
    (255). Both states survive exec and fork: an agent holds what comes before `_spawned_agent`
    installed its handlers and unblocked them. A stop signal sent to the parent in these milliseconds is
    lost (ignored, not delayed): nothing has started yet that it could stop, and a second one is heard.
    """
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED_SIGNALS)
    previous = {signum: signal.signal(signum, signal.SIG_IGN) for signum in HANDLED_SIGNALS}
    try:
        multiprocessing.resource_tracker.ensure_running()
        signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED_SIGNALS)  # the tracker unblocks SIGINT, SIGTERM when started
        multiprocessing.forkserver.ensure_running()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


def spawn_agents(cfg: dict[str, Any], run_dir: Path) -> str | None:
    """Run `cfg['agents']` agent processes on this machine and wait for all of them.

    A TCP store on a free loopback port, held here for the run's lifetime, lets agents rendezvous
    without a port race and carries their liveness beats. Returns None when the agents finished,
    or the signal that stopped them (SIGTERM, SIGINT, SIGUSR1); raises AgentFailure naming an
    agent that died, raised or stopped answering. No agent outlives this call.
    """
    world_size = int(cfg["agents"])
    timeout_s = float(cfg["comm"].get("timeout_s", 180))
    # A fork server that imported torch once starts each agent in a fraction of a second and,
    # unlike plain fork, never inherits this process's threads or CUDA state.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["cgatrain.launcher", "cgatrain.train.trainer"])
    _start_fork_server()
    store = loopback_store(world_size, timeout_s)
    processes = [
        context.Process(target=_spawned_agent, args=(rank, world_size, store.port, cfg, str(run_dir), os.getpid()), name=f"cgatrain-agent-{rank}")
        for rank in range(world_size)
    ]
    supervisor = Supervisor(processes, store, timeout_s)
    try:
        return supervisor.run()
    finally:
        supervisor.kill_all()
        del store
