"""CGA and CompCGA over real processes against a single-process reference of Algorithms 1 and 2.

The reference solves each QP independently of cgatrain's quadprog code: the dual of eq. 5 is the
bounded least-squares problem min_u 1/2 ||G^T u + g||^2, u >= margin (scipy's lsq_linear).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from multiproc import run_agents
from scipy.optimize import lsq_linear
from test_algorithms_distributed import _agent_trajectory, make_data, make_model
from torch import nn

from cgatrain.algorithms import FlatModel, LocalObjective
from cgatrain.algorithms.cross_grad import CrossGradients
from cgatrain.topology import build_topology

pytestmark = [pytest.mark.multiproc, pytest.mark.timeout(180)]

RING = {"graph": "ring", "weights": "uniform"}
COMPLETE = {"graph": "complete", "weights": "uniform"}
PAPER = {"momentum": 0.9, "momentum_form": "heavy_ball", "qp_scope": "whole", "dual_margin": 0.0, "scale_by_mixing": False}
AUTHORS = {"momentum": 0.9, "momentum_form": "nesterov", "qp_scope": "per_tensor", "dual_margin": 0.5, "ridge": 1e-12, "scale_by_mixing": True}


def flat_gradient(params: torch.Tensor, shard: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """grad f(D; params) + weight decay, on a fresh model holding `params`."""
    module = make_model(0, same_init=True)
    torch.nn.utils.vector_to_parameters(params.clone(), module.parameters())
    nn.functional.cross_entropy(module(shard[0]), shard[1]).backward()
    return torch.cat([p.grad.reshape(-1) for p in module.parameters()]) + 0.01 * params


def scaled_sign(memory: dict[Any, torch.Tensor], key: Any, gradient: torch.Tensor) -> torch.Tensor:
    """Algorithm 2's error feedback: p = g + e, delta = (||p||_1 / d) sign(p), e = p - delta."""
    corrected = gradient + memory.get(key, torch.zeros_like(gradient))
    scale = (corrected.abs().sum() / corrected.numel()).float().double()
    delta = scale * torch.where(corrected >= 0, 1.0, -1.0).double()
    memory[key] = corrected - delta
    return delta


def qp_direction(own: torch.Tensor, rows: torch.Tensor, margin: float) -> torch.Tensor:
    if rows.shape[0] == 0:
        return own
    solution = lsq_linear(rows.T.numpy(), -own.numpy(), bounds=(margin, np.inf), tol=1e-14, method="bvls")
    return own + rows.T @ torch.from_numpy(solution.x)


def reference_cga(hparams: dict[str, Any], topology_cfg: dict, world_size: int, steps: int, lr: float, shards: list, compressed: bool) -> torch.Tensor:
    topology = build_topology(topology_cfg, world_size, seed=3)
    models = torch.stack([torch.nn.utils.parameters_to_vector(make_model(r, False).parameters()).detach() for r in range(world_size)])
    boundaries = np.cumsum([0] + [p.numel() for p in make_model(0, True).parameters()])
    velocity, memory, trajectory = torch.zeros_like(models), {}, [models.clone()]
    beta, margin = hparams["momentum"], hparams["dual_margin"]
    for step in range(steps):
        mixing = torch.from_numpy(topology.mixing_matrix(step, 0))
        updated = torch.empty_like(models)
        for j in range(world_size):
            peers = topology.in_neighbors(j, step, 0)
            own = flat_gradient(models[j], shards[j])
            # g_jl: the gradient of neighbour l's data at j's model, computed (and compressed) by l.
            rows = [flat_gradient(models[j], shards[peer]) for peer in peers]
            if compressed:
                own = scaled_sign(memory, (j, j), own)
                rows = [scaled_sign(memory, (j, peer), row) for row, peer in zip(rows, peers)]
            stacked = torch.stack(rows) if rows else own.new_empty(0, own.numel())
            if hparams["scale_by_mixing"]:
                own, stacked = own * mixing[j, j], stacked * mixing[j, peers].unsqueeze(1)
            if hparams["qp_scope"] == "whole":
                direction = qp_direction(own, stacked, margin)
            else:
                direction = torch.cat([qp_direction(own[a:b], stacked[:, a:b], margin) for a, b in zip(boundaries[:-1], boundaries[1:])])
            mixed = mixing[j] @ models
            if hparams["momentum_form"] == "heavy_ball":
                velocity[j] = beta * velocity[j] - lr * direction
                updated[j] = mixed + velocity[j]
            else:
                velocity[j] = beta * velocity[j] + direction
                updated[j] = mixed - lr * (direction + beta * velocity[j])
        models = updated
        trajectory.append(models.clone())
    return torch.stack(trajectory, dim=1)


