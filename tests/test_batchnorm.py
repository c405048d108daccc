"""BatchNorm in decentralized training: buffers live in the flat model, `model.buffers=local|average`,
cross-gradients leave every agent's statistics alone, and resuming is bit-exact with buffers."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from multiproc import run_agents
from torch import nn

from cgatrain.algorithms import AgentContext, FlatModel, LocalObjective, get_algorithm
from cgatrain.algorithms.buffers import BufferMixer, average_buffers
from cgatrain.algorithms.cross_grad import CrossGradients
from cgatrain.algorithms.fedavg import chosen_clients
from cgatrain.comm import NeighborExchange
from cgatrain.topology import build_topology

RING = {"graph": "ring", "weights": "uniform"}


def bn_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 3))


def bn_batch(rank: int, samples: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(10 + rank)
    return torch.randn(samples, 2, 4, 4, generator=generator) * (1 + rank) + rank, torch.arange(samples) % 3


def test_reporting_a_loss_leaves_batchnorm_statistics_alone() -> None:
    """FedAvg's idle clients report a loss in training mode: that forward pass must not move the statistics."""
    model = FlatModel(bn_model())
    objective = LocalObjective(model, nn.CrossEntropyLoss())
    objective.set_batch(*bn_batch(1))
    before, counter = model.buffers.clone(), int(model.counters[0])
    assert objective.loss() > 0
    assert torch.equal(model.buffers, before) and int(model.counters[0]) == counter
    objective.self_gradient()
    assert not torch.equal(model.buffers, before)  # a training step does move them: the check above is not vacuous


def test_flat_model_holds_buffers_as_views_and_round_trips_them() -> None:
    model = FlatModel(bn_model())
    assert model.buffers.numel() == 8 and len(model.counters) == 1
    before = model.buffers.clone()
    model.module(bn_batch(0)[0])
    assert not torch.equal(before, model.buffers) and int(model.counters[0]) == 1  # the module updated the flat vector
    saved = model.state_dict()
    other = FlatModel(bn_model(seed=5))
    other.load_state_dict(saved)
    assert torch.equal(other.buffers, model.buffers) and int(other.counters[0]) == 1
    assert torch.equal(other.module[1].running_mean, model.module[1].running_mean)


@pytest.mark.parametrize("mode", ["loop", "batched"])
def test_cross_gradients_use_batch_statistics_and_touch_no_running_statistics(mode: str) -> None:
    model = FlatModel(bn_model())
    objective = LocalObjective(model, nn.CrossEntropyLoss())
    objective.set_batch(*bn_batch(0))
    neighbours = torch.stack([FlatModel(bn_model(seed)).params for seed in (1, 2)])
    buffers = model.buffers.clone()
    gradients = CrossGradients(objective, mode).compute(neighbours)
    assert torch.equal(model.buffers, buffers)
    for row, seed in enumerate((1, 2)):
        reference = copy.deepcopy(bn_model(seed)).train()  # the neighbour's model, trained on this agent's batch
        nn.CrossEntropyLoss()(reference(objective.inputs), objective.targets).backward()
        expected = torch.cat([p.grad.reshape(-1) for p in reference.parameters()])
        assert torch.allclose(gradients[row], expected, atol=1e-6)


def _mixing_step(rank: int, world_size: int, mode: str) -> tuple[torch.Tensor, torch.Tensor]:
    model = FlatModel(bn_model())
    objective = LocalObjective(model, nn.CrossEntropyLoss())
    objective.set_batch(*bn_batch(rank))
    topology = build_topology(RING, world_size, seed=0)
    context = AgentContext(rank, world_size, model, objective, topology, NeighborExchange(rank, world_size, torch.device("cpu")))
    algorithm = get_algorithm("dpmsgd")(context, {})
    algorithm.setup()
    mixer = BufferMixer(algorithm, mode)
    algorithm.step(0.1, 0, 0)
    before = model.buffers.clone()
    everyone = [torch.empty_like(before) for _ in range(world_size)]
    torch.distributed.all_gather(everyone, before)
    mixer.after_step(0, 0)
    weights = torch.tensor(topology.mixing_matrix(0, 0)[rank], dtype=before.dtype)
    expected = sum(w * b for w, b in zip(weights, everyone)) if mode == "average" else before
    return model.buffers.clone(), expected


