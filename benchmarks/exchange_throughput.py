"""Ring gossip throughput: `NeighborExchange.gossip` versus bare torch.distributed moving the same bytes.

Every agent sends one flat float32 buffer to both ring neighbours and receives one from each,
by three methods that move exactly the same bytes between the same processes:

* ``layer``: ``NeighborExchange.gossip`` (the comm layer every algorithm uses);
* ``isend``: bare ``dist.isend``/``dist.irecv`` to the two peers, then ``wait()`` on each;
* ``batch``: bare ``dist.batch_isend_irecv`` with the same four operations.

The bare methods always use buffers on the backend's own device (host for Gloo, GPU for NCCL).
The layer's buffer lives on the agent's compute device, so three settings compare:

* Gloo on the CPU (default): the layer against bare Gloo, both direct;
* ``--device cuda`` (agents sharing GPUs over Gloo) or ``--staging always`` (the same path forced
  on the CPU): the layer stages through host buffers, against the same layer unstaged on host
  buffers (``direct``) and bare Gloo on host buffers, so the overhead columns are the price of staging;
* ``--backend nccl --device cuda`` (one agent per GPU): the layer's one batched NCCL call per round
  against bare ``batch_isend_irecv`` on the same GPU buffers (no ``isend`` row: single NCCL p2p
  ops build a 2-rank communicator per pair). Every GPU exchange is followed by a device synchronize.

Methods run in alternating blocks (order rotated every round) so slow drift of the machine hits
all of them alike. Each exchange is timed on its own; the table gives the median over exchanges
(mean over agents), the throughput each agent sends at, and the layer's overhead against each baseline.

    python benchmarks/exchange_throughput.py --agents 4 --json results/exchange.json
    python benchmarks/exchange_throughput.py --agents 3 --staging always            # staging cost on CPU
    python benchmarks/exchange_throughput.py --agents 5 --device cuda --gpus 1      # 5 agents share a GPU
    python benchmarks/exchange_throughput.py --agents 8 --device cuda --backend nccl  # 8 GPUs
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parent))  # so spawned workers find _harness too
import _harness

from cgatrain.comm import NeighborExchange

METHODS = ("layer", "isend", "batch")
ROUND = "bench"  # the exchange's round name; its stats give the bytes the layer counted


def ring_peers(rank: int, world_size: int) -> list[int]:
    """Both ring neighbours of `rank`, ascending (the order the layer posts in)."""
    return sorted({(rank - 1) % world_size, (rank + 1) % world_size})


def bare_isend(send: torch.Tensor, recvs: dict[int, torch.Tensor]) -> None:
    """Plain isend/irecv to every peer, then wait on each request."""
    works = [dist.isend(send, peer) for peer in recvs]
    works += [dist.irecv(buffer, peer) for peer, buffer in recvs.items()]
    for work in works:
        work.wait()


def bare_batch(send: torch.Tensor, recvs: dict[int, torch.Tensor]) -> None:
    """The same four operations through one batch_isend_irecv call."""
    ops = [dist.P2POp(dist.isend, send, peer) for peer in recvs]
    ops += [dist.P2POp(dist.irecv, buffer, peer) for peer, buffer in recvs.items()]
    for work in dist.batch_isend_irecv(ops):
        work.wait()


def methods_for(options: dict[str, Any]) -> tuple[str, ...]:
    """NCCL has no `isend` row (single p2p ops would build a 2-rank communicator per pair); a staged
    layer is also compared with the same layer unstaged on host buffers (`direct`)."""
    if options.get("backend") == "nccl":
        return ("layer", "batch")
    staged = options.get("device") == "cuda" or options.get("staging") == "always"
    return ("layer", "direct", "isend", "batch") if staged else METHODS


def synchronized(fn: Callable[[], Any], device: torch.device) -> Callable[[], Any]:
    """`fn` followed by a device synchronize on GPUs, so its time covers the transfer itself."""
    if device.type != "cuda":
        return fn
    return lambda: (fn(), _harness.synchronize(device))


def make_methods(exchange: NeighborExchange, send: torch.Tensor, peers: list[int], names: tuple[str, ...]) -> dict[str, Callable[[], Any]]:
    """One zero-argument callable per method; the bare ones use buffers on the wire device."""
    wire_send = send.to(exchange.wire.device)
    recvs = {peer: torch.empty_like(wire_send) for peer in peers}
    host_layer = NeighborExchange(exchange.rank, exchange.world_size, torch.device("cpu"))
    methods = {
        "layer": lambda: exchange.gossip(ROUND, send, peers, peers),
        "direct": lambda: host_layer.gossip(ROUND, wire_send, peers, peers),
        "isend": lambda: bare_isend(wire_send, recvs),
        "batch": lambda: bare_batch(wire_send, recvs),
    }
    return {name: synchronized(methods[name], send.device) for name in names}


def check_correct(exchange: NeighborExchange, send: torch.Tensor, peers: list[int], names: tuple[str, ...]) -> None:
    """Each method must deliver every neighbour's buffer (filled with the neighbour's rank)."""
    received = exchange.gossip("_check", send, peers, peers)
    wire_send = send.to(exchange.wire.device)
    recvs = {peer: torch.empty_like(wire_send) for peer in peers}
    for fn in [{"isend": bare_isend, "batch": bare_batch}[name] for name in names if name in ("isend", "batch")]:
        fn(wire_send, recvs)
        for peer in peers:
            if not bool((recvs[peer] == peer).all()) or not bool((received[peer] == peer).all()):
                raise AssertionError(f"rank {exchange.rank}: wrong data from peer {peer}")
    del exchange.stats["_check"]


def iterations_for(size: int, options: dict[str, Any]) -> int:
    """Exchanges per method: `iters`, fewer for big buffers so each size costs at most `budget_mb`."""
    budget = int(options["budget_mb"] * 2**20 / (2 * size))
    return max(options["min_iters"], min(options["iters"], budget))


def time_size(exchange: NeighborExchange, size: int, peers: list[int], options: dict[str, Any]) -> dict[str, list[float]]:
    """Per-exchange seconds of every method at one buffer size, measured in alternating blocks."""
    names = methods_for(options)
    send = torch.full((size // 4,), float(exchange.rank), dtype=torch.float32, device=exchange.device)
    check_correct(exchange, send, peers, names)
    methods = make_methods(exchange, send, peers, names)
    for fn in methods.values():
        for _ in range(options["warmup"]):
            fn()
    exchange.stats.pop(ROUND, None)  # count only the timed calls
    blocks = options["blocks"]
    per_block = math.ceil(iterations_for(size, options) / blocks)
    times: dict[str, list[float]] = {key: [] for name in names for key in (name, f"{name}_cpu")}
    for block in range(blocks):
        # Rotating the order cancels any advantage of running first (or last) in a round.
        order = names[block % len(names):] + names[: block % len(names)]
        for name in order:
            dist.barrier()
            for _ in range(per_block):
                wall, cpu = _harness.timed(methods[name])
                times[name].append(wall)
                times[f"{name}_cpu"].append(cpu)
    stats = exchange.stats[ROUND]
    times["layer_bytes_sent_per_call"] = [stats.bytes_sent / stats.calls]
    return times


def worker(rank: int, world_size: int, options: dict[str, Any]) -> list[dict[str, Any]]:
    """Run every size; rank 0 returns one summary row per size."""
    exchange = NeighborExchange(rank, world_size, _harness.agent_device(rank, options), options.get("staging", "auto"))
    if exchange.wire.coalesced:
        exchange.warm_up(range(world_size))
    peers = ring_peers(rank, world_size)
    rows = []
    for size in options["sizes"]:
        mine = time_size(exchange, size, peers, options)
        everyone = _harness.gather_to_all(mine, world_size)
        rows.append(summarize(size, everyone, methods_for(options)))
    if rank == 0:
        rows[0]["wire"] = exchange.wire.describe()
    return rows


def summarize(size: int, everyone: list[dict[str, list[float]]], names: tuple[str, ...] = METHODS) -> dict[str, Any]:
    """Median seconds per exchange (mean over agents of each agent's median) and the overheads."""
    row: dict[str, Any] = {"bytes": size, "exchanges_per_method": len(everyone[0]["layer"])}
    for name in names:
        medians = [_harness.median(agent[name]) for agent in everyone]
        row[f"{name}_median_s"] = _harness.mean(medians)
        row[f"{name}_median_s_per_agent"] = medians
        # Bytes each agent sends per exchange: the buffer, once to each of its two neighbours.
        row[f"{name}_MBps_per_agent"] = 2 * size / row[f"{name}_median_s"] / 1e6
        row[f"{name}_p10_s"] = _harness.mean([_harness.quantile(agent[name], 0.1) for agent in everyone])
        row[f"{name}_p90_s"] = _harness.mean([_harness.quantile(agent[name], 0.9) for agent in everyone])
        # CPU of the calling thread: Python and posting work, free of waiting for a core.
        row[f"{name}_cpu_median_s"] = _harness.mean([_harness.median(agent[f"{name}_cpu"]) for agent in everyone])
    for base in names[1:]:
        row[f"overhead_vs_{base}_pct"] = 100.0 * (row["layer_median_s"] / row[f"{base}_median_s"] - 1.0)
        # Share of the bare method's throughput the layer keeps (the NCCL target is >= 90%).
        row[f"throughput_vs_{base}_pct"] = 100.0 * row[f"{base}_median_s"] / row["layer_median_s"]
    row["layer_counted_bytes_sent_per_call"] = everyone[0]["layer_bytes_sent_per_call"][0]
    return row


def human_bytes(size: int) -> str:
    """4096 -> '4 KiB'."""
    for unit, scale in (("MiB", 2**20), ("KiB", 2**10)):
        if size >= scale:
            return f"{size / scale:g} {unit}"
    return f"{size} B"


def print_table(rows: list[dict[str, Any]], names: tuple[str, ...] = METHODS) -> None:
    """The readable summary."""
    headers = (["buffer", "n"] + [f"{m} µs" for m in names] + [f"{m} MB/s" for m in names]
               + [f"ovh vs {m} %" for m in names[1:]] + [f"CPU µs {'/'.join(names)}"])
    table = [
        [human_bytes(r["bytes"]), r["exchanges_per_method"]]
        + [r[f"{m}_median_s"] * 1e6 for m in names]
        + [r[f"{m}_MBps_per_agent"] for m in names]
        + [f"{r[f'overhead_vs_{m}_pct']:+.1f}" for m in names[1:]]
        + ["/".join(f"{r[f'{m}_cpu_median_s'] * 1e6:.0f}" for m in names)]
        for r in rows
    ]
    print(_harness.format_table(headers, table))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--agents", type=int, default=4, help="ring size (>= 3, so the two neighbours differ)")
    parser.add_argument("--sizes-kib", type=int, nargs="+", default=[4, 256, 4096, 16384], help="buffer sizes in KiB")
    parser.add_argument("--iters", type=int, default=600, help="timed exchanges per method and size (upper bound)")
    parser.add_argument("--min-iters", type=int, default=40, help="timed exchanges per method and size (lower bound)")
    parser.add_argument("--budget-mb", type=float, default=2048.0, help="MiB each agent may send per method and size")
    parser.add_argument("--blocks", type=int, default=10, help="alternating blocks the exchanges are split into")
    parser.add_argument("--warmup", type=int, default=10, help="untimed exchanges per method and size")
    parser.add_argument("--timeout-s", type=float, default=180.0)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="the agents' compute device")
    parser.add_argument("--gpus", type=int, default=None, help="use only the first N GPUs (agents share them round-robin)")
    parser.add_argument("--backend", choices=["gloo", "nccl"], default="gloo")
    parser.add_argument("--staging", choices=["auto", "always"], default="auto", help="always: stage through host buffers even on CPU")
    parser.add_argument("--json", default=None, help="write results here")
    args = parser.parse_args(argv)
    if args.agents < 3:
        parser.error("--agents must be >= 3 on a ring (2 agents would send twice to the same peer)")
    if args.backend == "nccl" and args.device != "cuda":
        parser.error("--backend nccl needs --device cuda")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    _harness.refuse_missing_gpus(args.device, args.gpus)
    options = {
        "sizes": [kib * 1024 for kib in args.sizes_kib],
        "iters": args.iters, "min_iters": args.min_iters, "budget_mb": args.budget_mb,
        "blocks": args.blocks, "warmup": args.warmup, "timeout_s": args.timeout_s,
        "device": args.device, "gpus": args.gpus, "backend": args.backend, "staging": args.staging,
    }
    rows = _harness.spawn_workers(worker, args.agents, options)
    print(f"ring of {args.agents} agents, layer wire: {rows[0]['wire']}, bare methods on {args.backend} buffers, "
          f"1 thread each; median per exchange (2 sends + 2 receives per agent)")
    print_table(rows, methods_for(options))
    _harness.write_json(args.json, {"benchmark": "exchange_throughput", "options": options, "agents": args.agents, "rows": rows})


if __name__ == "__main__":
    main()
