"""CDSGD, CDMSGD, FedAvg and periodic-averaging local SGD over real Gloo processes, against
single-process references of their equations; equivalences with centralized SGD; resume."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from multiproc import run_agents, stop_and_resume
from test_algorithms_distributed import (
    RING,
    SWITCHING,
    _load,
    _stacked_gradients,
    make_data,
    make_model,
)
from torch import nn

from cgatrain.algorithms import AgentContext, FlatModel, LocalObjective, get_algorithm
from cgatrain.algorithms.fedavg import chosen_clients, clients_per_round
from cgatrain.comm import NeighborExchange
from cgatrain.topology import build_topology

pytestmark = [pytest.mark.multiproc, pytest.mark.timeout(180)]

COMPLETE = {"graph": "complete", "weights": "uniform"}


def uneven_data(world_size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Fixed full-batch shards of different sizes (6, 8, 10, ... samples), so data-size weights matter."""
    return [(inputs[: 6 + 2 * rank], targets[: 6 + 2 * rank]) for rank, (inputs, targets) in enumerate(make_data(world_size, 16))]


def _build(rank: int, world_size: int, name: str, hparams: dict[str, Any], topology_cfg: dict[str, Any], shards: list,
           exchange: NeighborExchange, same_init: bool = False):
    model = FlatModel(make_model(rank, same_init))
    objective = LocalObjective(model, nn.CrossEntropyLoss(), weight_decay=0.01)
    objective.set_batch(*shards[rank])
    topology = build_topology(topology_cfg, world_size, seed=3)
    context = AgentContext(rank, world_size, model, objective, topology, exchange, seed=11, samples=len(shards[rank][1]), steps_per_epoch=3)
    algorithm = get_algorithm(name)(context, hparams)
    algorithm.setup()
    return model, algorithm


def _trajectory(rank: int, world_size: int, name: str, hparams: dict[str, Any], topology_cfg: dict[str, Any],
                steps: int, lr: float, shards: list) -> dict[str, Any]:
    """Runs in each agent process: parameters after every step, and the byte counters."""
    exchange = NeighborExchange(rank, world_size, torch.device("cpu"))
    model, algorithm = _build(rank, world_size, name, hparams, topology_cfg, shards, exchange)
    trajectory = [model.params.clone()]
    for step in range(steps):
        algorithm.step(lr, step, 0)
        trajectory.append(model.params.clone())
    stats = {round_name: (s.bytes_sent, s.bytes_received) for round_name, s in exchange.stats.items()}
    evaluated = algorithm.evaluated_params()
    return {"trajectory": torch.stack(trajectory), "stats": stats, "metrics": algorithm.epoch_metrics(), "numel": model.numel,
            "evaluated": None if evaluated is None else evaluated.clone()}


def _initial(world_size: int) -> torch.Tensor:
    return torch.stack([torch.nn.utils.parameters_to_vector(make_model(rank, False).parameters()).detach() for rank in range(world_size)])


def _gradients(stacked: torch.Tensor, shards: list) -> torch.Tensor:
    models = [make_model(0, False) for _ in shards]
    _load(models, stacked)
    return _stacked_gradients(models, shards)


def reference_cdmsgd(nesterov: bool, mu: float, topology_cfg: dict, world_size: int, steps: int, lr: float, shards: list) -> torch.Tensor:
    """v <- mu v - lr g(x); x <- W x + mu v - lr g(x) (Nesterov) or W x + v (Polyak)."""
    topology = build_topology(topology_cfg, world_size, seed=3)
    stacked, trajectory = _initial(world_size), []
    velocity = torch.zeros_like(stacked)
    trajectory.append(stacked.clone())
    for step in range(steps):
        gradients = _gradients(stacked, shards)
        mixing = torch.from_numpy(topology.mixing_matrix(step, 0))
        velocity = mu * velocity - lr * gradients
        stacked = mixing @ stacked + (mu * velocity - lr * gradients if nesterov else velocity)
        trajectory.append(stacked.clone())
    return torch.stack(trajectory, dim=1)


@pytest.mark.parametrize(
    ("hparams", "topology_cfg", "world_size"),
    [({"momentum": 0.9}, RING, 4), ({"momentum": 0.8, "nesterov": False}, SWITCHING, 4), ({"momentum": 0.5}, COMPLETE, 5)],
    ids=["nesterov-ring", "polyak-time-varying", "nesterov-complete"],
)
def test_cdmsgd_matches_reference(tmp_path: Path, hparams: dict, topology_cfg: dict, world_size: int) -> None:
    steps, lr, shards = 10, 0.1, make_data(world_size)
    results = run_agents(_trajectory, world_size, tmp_path, "cdmsgd", hparams, topology_cfg, steps, lr, shards)
    expected = reference_cdmsgd(hparams.get("nesterov", True), hparams["momentum"], topology_cfg, world_size, steps, lr, shards)
    for rank, result in enumerate(results):
        torch.testing.assert_close(result["trajectory"], expected[rank], rtol=1e-10, atol=1e-10, msg=f"agent {rank}")
    assert float((expected[:, -1] - expected[:, 0]).abs().max()) > 1e-2


