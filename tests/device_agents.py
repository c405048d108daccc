"""One agent's trajectory on a chosen device and wire, shared by the staging (CPU) and GPU tests."""

from __future__ import annotations

from typing import Any

import torch
from test_algorithms_distributed import make_model
from torch import nn

from cgatrain.algorithms import AgentContext, FlatModel, LocalObjective, get_algorithm
from cgatrain.comm import NeighborExchange
from cgatrain.topology import build_topology

RING = {"graph": "ring", "weights": "uniform"}
COMPLETE = {"graph": "complete", "weights": "uniform"}
DIRECTED_SWITCHING = {
    "schedule": [
        {"graph": "directed_ring"},
        {"graph": "custom", "edges": [[0, 1], [1, 2], [2, 3], [3, 0], [0, 2], [2, 0]], "directed": True},
    ],
    "switch_every": 1,
    "switch_unit": "step",
    "weights": "uniform",
}
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
