"""Shared plumbing for the benchmarks: spawn Gloo workers on 127.0.0.1, time, tabulate, save JSON."""

from __future__ import annotations

import datetime
import json
import os
import pickle
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from cgatrain.comm import init_comm, teardown_comm

Worker = Callable[[int, int, dict[str, Any]], Any]
RESULT_FILE = "rank0.pkl"


def agent_device(rank: int, options: dict[str, Any]) -> torch.device:
    """The compute device of agent `rank`: the CPU, or cuda:(rank % gpus) as the launcher shares GPUs."""
    if options.get("device", "cpu") != "cuda":
        return torch.device("cpu")
    gpus = int(options.get("gpus") or torch.cuda.device_count())
    return torch.device("cuda", rank % gpus)


def refuse_missing_gpus(device: str, gpus: int | None) -> None:
    """Exit 2 in the parent, before any agent spawns, when `--device cuda` asks for GPUs that are not visible."""
    if device != "cuda":
        return
    visible = torch.cuda.device_count()
    if visible == 0:
        message = "--device cuda but no CUDA GPU is visible; use --device cpu"
    elif gpus is not None and not 1 <= gpus <= visible:
        message = f"--gpus {gpus} but {visible} CUDA GPU(s) are visible"
    else:
        return
    print(f"{Path(sys.argv[0]).name}: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def synchronize(device: torch.device) -> None:
    """Wait for the GPU, so that wall-clock timings cover the kernels they launched (no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _entry(rank: int, worker: Worker, world_size: int, port: int, out_dir: str, options: dict[str, Any]) -> None:
    """One spawned process: join the group as the launcher's agents do, run `worker`, rank 0 saves."""
    # One thread per agent, as the launcher sets it: 2 cores shared by all agents.
    torch.set_num_threads(1)
    timeout = datetime.timedelta(seconds=float(options.get("timeout_s", 180)))
    store = dist.TCPStore("127.0.0.1", port, world_size, is_master=False, timeout=timeout)
    device = agent_device(rank, options)
    init_comm(options.get("backend", "gloo"), rank, world_size, rank, timeout.total_seconds(), store, device)
    try:
        result = worker(rank, world_size, options)
        if rank == 0:
            Path(out_dir, RESULT_FILE).write_bytes(pickle.dumps(result))
    finally:
        teardown_comm()


def spawn_workers(worker: Worker, world_size: int, options: dict[str, Any]) -> Any:
    """Run `worker(rank, world_size, options)` in `world_size` spawned processes; return rank 0's result."""
    timeout = datetime.timedelta(seconds=float(options.get("timeout_s", 180)))
    # The parent holds the store on a free port, so workers rendezvous without a port race.
    store = dist.TCPStore("127.0.0.1", 0, world_size, is_master=True, wait_for_workers=False, timeout=timeout)
    with tempfile.TemporaryDirectory(prefix="cgatrain-bench-") as out_dir:
        mp.start_processes(
            _entry,
            args=(worker, world_size, store.port, out_dir, options),
            nprocs=world_size,
            join=True,
            start_method="spawn",
        )
        result = pickle.loads(Path(out_dir, RESULT_FILE).read_bytes())
    del store
    return result


def gather_to_all(value: Any, world_size: int) -> list[Any]:
    """Every rank's `value`, in rank order (small Python objects only)."""
    values: list[Any] = [None] * world_size
    dist.all_gather_object(values, value)
    return values


def timed(fn: Callable[[], Any]) -> tuple[float, float]:
    """(wall-clock seconds, CPU seconds of the calling thread) of one call."""
    wall, cpu = time.perf_counter(), time.thread_time()
    fn()
    return time.perf_counter() - wall, time.thread_time() - cpu


def median(values: Sequence[float]) -> float:
    """Median, or NaN for an empty sequence."""
    return statistics.median(values) if values else float("nan")


def quantile(values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) by linear interpolation, or NaN for an empty sequence."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def mean(values: Sequence[float]) -> float:
    """Arithmetic mean, or NaN for an empty sequence."""
    return statistics.fmean(values) if values else float("nan")


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-markdown table with right-aligned columns (readable in a terminal too)."""
    cells = [[str(h) for h in headers]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.rjust(w) for c, w in zip(row, widths)) + " |" for row in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|")
    return "\n".join(lines)


def _cell(value: Any) -> str:
    """Floats to 4 significant figures, everything else as str."""
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:,.0f}"
    return str(value)


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on."""
    info = {
        "cpu_cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "backend": "gloo (127.0.0.1)",
        "threads_per_process": 1,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }
    if torch.cuda.is_available():
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        info["cuda"] = torch.version.cuda
        info["nccl"] = ".".join(str(v) for v in torch.cuda.nccl.version()) if dist.is_nccl_available() else None
        info["mps"] = mps_active()
    return info


def mps_active() -> bool:
    """Whether a CUDA MPS control daemon seems to be running for this user (its pipe directory exists)."""
    pipe = os.environ.get("CUDA_MPS_PIPE_DIRECTORY", "/tmp/nvidia-mps")
    return Path(pipe, "control").exists()


def write_json(path: str | None, payload: dict[str, Any]) -> None:
    """Save `payload` plus machine info to `path` (no-op when path is None)."""
    if path is None:
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps({"machine": machine_info(), **payload}, indent=2) + "\n")
    print(f"wrote {path}")
