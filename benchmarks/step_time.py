"""Training-step time per algorithm, on CPUs or GPUs, with agents as real processes.

All algorithms run in the same agent processes, on the same model, data and batch size, built
exactly as `cgatrain.train.trainer.Trainer` builds them (FlatModel, LocalObjective,
NeighborExchange, topology, registered algorithm). They take turns in alternating blocks of steps
(order rotated each round) so machine drift hits them alike. Each step is split into
communication (the seconds `NeighborExchange` counts: host seconds blocked, or on NCCL the compute
stream's stall from CUDA events) and the rest ("compute"). On GPUs every step ends with a device
synchronize, so its wall time covers its kernels.

An algorithm is a name or `name:key=value,...` (hyperparameters), e.g. `cga:cross_grad_mode=loop`.
`--data cifar10-shaped` draws random CIFAR-10-shaped batches (3x32x32, 10 classes) on the agent's
device (the cost of a step does not depend on pixel values); any `data=` config name works too.
`--epoch-samples N` adds seconds per epoch: ceil(N / agents / batch) steps at the mean step time.

    python benchmarks/step_time.py --agents 5 --model cnn --json results/step_time.json
    python benchmarks/step_time.py --agents 5 --device cuda --gpus 1 --model vgg11 --data cifar10-shaped \\
        --batch-size 128 --algorithms dpmsgd cga cga:cross_grad_mode=loop --baseline dpmsgd
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
import torch.distributed as dist
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))  # so spawned workers find _harness too
import _harness

from cgatrain.algorithms import AgentContext, Algorithm, FlatModel, LocalObjective, get_algorithm
from cgatrain.comm import NeighborExchange
from cgatrain.data import AgentSampler, load_dataset, partition_indices
from cgatrain.models import build_model, loss_fn
from cgatrain.topology import build_topology

MODELS = {"cnn": {"name": "cnn"}, "mlp": {"name": "mlp", "hidden": [128]}, "linear": {"name": "linear"}}
SYNTHETIC = {"cifar10-shaped": ((3, 32, 32), 10), "cifar100-shaped": ((3, 32, 32), 100), "tinyimagenet-shaped": ((3, 64, 64), 200)}
DISTINCT_BATCHES = 8  # synthetic batches per agent, cycled: enough to defeat caching, small on a shared GPU
LR = 0.02  # the main config's learning rate; constant here, so it cannot change the cost of a step


@dataclass
class Run:
    """One algorithm's agent state plus what its timed steps cost."""

    name: str
    algorithm: Algorithm
    objective: LocalObjective
    exchange: NeighborExchange
    step: int = 0
    wall: list[float] = field(default_factory=list)
    comm: list[float] = field(default_factory=list)
    bytes_sent: list[int] = field(default_factory=list)


