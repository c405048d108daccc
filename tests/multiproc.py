"""Run a function in several Gloo processes on 127.0.0.1 and collect what each returns, bounded in time."""

from __future__ import annotations

import datetime
import multiprocessing
import pickle
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from cgatrain.comm import init_comm, teardown_comm


def _worker(rank: int, world_size: int, port: int, fn: Callable[..., Any], args: tuple, out_dir: str,
            backend: str = "gloo", on_gpu: bool = False) -> None:
    torch.set_num_threads(1)
    store = dist.TCPStore("127.0.0.1", port, world_size, is_master=False, timeout=datetime.timedelta(seconds=60))
    # On GPUs, agents share them round-robin as the launcher places them.
    device = torch.device("cuda", rank % torch.cuda.device_count()) if on_gpu else None
    init_comm(backend, rank, world_size, rank, 60.0, store, device)
    try:
        result = fn(rank, world_size, *args)
        # A finished Gloo send may still be unread: leave only once every agent has its last messages.
        dist.barrier()
    finally:
        teardown_comm()
    Path(out_dir, f"rank{rank}.pkl").write_bytes(pickle.dumps(result))


def run_agents(fn: Callable[..., Any], world_size: int, tmp_path: Path, *args: Any, timeout_s: float = 120.0,
               backend: str = "gloo", on_gpu: bool = False) -> list[Any]:
    """Call fn(rank, world_size, *args) in `world_size` processes; return their results by rank.

    `fn` must be importable (defined at module level); a hang past `timeout_s` kills the workers and fails.
    `on_gpu` sets each worker's CUDA device to cuda:(rank % GPUs) before the group is joined.
    """
    store = dist.TCPStore("127.0.0.1", 0, world_size, is_master=True, wait_for_workers=False)
    # Workers fork from a server that imported torch once, instead of each importing it again.
    multiprocessing.get_context("forkserver").set_forkserver_preload(["torch", "cgatrain.algorithms", "cgatrain.topology"])
    context = mp.start_processes(_worker, args=(world_size, store.port, fn, args, str(tmp_path), backend, on_gpu), nprocs=world_size, join=False, start_method="forkserver")
    deadline = time.monotonic() + timeout_s
    try:
        while not context.join(timeout=0.5):
            if time.monotonic() > deadline:
                raise TimeoutError(f"agents still running after {timeout_s} s")
    finally:
        for process in context.processes:
            if process.is_alive():
                process.kill()
    return [pickle.loads(Path(tmp_path, f"rank{rank}.pkl").read_bytes()) for rank in range(world_size)]


def stop_and_resume(build: Callable[[bool], tuple[Any, Any]], finish_before_saving: bool = False,
                    steps: int = 6, stop_after: int = 3, lr: float = 0.05) -> tuple[torch.Tensor, torch.Tensor]:
    """An agent's parameters after `steps` steps straight, and after `stop_after` steps, a state_dict round
    trip into fresh objects and the rest; `build(resumed)` returns a fresh (FlatModel, Algorithm)."""
    model, algorithm = build(False)
    for step in range(steps):
        algorithm.step(lr, step, 0)
    uninterrupted = model.params.clone()
    model, algorithm = build(False)
    for step in range(stop_after):
        algorithm.step(lr, step, 0)
    if finish_before_saving:
        algorithm.finish(stop_after, 0)  # the end of a finished run, which is then extended
    saved_params, saved_state = model.params.clone(), {k: v.clone() for k, v in algorithm.state_dict().items()}
    model, algorithm = build(True)
    model.params.copy_(saved_params)
    algorithm.load_state_dict(saved_state)
    for step in range(stop_after, steps):
        algorithm.step(lr, step, 0)
    return uninterrupted, model.params.clone()