@pytest.mark.multiproc
@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", ["local", "average"])
def test_buffers_are_mixed_with_the_parameters_weights_only_when_asked(tmp_path: Path, mode: str) -> None:
    for mixed, expected in run_agents(_mixing_step, 3, tmp_path, mode):
        assert torch.allclose(mixed, expected, atol=1e-6)


def _fresh(rank: int, world_size: int, name: str, exchange: NeighborExchange, mode: str) -> tuple[FlatModel, object, BufferMixer]:
    model = FlatModel(bn_model())
    objective = LocalObjective(model, nn.CrossEntropyLoss(), weight_decay=0.01)
    objective.set_batch(*bn_batch(rank))
    context = AgentContext(rank, world_size, model, objective, build_topology(RING, world_size, seed=3), exchange)
    algorithm = get_algorithm(name)(context, {})
    algorithm.setup()
    return model, algorithm, BufferMixer(algorithm, mode)


def _steps(algorithm: object, mixer: BufferMixer, start: int, stop: int) -> None:
    for step in range(start, stop):
        algorithm.step(0.05, step, 0)
        mixer.after_step(step, 0)


def _stop_and_resume(rank: int, world_size: int, name: str, mode: str) -> tuple[torch.Tensor, ...]:
    exchange = NeighborExchange(rank, world_size, torch.device("cpu"))
    model, algorithm, mixer = _fresh(rank, world_size, name, exchange, mode)
    _steps(algorithm, mixer, 0, 6)
    uninterrupted = (model.params.clone(), model.buffers.clone(), average_buffers(model.buffers, world_size))
    model, algorithm, mixer = _fresh(rank, world_size, name, exchange, mode)
    _steps(algorithm, mixer, 0, 3)
    saved = {"params": model.params.clone(), **model.state_dict()}
    saved_algorithm = {k: v.clone() for k, v in algorithm.state_dict().items()}
    model, algorithm, mixer = _fresh(rank, world_size, name, exchange, mode)
    model.params.copy_(saved["params"])
    model.load_state_dict(saved)
    algorithm.load_state_dict(saved_algorithm)
    _steps(algorithm, mixer, 3, 6)
    return (*uninterrupted, model.params.clone(), model.buffers.clone())


@pytest.mark.multiproc
@pytest.mark.timeout(180)
@pytest.mark.parametrize(("name", "mode"), [("cga", "average"), ("cga", "local"), ("dpmsgd", "average")])
def test_resume_is_bit_exact_with_batchnorm(tmp_path: Path, name: str, mode: str) -> None:
    results = run_agents(_stop_and_resume, 3, tmp_path, name, mode)
    for params, buffers, _, resumed_params, resumed_buffers in results:
        assert torch.equal(params, resumed_params) and torch.equal(buffers, resumed_buffers)
    spread = max(float((r[1] - results[0][1]).abs().max()) for r in results)
    assert spread > 0  # agents' statistics differ (different data), so the checks above mean something


EVERY_SECOND, EVERY = (1, 3), (0, 1, 2, 3)  # the steps after which a run mixes its parameters
SAMPLES = (10, 20, 30, 40)  # shard sizes, FedAvg's weights


