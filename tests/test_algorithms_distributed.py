"""Algorithms over real Gloo processes against single-process references of the same equations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from multiproc import run_agents
from torch import nn

from cgatrain.algorithms import AgentContext, FlatModel, LocalObjective, get_algorithm
from cgatrain.comm import NeighborExchange
from cgatrain.topology import build_topology, consensus_rate

pytestmark = [pytest.mark.multiproc, pytest.mark.timeout(180)]

RING = {"graph": "ring", "weights": "uniform"}
SWITCHING = {"schedule": [{"graph": "ring"}, {"graph": "complete"}], "switch_every": 2, "switch_unit": "step", "weights": "uniform"}
RANDOM = {"graph": "random", "edge_prob": 0.5, "weights": "metropolis_hastings"}


def make_model(rank: int, same_init: bool) -> nn.Module:
    torch.manual_seed(100 if same_init else 100 + rank)
    return nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)).double()


def make_data(world_size: int, samples: int = 12) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Fixed, different full-batch data per agent (agent r sees mostly class r % 3)."""
    generator = torch.Generator().manual_seed(7)
    shards = []
    for rank in range(world_size):
        inputs = torch.randn(samples, 4, generator=generator, dtype=torch.float64) + rank
        targets = (torch.arange(samples) + rank) % 3
        shards.append((inputs, targets))
    return shards


def _agent_trajectory(rank: int, world_size: int, name: str, hparams: dict[str, Any], topology_cfg: dict[str, Any],
                      steps: int, lr: float, same_init: bool, shards: list, compressor: str = "identity") -> torch.Tensor:
    """Runs in each agent process: the algorithm's parameters after every step."""
    model = FlatModel(make_model(rank, same_init))
    objective = LocalObjective(model, nn.CrossEntropyLoss(), weight_decay=0.01)
    objective.set_batch(*shards[rank])
    exchange = NeighborExchange(rank, world_size, torch.device("cpu"))
    topology = build_topology(topology_cfg, world_size, seed=3)
    context = AgentContext(rank, world_size, model, objective, topology, exchange, {"name": compressor})
    algorithm = get_algorithm(name)(context, hparams)
    algorithm.setup()
    trajectory = [model.params.clone()]
    for step in range(steps):
        algorithm.step(lr, step, 0)
        trajectory.append(model.params.clone())
    return torch.stack(trajectory)


def _stacked_gradients(models: list[nn.Module], shards: list) -> torch.Tensor:
    rows = []
    for module, (inputs, targets) in zip(models, shards):
        module.zero_grad()
        nn.functional.cross_entropy(module(inputs), targets).backward()
        grad = torch.cat([p.grad.reshape(-1) for p in module.parameters()])
        params = torch.cat([p.detach().reshape(-1) for p in module.parameters()])
        rows.append(grad + 0.01 * params)
    return torch.stack(rows)


def _load(models: list[nn.Module], stacked: torch.Tensor) -> None:
    for module, row in zip(models, stacked):
        torch.nn.utils.vector_to_parameters(row.clone(), module.parameters())


def reference_trajectory(name: str, momentum: float, topology_cfg: dict[str, Any], world_size: int,
                         steps: int, lr: float, same_init: bool, shards: list) -> torch.Tensor:
    """X_{k+1} = W_k X_k - alpha G(X_k) (dpsgd), or with V = beta V - alpha G, X = W X + V (dpmsgd)."""
    models = [make_model(rank, same_init) for rank in range(world_size)]
    topology = build_topology(topology_cfg, world_size, seed=3)
    stacked = torch.stack([torch.nn.utils.parameters_to_vector(m.parameters()).detach() for m in models])
    velocity = torch.zeros_like(stacked)
    trajectory = [stacked.clone()]
    for step in range(steps):
        _load(models, stacked)
        gradients = _stacked_gradients(models, shards)
        mixing = torch.from_numpy(topology.mixing_matrix(step, 0))
        if name == "dpsgd":
            stacked = mixing @ stacked - lr * gradients
        else:
            velocity = momentum * velocity - lr * gradients
            stacked = mixing @ stacked + velocity
        trajectory.append(stacked.clone())
    return torch.stack(trajectory, dim=1)  # (agents, steps + 1, params)