def test_cdsgd_is_dpsgd(tmp_path: Path) -> None:
    assert issubclass(get_algorithm("cdsgd"), get_algorithm("dpsgd"))
    assert "step" not in vars(get_algorithm("cdsgd"))  # the same law, not a copy
    shards = make_data(4)
    cdsgd = run_agents(_trajectory, 4, tmp_path, "cdsgd", {}, RING, 6, 0.1, shards)
    dpsgd = run_agents(_trajectory, 4, tmp_path, "dpsgd", {}, RING, 6, 0.1, shards)
    for rank in range(4):
        assert torch.equal(cdsgd[rank]["trajectory"], dpsgd[rank]["trajectory"])


def reference_fedavg(fraction: float, round_length: int, world_size: int, steps: int, lr: float, shards: list) -> torch.Tensor:
    """Rounds of R local SGD steps by the chosen clients from the global model, then sum_k n_k x_k / sum_k n_k."""
    global_model = _initial(world_size)[0]  # the server starts from agent 0's model
    sizes = torch.tensor([float(len(targets)) for _, targets in shards], dtype=torch.float64)
    stacked, trajectory = global_model.expand(world_size, -1).clone(), []
    trajectory.append(stacked.clone())
    for step in range(steps):
        round_index, position = divmod(step, round_length)
        chosen = chosen_clients(11, round_index, fraction, world_size)
        gradients = _gradients(stacked, shards)
        for k in chosen:
            stacked[k] -= lr * gradients[k]
        if position == round_length - 1:
            weights = torch.zeros(world_size, dtype=torch.float64)
            weights[chosen] = sizes[chosen]
            global_model = (weights[:, None] * stacked).sum(0) / weights.sum()
            stacked = global_model.expand(world_size, -1).clone()
        trajectory.append(stacked.clone())
    return torch.stack(trajectory, dim=1)


@pytest.mark.parametrize(("fraction", "local_steps", "world_size"), [(0.6, 3, 5), (1.0, 2, 3)], ids=["C0.6-R3", "C1-R2"])
def test_fedavg_matches_reference(tmp_path: Path, fraction: float, local_steps: int, world_size: int) -> None:
    steps, lr, shards = 11, 0.2, uneven_data(world_size)  # 11 steps: the last round is cut mid-way
    hparams = {"client_fraction": fraction, "local_steps": local_steps}
    results = run_agents(_trajectory, world_size, tmp_path, "fedavg", hparams, RING, steps, lr, shards)
    expected = reference_fedavg(fraction, local_steps, world_size, steps, lr, shards)
    rounds = steps // local_steps
    chosen = [chosen_clients(11, r, fraction, world_size) for r in range(rounds)]
    for rank, result in enumerate(results):
        torch.testing.assert_close(result["trajectory"], expected[rank], rtol=1e-10, atol=1e-10, msg=f"agent {rank}")
        # Metrics score the last global model, not a client's half-finished round.
        torch.testing.assert_close(result["evaluated"], expected[0, rounds * local_steps], rtol=1e-10, atol=1e-10)
        # Server traffic: one upload per round the agent was chosen in, one download per round.
        model_bytes = result["numel"] * 8
        uploads = sum(rank in c for c in chosen)
        assert result["stats"]["server_average"] == (uploads * model_bytes, rounds * model_bytes)
        assert result["metrics"]["fedavg_rounds"] == rounds
        assert result["metrics"]["server_mb_sent"] == pytest.approx(rounds * world_size * model_bytes / 1e6)
        assert result["metrics"]["server_mb_received"] == pytest.approx(sum(len(c) for c in chosen) * model_bytes / 1e6)
    assert float((expected[:, -1] - expected[:, 0]).abs().max()) > 1e-2


def test_client_draws_are_shared_seeded_and_sized() -> None:
    assert clients_per_round(0.6, 5) == 3 and clients_per_round(0.01, 5) == 1 and clients_per_round(1.0, 7) == 7
    draws = [chosen_clients(0, r, 0.4, 10) for r in range(50)]
    assert all(len(d) == 4 and len(set(d)) == 4 and all(0 <= a < 10 for a in d) for d in draws)
    assert draws == [chosen_clients(0, r, 0.4, 10) for r in range(50)]  # every agent draws the same
    assert len({tuple(d) for d in draws}) > 10 and draws != [chosen_clients(1, r, 0.4, 10) for r in range(50)]


def _final(rank: int, world_size: int, name: str, hparams: dict, steps: int, lr: float, shards: list) -> torch.Tensor:
    return _trajectory(rank, world_size, name, hparams, RING, steps, lr, shards)["trajectory"][-1]


