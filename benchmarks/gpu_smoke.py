"""Seconds-long checks that a GPU machine does what every GPU test and benchmark assumes.

Run first by `benchmarks/gpu_suite.sh --part tests`, so that a machine that cannot pin host memory,
run Gloo between processes on 127.0.0.1 or start NCCL says so in one line each, instead of in
minutes of hanging or failing tests. Prints `ok` or `FAILED` and the seconds for each check; exits 1
if any failed, 2 without CUDA. `--cpu` runs the Gloo check alone on CPU tensors (tests of this script).

    python benchmarks/gpu_smoke.py [--cpu]
"""

from __future__ import annotations

import datetime
import functools
import socket
import sys
import time
import traceback
from collections.abc import Callable

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

TIMEOUT = datetime.timedelta(seconds=60)


def pinned_round_trip() -> str:
    """Pinned host -> GPU -> pinned host with non_blocking copies, as the staged wire does."""
    source = torch.arange(1 << 20, dtype=torch.float32).pin_memory()
    on_gpu = source.to("cuda", non_blocking=True)
    back = torch.empty_like(source).pin_memory()
    back.copy_(on_gpu * 2, non_blocking=True)
    torch.cuda.current_stream().synchronize()
    assert torch.equal(back, source * 2), "values changed on the way"
    return f"{source.numel() * 4 / 1e6:.0f} MB each way"


def _gloo_agent(rank: int, port: int, device: str) -> None:
    if device == "cuda":
        torch.cuda.set_device(0)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2, timeout=TIMEOUT)
    try:
        total = torch.full((4,), float(rank + 1), device=device)
        dist.all_reduce(total)  # metrics and lifecycle collectives pass CUDA tensors to Gloo
        assert total.tolist() == [3.0] * 4, total
        message = torch.full((1024,), float(rank), pin_memory=device == "cuda")
        if rank == 0:
            dist.send(message, 1)
        else:
            dist.recv(message, 0)
            assert float(message[0]) == 0.0
        dist.barrier()
    finally:
        dist.destroy_process_group()


def gloo_two_processes(device: str = "cuda") -> str:
    """Two spawned agents on cuda:0 join a Gloo group on 127.0.0.1: all-reduce on CUDA tensors, send/recv on the host."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mp.start_processes(_gloo_agent, args=(port, device), nprocs=2, start_method="spawn", join=True)
    return "2 agents sharing cuda:0" if device == "cuda" else "2 agents on CPUs"


def nccl_world_of_one() -> str:
    """NCCL initializes eagerly on cuda:0 (world size 1, as on a one-GPU machine) and all-reduces."""
    store = dist.HashStore()
    dist.init_process_group("nccl", store=store, rank=0, world_size=1, timeout=TIMEOUT, device_id=torch.device("cuda", 0))
    try:
        value = torch.ones(8, device="cuda")
        dist.all_reduce(value)
        torch.cuda.synchronize()
        assert value.tolist() == [1.0] * 8
    finally:
        dist.destroy_process_group()
    return f"NCCL {'.'.join(map(str, torch.cuda.nccl.version()))}"


def main(argv: list[str]) -> int:
    if argv == ["--cpu"]:
        checks: list[Callable[[], str]] = [functools.partial(gloo_two_processes, "cpu")]
    elif argv:
        print(__doc__, file=sys.stderr)
        return 2
    elif not torch.cuda.is_available():
        print("gpu_smoke: no CUDA GPU visible", file=sys.stderr)
        return 2
    else:
        checks = [pinned_round_trip, gloo_two_processes, nccl_world_of_one]
    failed = 0
    for check in checks:
        started, name = time.perf_counter(), getattr(check, "__name__", None) or check.func.__name__
        try:
            detail = check()
            print(f"{name:22s} ok      {time.perf_counter() - started:6.1f} s  {detail}", flush=True)
        except Exception as error:
            failed += 1
            print(f"{name:22s} FAILED  {time.perf_counter() - started:6.1f} s  {type(error).__name__}: {error}", flush=True)
            traceback.print_exc()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
