"""Every algorithm's state_dict is complete: stopping, reloading into a fresh instance and going on
gives bit for bit the parameters of an uninterrupted run (compressor randomness included)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from multiproc import run_agents, stop_and_resume
from test_algorithms_distributed import make_data, make_model
from torch import nn

from cgatrain.algorithms import AgentContext, FlatModel, LocalObjective, get_algorithm
from cgatrain.comm import NeighborExchange
from cgatrain.topology import build_topology

pytestmark = [pytest.mark.multiproc, pytest.mark.timeout(180)]

RING = {"graph": "ring", "weights": "uniform"}
DIRECTED = {"graph": "directed_ring", "weights": "uniform"}


def _fresh(rank: int, world_size: int, name: str, topology_cfg: dict, compressor: dict, shards: list, exchange: NeighborExchange):
    model = FlatModel(make_model(rank, False))
    objective = LocalObjective(model, nn.CrossEntropyLoss(), weight_decay=0.01)
    objective.set_batch(*shards[rank])
    context = AgentContext(rank, world_size, model, objective, build_topology(topology_cfg, world_size, seed=3), exchange, compressor)
    algorithm = get_algorithm(name)(context, {"gossip_steps": 2} if name == "scsp" else {})
    algorithm.setup()
    return model, algorithm


def _stop_and_resume(rank: int, world_size: int, name: str, topology_cfg: dict, compressor: dict, shards: list) -> tuple[torch.Tensor, torch.Tensor]:
    exchange = NeighborExchange(rank, world_size, torch.device("cpu"))
    return stop_and_resume(lambda _resumed: _fresh(rank, world_size, name, topology_cfg, compressor, shards, exchange), finish_before_saving=True)


@pytest.mark.parametrize(
    ("name", "topology_cfg", "compressor"),
    [
        ("cga", RING, {"name": "identity"}),
        ("compcga", RING, {"name": "qsgd", "bits": 2}),
        ("sgp", DIRECTED, {"name": "identity"}),
        ("scsp", DIRECTED, {"name": "qsgd", "bits": 4}),
    ],
    ids=["cga", "compcga-qsgd", "sgp", "scsp-qsgd"],
)
def test_resumed_algorithm_matches_uninterrupted(tmp_path: Path, name: str, topology_cfg: dict, compressor: dict) -> None:
    results = run_agents(_stop_and_resume, 3, tmp_path, name, topology_cfg, compressor, make_data(3))
    for rank, (uninterrupted, resumed) in enumerate(results):
        assert torch.equal(uninterrupted, resumed), f"{name} agent {rank} differs after resume"