def parse_algorithm(spec: str) -> tuple[str, dict[str, Any]]:
    """"cga:cross_grad_mode=loop,momentum=0.98" -> ("cga", {...}) with YAML-typed values."""
    name, _, rest = spec.partition(":")
    hparams = {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        hparams[key] = yaml.safe_load(value)
    return name, hparams


def build_run(spec: str, rank: int, world_size: int, options: dict[str, Any], data: Any, device: torch.device) -> Run:
    """Model, objective, wire, graph and algorithm, as the Trainer builds them."""
    name, hparams = parse_algorithm(spec)
    # Same seed on every agent and for every algorithm: identical initial models.
    torch.manual_seed(options["seed"])
    module = build_model(MODELS.get(options["model"], {"name": options["model"]}), data.input_shape, data.num_classes).to(device)
    model = FlatModel(module)
    objective = LocalObjective(model, loss_fn(data.task), 0.0)
    topology = build_topology({"graph": options["topology"], "weights": "uniform"}, world_size, options["seed"])
    exchange = NeighborExchange(rank, world_size, device, options.get("staging", "auto"))
    context = AgentContext(rank, world_size, model, objective, topology, exchange)
    algorithm = get_algorithm(name)(context, {"name": name, **hparams})
    algorithm.setup()
    return Run(spec, algorithm, objective, exchange)


def one_step(run: Run, batch: tuple[torch.Tensor, torch.Tensor], record: bool) -> None:
    """One algorithm step on a pre-sliced batch; the timed part is what the Trainer times, plus a GPU sync."""
    run.objective.set_batch(*batch)
    device = run.exchange.device
    started, comm_before, bytes_before = time.perf_counter(), run.exchange.total_seconds(), run.exchange.total_bytes_sent()
    loss = run.algorithm.step(LR, run.step, 0)
    _harness.synchronize(device)
    wall = time.perf_counter() - started
    run.step += 1
    if not math.isfinite(loss):
        raise FloatingPointError(f"{run.name}: loss became {loss}")
    if record:
        run.wall.append(wall)
        run.comm.append(run.exchange.total_seconds() - comm_before)
        run.bytes_sent.append(run.exchange.total_bytes_sent() - bytes_before)


def make_batches(rank: int, world_size: int, options: dict[str, Any], device: torch.device) -> tuple[Any, list[tuple[torch.Tensor, torch.Tensor]]]:
    """(data description, this agent's batches on its device), sliced up front so slicing is never timed."""
    count = options["warmup"] + options["steps"]
    if options["data"] in SYNTHETIC:
        shape, classes = SYNTHETIC[options["data"]]
        generator = torch.Generator().manual_seed(options["seed"] + rank)
        pool = [(torch.randn(options["batch_size"], *shape, generator=generator).to(device),
                 torch.randint(0, classes, (options["batch_size"],), generator=generator).to(device)) for _ in range(min(count, DISTINCT_BATCHES))]
        data = SimpleNamespace(input_shape=shape, num_classes=classes, task="classification")
        return data, [pool[i % len(pool)] for i in range(count)]
    data = load_dataset({"name": options["data"]})
    shards = partition_indices(data.train_y.numpy(), world_size, {"name": "iid"}, options["seed"])
    sampler = AgentSampler(shards[rank], options["batch_size"], options["seed"], rank)
    indices = sampler.epoch_batches(0, count)
    return data, [(data.train_x[i].to(device), data.train_y[i].to(device)) for i in indices]


def worker(rank: int, world_size: int, options: dict[str, Any]) -> dict[str, Any]:
    """Warm every algorithm up, then time them in alternating blocks; rank 0 returns the summary."""
    device = _harness.agent_device(rank, options)
    data, batches = make_batches(rank, world_size, options, device)
    runs = [build_run(spec, rank, world_size, options, data, device) for spec in options["algorithms"]]
    if runs[0].exchange.wire.coalesced:
        runs[0].exchange.warm_up(range(world_size))
    for run in runs:
        for batch in batches[: options["warmup"]]:
            one_step(run, batch, record=False)
    timed_batches = batches[options["warmup"]:]
    per_block = math.ceil(len(timed_batches) / options["blocks"])
    for block in range(options["blocks"]):
        chunk = timed_batches[block * per_block : (block + 1) * per_block]
        # Rotating the order cancels any advantage of running first (or last) in a round.
        for run in runs[block % len(runs):] + runs[: block % len(runs)]:
            dist.barrier()
            for batch in chunk:
                one_step(run, batch, record=True)
    for run in runs:
        run.algorithm.finish(run.step, 0)  # e.g. delayed NGO rounds still in flight
    mine = {run.name: {"wall": run.wall, "comm": run.comm, "bytes": run.bytes_sent} for run in runs}
    memory = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else 0
    everyone = _harness.gather_to_all({"runs": mine, "peak_gpu_bytes": memory}, world_size)
    rows = [summarize(run.name, [agent["runs"][run.name] for agent in everyone]) for run in runs]
    add_ratios(rows, options.get("baseline"))
    add_epoch_seconds(rows, options.get("epoch_samples"), world_size, options["batch_size"])
    return {
        "params": runs[0].algorithm.ctx.model.numel,
        "wire": runs[0].exchange.wire.describe(),
        "peak_gpu_mb_per_agent_max": max(agent["peak_gpu_bytes"] for agent in everyone) / 2**20,
        "rows": rows,
    }


def summarize(name: str, agents: list[dict[str, list[float]]]) -> dict[str, Any]:
    """Means over agents of each agent's per-step statistics."""
    medians = [_harness.median(a["wall"]) for a in agents]
    means = [_harness.mean(a["wall"]) for a in agents]
    comm = [_harness.mean(a["comm"]) for a in agents]
    return {
        "algorithm": name,
        "steps_timed": len(agents[0]["wall"]),
        "median_step_s": _harness.mean(medians),
        "mean_step_s": _harness.mean(means),
        "slowest_agent_median_step_s": max(medians),
        "p90_step_s": _harness.mean([_harness.quantile(a["wall"], 0.9) for a in agents]),
        "comm_s_per_step": _harness.mean(comm),
        "compute_s_per_step": _harness.mean([m - c for m, c in zip(means, comm)]),
        "bytes_sent_per_step_per_agent": _harness.mean([_harness.mean(a["bytes"]) for a in agents]),
    }


def add_ratios(rows: list[dict[str, Any]], baseline: str | None) -> None:
    """Each algorithm's median step over the baseline's (the CGA target: <= 1.5 x DPMSGD at degree 2)."""
    base = next((r for r in rows if r["algorithm"] == baseline), None)
    for row in rows:
        row["x_baseline"] = row["median_step_s"] / base["median_step_s"] if base else None


def add_epoch_seconds(rows: list[dict[str, Any]], epoch_samples: int | None, agents: int, batch_size: int) -> None:
    """Seconds per epoch when `epoch_samples` are split evenly over the agents (agents step in lock step)."""
    if not epoch_samples:
        return
    steps = math.ceil(epoch_samples / agents / batch_size)
    for row in rows:
        row["steps_per_epoch"] = steps
        row["seconds_per_epoch"] = steps * row["mean_step_s"]


def print_table(result: dict[str, Any]) -> None:
    """The readable summary; compute + comm = mean step."""
    headers = ["algorithm", "steps", "median ms", "mean ms", "p90 ms", "compute ms", "comm ms", "comm %", "KB sent/step/agent", "x baseline", "s/epoch"]
    rows = [
        [r["algorithm"], r["steps_timed"], 1e3 * r["median_step_s"], 1e3 * r["mean_step_s"], 1e3 * r["p90_step_s"],
         1e3 * r["compute_s_per_step"], 1e3 * r["comm_s_per_step"], 100 * r["comm_s_per_step"] / r["mean_step_s"],
         r["bytes_sent_per_step_per_agent"] / 1e3, "-" if r["x_baseline"] is None else r["x_baseline"], r.get("seconds_per_epoch", "-")]
        for r in result["rows"]
    ]
    print(_harness.format_table(headers, rows))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--agents", type=int, default=5, help="agent processes (>= 3 for a ring)")
    parser.add_argument("--model", default="cnn", help=f"{sorted(MODELS)} or any model= config name (vgg11, resnet20, ...)")
    parser.add_argument("--data", default="digits", help=f"{sorted(SYNTHETIC)} or any data= config name")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--algorithms", nargs="+", default=["local", "dpsgd", "centralized"], help="name or name:key=value,...")
    parser.add_argument("--baseline", default=None, help="algorithm whose median step the others are divided by")
    parser.add_argument("--topology", default="ring")
    parser.add_argument("--steps", type=int, default=200, help="timed steps per algorithm")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps per algorithm")
    parser.add_argument("--blocks", type=int, default=10, help="alternating blocks the timed steps are split into")
    parser.add_argument("--epoch-samples", type=int, default=None, help="training samples per epoch, for seconds per epoch")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="the agents' compute device")
    parser.add_argument("--gpus", type=int, default=None, help="use only the first N GPUs (agents share them round-robin)")
    parser.add_argument("--backend", choices=["gloo", "nccl"], default="gloo", help="nccl needs one GPU per agent")
    parser.add_argument("--staging", choices=["auto", "always"], default="auto", help="always: stage through host buffers even on CPU")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout-s", type=float, default=600.0)
    parser.add_argument("--json", default=None, help="write results here")
    args = parser.parse_args(argv)
    if args.agents < 3 and args.topology == "ring":
        parser.error("--agents must be >= 3 on a ring (a ring of 2 is not a ring)")
    if args.backend == "nccl" and (args.device != "cuda" or args.agents > (args.gpus or torch.cuda.device_count())):
        parser.error("--backend nccl needs --device cuda and one GPU per agent")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    _harness.refuse_missing_gpus(args.device, args.gpus)
    options = {
        "model": args.model, "data": args.data, "batch_size": args.batch_size, "algorithms": args.algorithms,
        "baseline": args.baseline, "topology": args.topology, "steps": args.steps, "warmup": args.warmup,
        "blocks": args.blocks, "epoch_samples": args.epoch_samples, "seed": args.seed, "timeout_s": args.timeout_s,
        "device": args.device, "gpus": args.gpus, "backend": args.backend, "staging": args.staging,
    }
    result = _harness.spawn_workers(worker, args.agents, options)
    print(f"{args.agents} agents, model {args.model} ({result['params']:,} params), {args.data}, batch {args.batch_size}, "
          f"{args.topology}; wire: {result['wire']}; peak GPU memory per agent {result['peak_gpu_mb_per_agent_max']:.0f} MiB")
    print_table(result)
    _harness.write_json(args.json, {"benchmark": "step_time", "options": options, "agents": args.agents, **result})
    return result


if __name__ == "__main__":
    main()