@pytest.mark.parametrize(
    ("name", "hparams", "topology_cfg", "world_size", "compressor"),
    [
        ("cga", PAPER, RING, 4, "identity"),
        ("cga", AUTHORS, COMPLETE, 3, "identity"),
        ("compcga", PAPER, RING, 3, "sign"),
    ],
    ids=["cga-paper-ring", "cga-authors-complete", "compcga-sign-ring"],
)
def test_cga_matches_single_process_reference(tmp_path: Path, name: str, hparams: dict, topology_cfg: dict, world_size: int, compressor: str) -> None:
    steps, lr = 8, 0.1
    shards = make_data(world_size)
    results = run_agents(_agent_trajectory, world_size, tmp_path, name, hparams, topology_cfg, steps, lr, False, shards, compressor)
    expected = reference_cga(hparams, topology_cfg, world_size, steps, lr, shards, compressed=compressor != "identity")
    for rank, trajectory in enumerate(results):
        torch.testing.assert_close(trajectory, expected[rank], rtol=1e-6, atol=1e-7, msg=f"agent {rank} diverges from Algorithm {'2' if compressor != 'identity' else '1'}")
    assert float((expected[:, -1] - expected[:, 0]).abs().max()) > 1e-2


def _bytes_by_round(rank: int, world_size: int, compressor: str, shards: list) -> dict[str, int]:
    from cgatrain.algorithms import AgentContext, get_algorithm
    from cgatrain.comm import NeighborExchange

    model = FlatModel(make_model(rank, False))
    objective = LocalObjective(model, nn.CrossEntropyLoss())
    objective.set_batch(*shards[rank])
    exchange = NeighborExchange(rank, world_size, torch.device("cpu"))
    context = AgentContext(rank, world_size, model, objective, build_topology(RING, world_size), exchange, {"name": compressor})
    algorithm = get_algorithm("compcga")(context, {})
    algorithm.setup()
    algorithm.step(0.1, 0, 0)
    return {name: stats.bytes_sent for name, stats in exchange.stats.items()} | {"numel": model.numel}


def test_compcga_cross_gradients_travel_as_packed_sign_bits(tmp_path: Path) -> None:
    shards = make_data(3)
    signed = run_agents(_bytes_by_round, 3, tmp_path, "sign", shards)
    plain = run_agents(_bytes_by_round, 3, tmp_path, "identity", shards)
    numel = signed[0]["numel"]
    for rank in range(3):
        # Two ring neighbours: a float64 model each in "model", packed bits plus one float32 scale in "cross_grad".
        assert signed[rank]["model"] == plain[rank]["model"] == 2 * numel * 8
        assert signed[rank]["cross_grad"] == 2 * ((numel + 7) // 8 + 4)
        assert plain[rank]["cross_grad"] == 2 * numel * 8


@pytest.mark.parametrize("model_kind", ["mlp", "cnn"])
def test_batched_and_looped_cross_gradients_agree(model_kind: str) -> None:
    torch.manual_seed(0)
    if model_kind == "mlp":
        module, inputs = make_model(0, True), torch.randn(16, 4, dtype=torch.float64)
    else:
        module = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(16, 3)).double()
        inputs = torch.randn(16, 1, 4, 4, dtype=torch.float64)
    objective = LocalObjective(FlatModel(module), nn.CrossEntropyLoss(), weight_decay=0.05)
    objective.set_batch(inputs, torch.randint(0, 3, (16,)))
    models = objective.flat_model.params + 0.1 * torch.randn(5, objective.flat_model.numel, dtype=torch.float64)
    batched = CrossGradients(objective, "batched").compute(models)
    looped = CrossGradients(objective, "loop").compute(models)
    torch.testing.assert_close(batched, looped, rtol=1e-10, atol=1e-12)
    # Row i is really the gradient at model i: check one against plain autograd.
    objective.flat_model.params.copy_(models[3])
    objective.self_gradient()
    torch.testing.assert_close(looped[3], objective.flat_model.grad, rtol=1e-12, atol=1e-12)


def test_batched_cross_gradients_draw_a_dropout_mask_per_model() -> None:
    """The authors' CNN has dropout: vmap (auto's choice on GPUs) must run it, one mask per model as the loop does."""
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(4, 32), nn.Dropout(0.5), nn.Linear(32, 3)).double()
    objective = LocalObjective(FlatModel(module), nn.CrossEntropyLoss(), weight_decay=0.0)
    objective.set_batch(torch.randn(16, 4, dtype=torch.float64), torch.randint(0, 3, (16,)))
    same = objective.flat_model.params.detach().clone().expand(2, -1).contiguous()
    batched = CrossGradients(objective, "batched").compute(same)
    assert batched.shape == same.shape and bool(torch.isfinite(batched).all())
    assert not torch.allclose(batched[0], batched[1]), "two models under one dropout mask"
    module.eval()  # no dropout: batched and looped agree exactly again
    torch.testing.assert_close(CrossGradients(objective, "batched").compute(same), CrossGradients(objective, "loop").compute(same), rtol=1e-10, atol=1e-12)
