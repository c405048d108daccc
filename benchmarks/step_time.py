"""Training-step time: D-PSGD on a ring versus centralized all-reduce SGD versus local SGD (no communication).

All three algorithms run in the same agent processes, on the same model, data and batch size,
built exactly as `cgatrain.train.trainer.Trainer` builds them (FlatModel, LocalObjective,
NeighborExchange, topology, registered algorithm). They take turns in alternating blocks of steps
(order rotated each round) so machine drift hits them alike. Each step is split into
communication (the seconds `NeighborExchange` counts as blocked) and the rest ("compute").

    python benchmarks/step_time.py --agents 5 --model cnn --json results/step_time.json
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))  # so spawned workers find _harness too
import _harness  # noqa: E402

from cgatrain.algorithms import AgentContext, Algorithm, FlatModel, LocalObjective, get_algorithm  # noqa: E402
from cgatrain.comm import NeighborExchange  # noqa: E402
from cgatrain.data import AgentSampler, load_dataset, partition_indices  # noqa: E402
from cgatrain.models import build_model, loss_fn  # noqa: E402
from cgatrain.topology import build_topology  # noqa: E402

MODELS = {"cnn": {"name": "cnn"}, "mlp": {"name": "mlp", "hidden": [128]}, "linear": {"name": "linear"}}
TOPOLOGY = {"graph": "ring", "weights": "uniform"}
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


def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """'ngo:delay=2,p=1' -> ('ngo', {'delay': 2, 'p': 1}); a bare name has no options."""
    name, _, options = spec.partition(":")
    return name, {key: yaml.safe_load(value) for key, value in (item.split("=", 1) for item in options.split(",") if item)}


def build_run(spec: str, rank: int, world_size: int, options: dict[str, Any], data: Any) -> Run:
    """Model, objective, wire, graph and algorithm, as the Trainer builds them."""
    name, hparams = parse_spec(spec)
    # Same seed on every agent and for every algorithm: identical initial models.
    torch.manual_seed(options["seed"])
    module = build_model(MODELS[options["model"]], data.input_shape, data.num_classes)
    model = FlatModel(module)
    objective = LocalObjective(model, loss_fn(data.task), 0.0)
    topology = build_topology(TOPOLOGY, world_size, options["seed"])
    exchange = NeighborExchange(rank, world_size, torch.device("cpu"))
    context = AgentContext(rank, world_size, model, objective, topology, exchange)
    algorithm = get_algorithm(name)(context, {"name": name, **hparams})
    algorithm.setup()
    return Run(spec, algorithm, objective, exchange)


def one_step(run: Run, batch: tuple[torch.Tensor, torch.Tensor], record: bool) -> None:
    """One algorithm step on a pre-sliced batch; the timed part is exactly what the Trainer times."""
    run.objective.set_batch(*batch)
    started, comm_before, bytes_before = time.perf_counter(), run.exchange.total_seconds(), run.exchange.total_bytes_sent()
    loss = run.algorithm.step(LR, run.step, 0)
    wall = time.perf_counter() - started
    run.step += 1
    if not math.isfinite(loss):
        raise FloatingPointError(f"{run.name}: loss became {loss}")
    if record:
        run.wall.append(wall)
        run.comm.append(run.exchange.total_seconds() - comm_before)
        run.bytes_sent.append(run.exchange.total_bytes_sent() - bytes_before)


def make_batches(rank: int, world_size: int, options: dict[str, Any], data: Any) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """This agent's mini-batches from an IID shard, sliced up front so slicing is never timed."""
    shards = partition_indices(data.train_y.numpy(), world_size, {"name": "iid"}, options["seed"])
    sampler = AgentSampler(shards[rank], options["batch_size"], options["seed"], rank)
    indices = sampler.epoch_batches(0, options["warmup"] + options["steps"])
    return [(data.train_x[i], data.train_y[i]) for i in indices]


def worker(rank: int, world_size: int, options: dict[str, Any]) -> dict[str, Any]:
    """Warm every algorithm up, then time them in alternating blocks; rank 0 returns the summary."""
    data = load_dataset({"name": options["data"]})
    batches = make_batches(rank, world_size, options, data)
    runs = [build_run(name, rank, world_size, options, data) for name in options["algorithms"]]
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
    everyone = _harness.gather_to_all(mine, world_size)
    params = runs[0].algorithm.ctx.model.numel
    return {"params": params, "rows": [summarize(run.name, [agent[run.name] for agent in everyone]) for run in runs]}


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


def print_table(result: dict[str, Any]) -> None:
    """The readable summary; compute + comm = mean step."""
    headers = ["algorithm", "steps", "median ms", "mean ms", "p90 ms", "compute ms", "comm ms", "comm %", "KB sent/step/agent"]
    rows = [
        [r["algorithm"], r["steps_timed"], 1e3 * r["median_step_s"], 1e3 * r["mean_step_s"], 1e3 * r["p90_step_s"],
         1e3 * r["compute_s_per_step"], 1e3 * r["comm_s_per_step"], 100 * r["comm_s_per_step"] / r["mean_step_s"],
         r["bytes_sent_per_step_per_agent"] / 1e3]
        for r in result["rows"]
    ]
    print(_harness.format_table(headers, rows))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--agents", type=int, default=5, help="agent processes (>= 3 for a ring)")
    parser.add_argument("--model", choices=sorted(MODELS), default="cnn")
    parser.add_argument("--data", default="digits")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--algorithms", nargs="+", default=["local", "dpsgd", "centralized"],
                        help="names, optionally with options: ngo:delay=2,p=1")
    parser.add_argument("--steps", type=int, default=200, help="timed steps per algorithm")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps per algorithm")
    parser.add_argument("--blocks", type=int, default=10, help="alternating blocks the timed steps are split into")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout-s", type=float, default=180.0)
    parser.add_argument("--json", default=None, help="write results here")
    args = parser.parse_args(argv)
    if args.agents < 3:
        parser.error("--agents must be >= 3 (a ring of 2 is not a ring)")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    options = {
        "model": args.model, "data": args.data, "batch_size": args.batch_size, "algorithms": args.algorithms,
        "steps": args.steps, "warmup": args.warmup, "blocks": args.blocks, "seed": args.seed, "timeout_s": args.timeout_s,
    }
    result = _harness.spawn_workers(worker, args.agents, options)
    print(f"{args.agents} agents, model {args.model} ({result['params']:,} params), {args.data}, batch {args.batch_size}, "
          f"gloo on 127.0.0.1, 1 thread each; dpsgd gossips on a ring")
    print_table(result)
    _harness.write_json(args.json, {"benchmark": "step_time", "options": options, "agents": args.agents, **result})


if __name__ == "__main__":
    main()