@pytest.mark.parametrize(
    ("name", "hparams", "momentum"),
    [("fedavg", {"client_fraction": 1.0, "local_steps": 1}, 0.0),
     ("local", {"average_every": 1, "average_with": "allreduce", "momentum": 0.0}, 0.0),
     ("local", {"average_every": 1, "average_with": "allreduce", "momentum": 0.9}, 0.9)],
    ids=["fedavg-C1-one-step", "local-H1-allreduce", "local-H1-allreduce-momentum"],
)
def test_equals_centralized_sgd(tmp_path: Path, name: str, hparams: dict, momentum: float) -> None:
    """With equal shards, one step between exact averages is centralized SGD on the same batches
    (and, momentum being linear, so is local momentum SGD averaged every step)."""
    world_size, steps, lr, shards = 3, 8, 0.2, make_data(3)
    # Every agent starts from agent 0's model, as the centralized run does after its broadcast.
    ours = run_agents(_final_same_init, world_size, tmp_path, name, hparams, steps, lr, shards)
    central = run_agents(_final_same_init, world_size, tmp_path, "centralized", {"momentum": momentum}, steps, lr, shards)
    for rank in range(world_size):
        torch.testing.assert_close(ours[rank], central[rank], rtol=1e-10, atol=1e-12, msg=f"agent {rank}")
    assert float((central[0] - _initial(1)[0]).abs().max()) > 1e-2


def _final_same_init(rank: int, world_size: int, name: str, hparams: dict, steps: int, lr: float, shards: list) -> torch.Tensor:
    exchange = NeighborExchange(rank, world_size, torch.device("cpu"))
    model, algorithm = _build(rank, world_size, name, hparams, RING, shards, exchange, same_init=True)
    for step in range(steps):
        algorithm.step(lr, step, 0)
    return model.params.clone()


def reference_local(mu: float, every: int | None, gossip: bool, world_size: int, steps: int, lr: float, shards: list) -> torch.Tensor:
    """v = mu v - lr g; x = x + v; after every H-th step X <- W X (gossip) or X <- mean X."""
    mixing = torch.from_numpy(build_topology(RING, world_size, seed=3).mixing_matrix())
    stacked = _initial(world_size)
    velocity, trajectory = torch.zeros_like(stacked), [stacked.clone()]
    for step in range(steps):
        velocity = mu * velocity - lr * _gradients(stacked, shards)
        stacked = stacked + velocity
        if every is not None and (step + 1) % every == 0:
            stacked = mixing @ stacked if gossip else stacked.mean(0).expand(world_size, -1).clone()
        trajectory.append(stacked.clone())
    return torch.stack(trajectory, dim=1)


@pytest.mark.parametrize(
    ("hparams", "world_size"),
    [({"average_every": 2, "average_with": "gossip"}, 4), ({"average_every": 3, "average_with": "allreduce", "momentum": 0.5}, 3),
     ({}, 3)],
    ids=["H2-gossip", "H3-allreduce", "no-averaging"],
)
def test_local_sgd_matches_reference(tmp_path: Path, hparams: dict, world_size: int) -> None:
    steps, lr, shards = 9, 0.1, make_data(world_size)
    results = run_agents(_trajectory, world_size, tmp_path, "local", hparams, RING, steps, lr, shards)
    every = hparams.get("average_every")
    expected = reference_local(hparams.get("momentum", 0.9), every, hparams.get("average_with") == "gossip", world_size, steps, lr, shards)
    for rank, result in enumerate(results):
        torch.testing.assert_close(result["trajectory"], expected[rank], rtol=1e-10, atol=1e-10, msg=f"agent {rank}")
        if every is None:
            assert result["stats"] == {}  # the no-communication baseline stays silent
    assert float((expected[:, -1] - expected[:, 0]).abs().max()) > 1e-2


def _stop_and_resume(rank: int, world_size: int, name: str, hparams: dict, shards: list) -> tuple[torch.Tensor, torch.Tensor]:
    """Six steps straight, against three steps, a state_dict round trip into fresh objects (another start), three more."""
    exchange = NeighborExchange(rank, world_size, torch.device("cpu"))
    return stop_and_resume(lambda resumed: _build(rank, world_size, name, hparams, RING, shards, exchange, same_init=resumed))


@pytest.mark.parametrize(
    ("name", "hparams"),
    [("cdmsgd", {}), ("cdmsgd", {"nesterov": False}), ("fedavg", {"client_fraction": 0.5, "local_steps": 2}),
     ("local", {"average_every": 2, "average_with": "gossip"})],
    ids=["cdmsgd", "cdmsgd-polyak", "fedavg-mid-round", "local-gossip-H2"],
)
def test_resumed_algorithm_matches_uninterrupted(tmp_path: Path, name: str, hparams: dict) -> None:
    for rank, (uninterrupted, resumed) in enumerate(run_agents(_stop_and_resume, 4, tmp_path, name, hparams, uneven_data(4))):
        assert torch.equal(uninterrupted, resumed), f"{name} agent {rank} differs after resume"
