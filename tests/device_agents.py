"""One agent's trajectory on a chosen device and wire, shared by the staging (CPU) and GPU tests."""

from __future__ import annotations

from typing import Any

import torch
from test_algorithms_distributed import make_model
from test_push_sum_distributed import DIRECTED_SWITCHING
from torch import nn

from cgatrain.algorithms import AgentContext, FlatModel, LocalObjective, get_algorithm
from cgatrain.comm import NeighborExchange
from cgatrain.topology import build_topology

RING = {"graph": "ring", "weights": "uniform"}
COMPLETE = {"graph": "complete", "weights": "uniform"}
PAPER = {"momentum": 0.9, "momentum_form": "heavy_ball", "qp_scope": "whole", "dual_margin": 0.0, "scale_by_mixing": False}
AUTHORS = {"momentum": 0.9, "momentum_form": "nesterov", "qp_scope": "per_tensor", "dual_margin": 0.5, "ridge": 1e-12, "scale_by_mixing": True}

# (case id, algorithm, hyperparameters, topology, compressor): every registered algorithm, 4 agents.
CASES = [
    ("dpsgd", "dpsgd", {}, RING, "identity"),
    ("dpmsgd", "dpmsgd", {"momentum": 0.9}, RING, "identity"),
    ("cga-paper", "cga", PAPER, RING, "identity"),
    ("cga-authors", "cga", AUTHORS, COMPLETE, "identity"),
    ("compcga-sign", "compcga", PAPER, RING, "sign"),
    ("sgp", "sgp", {"momentum": 0.0}, DIRECTED_SWITCHING, "identity"),
    ("sparse-push-sign", "sparse_push", {"eta": 0.3, "momentum": 0.0}, DIRECTED_SWITCHING, "sign"),
    ("scsp-sign", "scsp", {"eta": 0.4, "momentum": 0.0, "gossip_steps": 3, "gossip_every": 2, "gossip_eta": 0.7}, DIRECTED_SWITCHING, "sign"),
    ("centralized", "centralized", {"momentum": 0.9}, RING, "identity"),
    ("local", "local", {"momentum": 0.9}, RING, "identity"),
]


def agent_device(kind: str) -> torch.device:
    """"cpu", or the GPU this worker was placed on ("cuda")."""
    return torch.device("cuda", torch.cuda.current_device()) if kind == "cuda" else torch.device("cpu")


def trajectory_on(rank: int, world_size: int, name: str, hparams: dict[str, Any], topology_cfg: dict[str, Any], steps: int,
                  lr: float, shards: list, compressor: str = "identity", device_kind: str = "cpu", staging: str = "auto",
                  dtype: torch.dtype = torch.float64) -> dict[str, Any]:
    """Run `steps` steps of one algorithm in this agent; its parameters after each step plus what its wire did."""
    device = agent_device(device_kind)
    model = FlatModel(make_model(rank, same_init=False).to(device=device, dtype=dtype))
    objective = LocalObjective(model, nn.CrossEntropyLoss(), weight_decay=0.01)
    inputs, targets = shards[rank]
    objective.set_batch(inputs.to(device=device, dtype=dtype), targets.to(device))
    exchange = NeighborExchange(rank, world_size, device, staging)
    topology = build_topology(topology_cfg, world_size, seed=3)
    algorithm = get_algorithm(name)(AgentContext(rank, world_size, model, objective, topology, exchange, {"name": compressor}), hparams)
    algorithm.setup()
    trajectory = [model.params.detach().cpu().clone()]
    for step in range(steps):
        algorithm.step(lr, step, 0)
        trajectory.append(model.params.detach().cpu().clone())
    return {
        "trajectory": torch.stack(trajectory),
        "bytes": {round_name: stats.bytes_sent for round_name, stats in exchange.stats.items()},
        "comm_seconds": exchange.total_seconds(),
        "staged": exchange.wire.staged,
        "staged_bytes": exchange.wire.staged_bytes,
        "pinned": exchange.wire.pool.pin_memory,
        "backend": exchange.wire.backend,
        "device": str(model.params.device),
    }


def every_case_both_ways(rank: int, world_size: int, steps: int, lr: float, shards: list, device_kind: str) -> dict[str, dict[str, Any]]:
    """Each case of CASES run direct (staging=auto) and staged (staging=always) in the same processes."""
    results = {}
    for case, name, hparams, topology_cfg, compressor in CASES:
        for staging in ("auto", "always"):
            results[f"{case}/{staging}"] = trajectory_on(rank, world_size, name, hparams, topology_cfg, steps, lr, shards, compressor, device_kind, staging)
    return results


def every_case(rank: int, world_size: int, steps: int, lr: float, shards: list, device_kind: str, names: list[str]) -> dict[str, dict[str, Any]]:
    """The named cases of CASES, each run once with the wire the process group implies."""
    return {
        case: trajectory_on(rank, world_size, name, hparams, topology_cfg, steps, lr, shards, compressor, device_kind)
        for case, name, hparams, topology_cfg, compressor in CASES
        if case in names
    }


def _sgd_reference(shards: list, steps: int, lr: float, momentum: float, agent: int | None, world_size: int) -> torch.Tensor:
    """torch's SGD with weight decay 0.01: on one agent's shard (local) or on the union from agent 0's model (centralized)."""
    model = make_model(0 if agent is None else agent, same_init=False)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=0.01)
    inputs = torch.cat([x for x, _ in shards[:world_size]]) if agent is None else shards[agent][0]
    targets = torch.cat([y for _, y in shards[:world_size]]) if agent is None else shards[agent][1]
    trajectory = [torch.nn.utils.parameters_to_vector(model.parameters()).detach().clone()]
    for _ in range(steps):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(inputs), targets).backward()
        optimizer.step()
        trajectory.append(torch.nn.utils.parameters_to_vector(model.parameters()).detach().clone())
    return torch.stack(trajectory)


def reference_for(case: str, world_size: int, steps: int, lr: float, shards: list) -> torch.Tensor:
    """(agents, steps + 1, params): the single-process reference of one case of CASES."""
    from test_algorithms_distributed import reference_trajectory
    from test_cga_distributed import reference_cga
    from test_push_sum_distributed import reference_push_sum

    _, name, hparams, topology_cfg, compressor = next(c for c in CASES if c[0] == case)
    compressed = compressor != "identity"
    if name in ("dpsgd", "dpmsgd"):
        return reference_trajectory(name, float(hparams.get("momentum", 0.0)), topology_cfg, world_size, steps, lr, False, shards)
    if name in ("cga", "compcga"):
        return reference_cga(hparams, topology_cfg, world_size, steps, lr, shards, compressed)
    if name in ("sgp", "sparse_push", "scsp"):
        return reference_push_sum(name, hparams, topology_cfg, world_size, steps, lr, shards, compressed)
    if name == "centralized":
        return _sgd_reference(shards, steps, lr, hparams["momentum"], None, world_size).expand(world_size, -1, -1)
    return torch.stack([_sgd_reference(shards, steps, lr, hparams["momentum"], rank, world_size) for rank in range(world_size)])