@pytest.mark.parametrize(
    ("name", "hparams", "topology_cfg", "world_size"),
    [
        ("dpsgd", {}, RING, 4),
        ("dpmsgd", {"momentum": 0.9}, RING, 3),
        ("dpmsgd", {"momentum": 0.8}, SWITCHING, 4),
        ("dpsgd", {}, RANDOM, 5),
    ],
    ids=["dpsgd-ring", "dpmsgd-ring", "dpmsgd-time-varying", "dpsgd-random-graph"],
)
def test_gossip_algorithms_match_stacked_reference(tmp_path: Path, name: str, hparams: dict, topology_cfg: dict, world_size: int) -> None:
    steps, lr = 12, 0.1
    shards = make_data(world_size)
    results = run_agents(_agent_trajectory, world_size, tmp_path, name, hparams, topology_cfg, steps, lr, False, shards)
    expected = reference_trajectory(name, hparams.get("momentum", 0.0), topology_cfg, world_size, steps, lr, False, shards)
    for rank, trajectory in enumerate(results):
        torch.testing.assert_close(trajectory, expected[rank], rtol=1e-10, atol=1e-10, msg=f"agent {rank} diverges from the reference")
    # The models really moved and really mixed: the test would catch a no-op exchange.
    assert float((expected[:, -1] - expected[:, 0]).abs().max()) > 1e-2


def test_dpsgd_with_zero_lr_reaches_exact_average_at_spectral_rate(tmp_path: Path) -> None:
    world_size, steps = 5, 40
    shards = make_data(world_size)
    results = run_agents(_agent_trajectory, world_size, tmp_path, "dpsgd", {}, RING, steps, 0.0, False, shards)
    stacked = torch.stack(results, dim=1)  # (steps + 1, agents, params)
    average = stacked[0].mean(dim=0)
    distances = (stacked - average).pow(2).sum(dim=(1, 2)).sqrt().numpy()
    rate = consensus_rate(build_topology(RING, world_size).mixing_matrix())
    # Exact average: the mean is preserved at every step and every agent reaches it.
    torch.testing.assert_close(stacked.mean(dim=1), average.expand(steps + 1, -1), rtol=0, atol=1e-12)
    torch.testing.assert_close(stacked[-1], average.expand(world_size, -1), rtol=0, atol=1e-9)
    # Never slower than the spectral rate, and (generic start) asymptotically exactly that rate.
    ratios = distances[1:] / distances[:-1]
    assert np.all(ratios <= rate * (1 + 1e-6))
    assert abs(ratios[15] - rate) < 1e-3 * rate, f"observed contraction {ratios[15]:.6f}, spectral prediction {rate:.6f}"


def _centralized_agent(rank: int, world_size: int, steps: int, lr: float, momentum: float, shards: list) -> torch.Tensor:
    return _agent_trajectory(rank, world_size, "centralized", {"momentum": momentum}, RING, steps, lr, False, shards)[-1]


def test_centralized_equals_one_process_on_the_union(tmp_path: Path) -> None:
    world_size, steps, lr, momentum = 3, 10, 0.2, 0.9
    shards = make_data(world_size)
    results = run_agents(_centralized_agent, world_size, tmp_path, steps, lr, momentum, shards)
    # The reference: torch's own SGD on all data in one process, from rank 0's initial model.
    model = make_model(0, same_init=False)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=0.01)
    inputs, targets = torch.cat([x for x, _ in shards]), torch.cat([y for _, y in shards])
    for _ in range(steps):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(inputs), targets).backward()
        optimizer.step()
    expected = torch.nn.utils.parameters_to_vector(model.parameters()).detach()
    for rank, final in enumerate(results):
        torch.testing.assert_close(final, expected, rtol=1e-10, atol=1e-10, msg=f"agent {rank}")
