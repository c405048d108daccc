"""Push-sum family over real processes: exact averaging on directed time-varying graphs, and SGP,
Sparse-Push and SCSP step by step against single-process references of their equations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from multiproc import run_agents
from test_algorithms_distributed import _agent_trajectory, _load, _stacked_gradients, make_data, make_model

from cgatrain.topology import build_topology

pytestmark = [pytest.mark.multiproc, pytest.mark.timeout(180)]

# Two directed graphs with different out-degrees, switched every step: column but not row stochastic.
DIRECTED_SWITCHING = {
    "schedule": [
        {"graph": "directed_ring"},
        {"graph": "custom", "edges": [[0, 1], [1, 2], [2, 3], [3, 0], [0, 2], [2, 0]], "directed": True},
    ],
    "switch_every": 1,
    "switch_unit": "step",
    "weights": "uniform",
}


def test_push_sum_reaches_the_exact_average_where_plain_gossip_does_not(tmp_path: Path) -> None:
    world_size, steps = 4, 80
    shards = make_data(world_size)
    push_sum = run_agents(_agent_trajectory, world_size, tmp_path, "sgp", {"momentum": 0.0}, DIRECTED_SWITCHING, steps, 0.0, False, shards)
    gossip = run_agents(_agent_trajectory, world_size, tmp_path, "dpsgd", {}, DIRECTED_SWITCHING, steps, 0.0, False, shards)
    average = torch.stack([trajectory[0] for trajectory in push_sum]).mean(dim=0)
    for rank in range(world_size):
        torch.testing.assert_close(push_sum[rank][-1], average, rtol=0, atol=1e-10, msg=f"push-sum agent {rank}")
    # Plain gossip with the same column-stochastic weights keeps the sum but not the average:
    # agent i ends near n * pi_i * average, pi the ergodic weights of the graph sequence.
    gossip_final = torch.stack([trajectory[-1] for trajectory in gossip])
    torch.testing.assert_close(gossip_final.mean(dim=0), average, rtol=0, atol=1e-10)
    for rank in range(world_size):
        assert float((gossip_final[rank] - average).abs().max()) > 1e-2, f"plain gossip agent {rank} reached the average"


def _scaled_sign(v: torch.Tensor) -> torch.Tensor:
    scale = (v.abs().sum() / v.numel()).float().double()
    return scale * torch.where(v >= 0, 1.0, -1.0).double()


def reference_push_sum(name: str, hparams: dict[str, Any], topology_cfg: dict, world_size: int, steps: int, lr: float,
                       shards: list, compressed: bool) -> torch.Tensor:
    """SGP: X = W (X - lr G(Z)); Sparse-Push/SCSP: Algorithm 1 (+2) on the stacked agents. Returns Z."""
    models = [make_model(r, False) for r in range(world_size)]
    topology = build_topology(topology_cfg, world_size, seed=3)
    numerators = torch.stack([torch.nn.utils.parameters_to_vector(m.parameters()).detach() for m in models])
    weights, errors = torch.ones(world_size, 1, dtype=torch.float64), torch.zeros_like(numerators)
    debiased, trajectory = numerators.clone(), [numerators.clone()]
    eta = hparams.get("eta", 1.0)
    for step in range(steps):
        _load(models, debiased)
        x_hat = numerators - lr * _stacked_gradients(models, shards)
        W = torch.from_numpy(topology.mixing_matrix(step, 0))
        if name == "sgp":
            numerators, weights = W @ x_hat, W @ weights
        else:
            corrected = x_hat + errors
            sent = torch.stack([_scaled_sign(row) for row in corrected]) if compressed else corrected
            errors = corrected - sent
            numerators = x_hat + eta * (W - torch.eye(world_size)) @ sent
            weights = weights + eta * (W - torch.eye(world_size)) @ weights
            every = hparams.get("gossip_every")
            if name == "scsp" and every and (step + 1) % every == 0:
                for offset in range(hparams["gossip_steps"]):
                    W_gossip = torch.from_numpy(topology.mixing_matrix(step + 1 + offset, 0))
                    gossip_eta = hparams["gossip_eta"]
                    numerators = numerators + gossip_eta * (W_gossip - torch.eye(world_size)) @ numerators
                    weights = weights + gossip_eta * (W_gossip - torch.eye(world_size)) @ weights
        debiased = numerators / weights
        trajectory.append(debiased.clone())
    return torch.stack(trajectory, dim=1)


@pytest.mark.parametrize(
    ("name", "hparams", "compressor"),
    [
        ("sgp", {"momentum": 0.0}, "identity"),
        ("sparse_push", {"eta": 0.5, "momentum": 0.0}, "identity"),
        ("sparse_push", {"eta": 0.3, "momentum": 0.0}, "sign"),
        ("scsp", {"eta": 0.4, "momentum": 0.0, "gossip_steps": 3, "gossip_every": 4, "gossip_eta": 0.7}, "sign"),
    ],
    ids=["sgp", "sparse-push-exact", "sparse-push-sign", "scsp-sign"],
)
def test_push_sum_family_matches_reference(tmp_path: Path, name: str, hparams: dict, compressor: str) -> None:
    world_size, steps, lr = 4, 9, 0.1
    shards = make_data(world_size)
    results = run_agents(_agent_trajectory, world_size, tmp_path, name, hparams, DIRECTED_SWITCHING, steps, lr, False, shards, compressor)
    expected = reference_push_sum(name, hparams, DIRECTED_SWITCHING, world_size, steps, lr, shards, compressed=compressor == "sign")
    for rank, trajectory in enumerate(results):
        torch.testing.assert_close(trajectory, expected[rank], rtol=1e-9, atol=1e-10, msg=f"{name} agent {rank}")
    assert float((expected[:, -1] - expected[:, 0]).abs().max()) > 1e-2