def _buffer_history(rank: int, world_size: int, name: str, hparams: dict, mixes_at: tuple[int, ...]) -> tuple[list, float]:
    """Four steps with `model.buffers=average`: every agent's buffers and parameters before the buffer
    round, this agent's buffers after it, and SwarmSGD's partner."""
    model = FlatModel(bn_model())
    objective = LocalObjective(model, nn.CrossEntropyLoss())
    objective.set_batch(*bn_batch(rank))
    exchange = NeighborExchange(rank, world_size, torch.device("cpu"))
    topology = build_topology(RING, world_size, seed=0)
    context = AgentContext(rank, world_size, model, objective, topology, exchange, seed=7, samples=SAMPLES[rank])
    algorithm = get_algorithm(name)(context, hparams)
    algorithm.setup()
    mixer = BufferMixer(algorithm, "average")
    history = []
    for step in range(4):
        algorithm.step(0.05, step, 0)
        buffers = [torch.empty_like(model.buffers) for _ in range(world_size)]
        params = [torch.empty_like(model.params) for _ in range(world_size)]
        torch.distributed.all_gather(buffers, model.buffers)
        torch.distributed.all_gather(params, model.params)
        mixer.after_step(step, 0)
        partner = algorithm.partner(step, 0) if name == "swarmsgd" and step in mixes_at else -1
        history.append((torch.stack(buffers), torch.stack(params), model.buffers.clone(), partner))
    return history, exchange.stats["buffers"].bytes_received if "buffers" in exchange.stats else 0.0


def _expected_buffers(name: str, hparams: dict, step: int, rank: int, everyone: torch.Tensor, partner: int) -> torch.Tensor:
    """The single-process rule: what the parameters' mixing at a mixing `step` makes of every agent's buffers."""
    if name == "fedavg":
        chosen = chosen_clients(7, step // 2, hparams["client_fraction"], len(everyone))
        return sum(SAMPLES[k] * everyone[k] for k in chosen) / sum(SAMPLES[k] for k in chosen)
    if name == "swarmsgd":
        return (everyone[rank] + everyone[partner]) / 2 if partner >= 0 else everyone[rank]
    if name == "centralized" or hparams.get("average_with") == "allreduce":
        return everyone.mean(0)
    row = torch.tensor(build_topology(RING, len(everyone), seed=0).mixing_matrix(step, 0)[rank], dtype=everyone.dtype)
    return (row[:, None] * everyone).sum(0)


@pytest.mark.multiproc
@pytest.mark.timeout(120)
@pytest.mark.parametrize(("name", "hparams", "mixes_at"), [
    ("fedavg", {"client_fraction": 0.5, "local_steps": 2}, EVERY_SECOND),
    ("swarmsgd", {"local_steps": 2}, EVERY_SECOND),
    ("local", {"average_every": 2, "average_with": "allreduce"}, EVERY_SECOND),
    ("local", {"average_every": 2, "average_with": "gossip"}, EVERY_SECOND),
    ("centralized", {}, EVERY),
    ("ngo", {}, EVERY),  # nonlinear on parameters, linear gossip on buffers
])
def test_buffers_are_averaged_exactly_when_and_as_the_parameters_are(tmp_path: Path, name: str, hparams: dict, mixes_at: tuple[int, ...]) -> None:
    results = run_agents(_buffer_history, 4, tmp_path, name, hparams, mixes_at)
    assert sum(buffer_bytes for _, buffer_bytes in results) > 0  # the buffers travel in their own, counted round
    for rank, (history, _) in enumerate(results):
        for step, (everyone, params, mixed, partner) in enumerate(history):
            expected = _expected_buffers(name, hparams, step, rank, everyone, partner) if step in mixes_at else everyone[rank]
            assert torch.allclose(mixed, expected, atol=1e-6), (rank, step)
            if step not in mixes_at:
                assert torch.equal(mixed, everyone[rank])  # no parameter mixing, no buffer mixing
            elif name == "swarmsgd" and partner >= 0:
                assert history[step][3] == partner and results[partner][0][step][3] == rank
                assert torch.equal(params[rank], params[partner])  # the pair averaged its models too
            elif name in ("fedavg", "centralized") or hparams.get("average_with") == "allreduce":
                assert all(torch.allclose(p, params[0]) for p in params)  # every agent holds the averaged model
    first = results[0][0]
    assert (first[0][0] - first[0][0][0]).abs().max() > 0  # agents' statistics differ, so the checks mean something
