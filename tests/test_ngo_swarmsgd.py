"""NGO and SwarmSGD over real Gloo processes against single-process references of their equations,
their invariants, their refusals, and bit-exact resume (delayed rounds in flight included)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from multiproc import run_agents
from test_algorithms_distributed import (
    _load,
    _stacked_gradients,
    make_data,
    make_model,
    reference_trajectory,
)
from torch import nn

from cgatrain.algorithms import AgentContext, FlatModel, LocalObjective, get_algorithm
from cgatrain.algorithms.ngo import NGO
from cgatrain.comm import NeighborExchange
from cgatrain.topology import build_topology
from cgatrain.topology.per_step import is_matching, random_matching

pytestmark = [pytest.mark.multiproc, pytest.mark.timeout(240)]

RING = {"graph": "ring", "weights": "uniform"}
COMPLETE = {"graph": "complete", "weights": "uniform"}
BIPARTITE = {"graph": "bipartite", "weights": "metropolis_hastings"}
RANDOM_MH = {"graph": "random", "edge_prob": 0.5, "weights": "metropolis_hastings"}
RANDOM_BINARY = {"graph": "random", "edge_prob": 0.5, "weights": "binary"}
SEED = 3


def _agent(rank: int, world_size: int, name: str, hparams: dict[str, Any], topology_cfg: dict[str, Any],
           steps: int, lr: float, same_init: bool, shards: list, resume_at: int | None = None) -> dict[str, Any]:
    """Run `steps` steps; with `resume_at`, rebuild the algorithm from its state_dict at that step."""
    exchange = NeighborExchange(rank, world_size, torch.device("cpu"))

    def fresh() -> tuple[FlatModel, Any]:
        model = FlatModel(make_model(rank, same_init))
        objective = LocalObjective(model, nn.CrossEntropyLoss(), weight_decay=0.01)
        objective.set_batch(*shards[rank])
        context = AgentContext(rank, world_size, model, objective, build_topology(topology_cfg, world_size, seed=SEED), exchange)
        algorithm = get_algorithm(name)(context, hparams)
        algorithm.setup()
        return model, algorithm

    model, algorithm = fresh()
    trajectory, partners = [model.params.clone()], []
    for step in range(steps):
        if step == resume_at:
            algorithm.finish(step, 0)
            saved_params, saved_state = model.params.clone(), {k: v.clone() for k, v in algorithm.state_dict().items()}
            model, algorithm = fresh()
            model.params.copy_(saved_params)
            algorithm.load_state_dict(saved_state)
        algorithm.step(lr, step, 0)
        trajectory.append(model.params.clone())
        if name == "swarmsgd":
            partners.append(algorithm.partner(step, 0))
    algorithm.finish(steps, 0)
    # Agents may be up to `delay` posts apart here; the trainer's final collectives hold them, so does this.
    torch.distributed.barrier()
    sent = {name: stats.bytes_sent for name, stats in exchange.stats.items()}
    return {"trajectory": torch.stack(trajectory), "partners": partners, "bytes": sent, "model_bytes": model.params.numel() * 8}


def _phi(z: torch.Tensor, p: float) -> torch.Tensor:
    return torch.sign(z) * torch.abs(z) ** (2 * p - 1)


def ngo_reference(hparams: dict[str, Any], topology_cfg: dict[str, Any], world_size: int, steps: int, lr: float,
                  same_init: bool, shards: list) -> torch.Tensor:
    """Algorithm 1 / eqs. 8-9 on stacked models; p = 1 as the matrix form X_half - gamma L Y (linear gossip)."""
    p, gamma, tau = float(hparams["p"]), float(hparams["gamma"]), int(hparams.get("delay", 0))
    models = [make_model(rank, same_init) for rank in range(world_size)]
    topology = build_topology(topology_cfg, world_size, seed=SEED)
    X = torch.stack([torch.nn.utils.parameters_to_vector(m.parameters()).detach() for m in models])
    sent = {s: (X.clone(), 0) for s in range(-tau, 0)}  # states before step 0: the initial models, on the step-0 graph
    trajectory = [X.clone()]
    for step in range(steps):
        _load(models, X)
        X_half = X - lr * _stacked_gradients(models, shards)
        sent[step] = ((X_half if hparams.get("diff_at", "half") == "half" else X).clone(), step)
        Y, graph_step = sent.pop(step - tau)
        W = torch.from_numpy(topology.mixing_matrix(graph_step, 0)).clone()
        W.fill_diagonal_(0.0)
        if p == 1.0:
            coupling = W @ Y - W.sum(dim=1, keepdim=True) * Y  # -L Y
        else:
            coupling = torch.stack([sum(W[i, j] * _phi(Y[j] - Y[i], p) for j in range(world_size)) for i in range(world_size)])
        X = X_half + gamma * coupling
        trajectory.append(X.clone())
    return torch.stack(trajectory, dim=1)


# Every (p, tau) on a fixed graph and on topology=random (eq. 10's 0/1 weights), gamma inside both bounds.
NGO_CASES = [
    ({"p": p, "gamma": gamma, "delay": tau}, topology_cfg, 4)
    for topology_cfg, gamma in ((RING, 0.4), (RANDOM_BINARY, 0.15)) for p in (1.0, 0.75) for tau in (0, 2)
] + [({"p": 0.75, "gamma": 0.4, "delay": 2, "diff_at": "pre"}, BIPARTITE, 4)]
NGO_IDS = [f"{graph}-p{p}-tau{tau}" for graph in ("ring", "random") for p in ("1", "075") for tau in (0, 2)] + ["pre-p075-tau2-bipartite"]


@pytest.mark.parametrize(("hparams", "topology_cfg", "world_size"), NGO_CASES, ids=NGO_IDS)
def test_ngo_matches_stacked_reference(tmp_path: Path, hparams: dict, topology_cfg: dict, world_size: int) -> None:
    steps, lr = 10, 0.1
    NGO.check_topology(build_topology(topology_cfg, world_size, seed=SEED), hparams)  # a config cgatrain would run
    shards = make_data(world_size)
    results = run_agents(_agent, world_size, tmp_path, "ngo", hparams, topology_cfg, steps, lr, False, shards)
    expected = ngo_reference(hparams, topology_cfg, world_size, steps, lr, False, shards)
    for rank, result in enumerate(results):
        torch.testing.assert_close(result["trajectory"], expected[rank], rtol=1e-10, atol=1e-10, msg=f"agent {rank}")
    # The coupling really acted: without it (gamma = 0) the trajectories would differ.
    uncoupled = ngo_reference({**hparams, "gamma": 0.0}, topology_cfg, world_size, steps, lr, False, shards)
    assert float((uncoupled[:, -1] - expected[:, -1]).abs().max()) > 1e-3
    if topology_cfg is not RANDOM_BINARY:  # a fixed graph: one model per out-neighbour per step, the initial one sent once
        topology = build_topology(topology_cfg, world_size, seed=SEED)
        rounds = steps + (1 if hparams["delay"] > 0 else 0)
        for rank, result in enumerate(results):
            assert result["bytes"]["ngo_state"] == rounds * len(topology.out_neighbors(rank, 0)) * result["model_bytes"]


def test_ngo_linear_with_gamma_one_before_the_step_is_dpsgd(tmp_path: Path) -> None:
    """p = 1, diff_at=pre, gamma = 1: x_half + (W - I) x = W x - eta g, the D-PSGD law, on a random graph."""
    world_size, steps, lr = 4, 8, 0.1
    shards = make_data(world_size)
    hparams = {"p": 1.0, "gamma": 1.0, "diff_at": "pre"}
    results = run_agents(_agent, world_size, tmp_path, "ngo", hparams, RANDOM_MH, steps, lr, False, shards)
    expected = reference_trajectory("dpsgd", 0.0, RANDOM_MH, world_size, steps, lr, False, shards)
    for rank, result in enumerate(results):
        torch.testing.assert_close(result["trajectory"], expected[rank], rtol=1e-10, atol=1e-10, msg=f"agent {rank}")


@pytest.mark.parametrize("p", [1.0, 0.75])
def test_gossip_with_symmetric_weights_keeps_the_mean(tmp_path: Path, p: float) -> None:
    """lr = 0: sum_i sum_j W_ij phi(x_j - x_i) = 0 for symmetric W and odd phi, so the mean never moves."""
    world_size, steps = 5, 30
    shards = make_data(world_size)
    results = run_agents(_agent, world_size, tmp_path, "ngo", {"p": p, "gamma": 0.3, "delay": 1}, RING, steps, 0.0, False, shards)
    stacked = torch.stack([r["trajectory"] for r in results], dim=1)  # (steps + 1, agents, params)
    torch.testing.assert_close(stacked.mean(dim=1), stacked[0].mean(dim=0).expand(steps + 1, -1), rtol=0, atol=1e-12)
    distance = (stacked - stacked.mean(dim=1, keepdim=True)).pow(2).sum(dim=(1, 2))
    assert distance[-1] < 0.2 * distance[0], "gossip did not pull the agents together"


def swarm_reference(local_steps: int, topology_cfg: dict[str, Any], world_size: int, steps: int, lr: float, shards: list) -> torch.Tensor:
    models = [make_model(rank, False) for rank in range(world_size)]
    topology = build_topology(topology_cfg, world_size, seed=SEED)
    X = torch.stack([torch.nn.utils.parameters_to_vector(m.parameters()).detach() for m in models])
    trajectory = [X.clone()]
    for step in range(steps):
        _load(models, X)
        X = X - lr * _stacked_gradients(models, shards)
        if (step + 1) % local_steps == 0:
            partner = random_matching(topology.adjacency(step), SEED, step)
            X = torch.stack([(X[i] + X[j]) / 2 if j >= 0 else X[i] for i, j in enumerate(partner.tolist())])
        trajectory.append(X.clone())
    return torch.stack(trajectory, dim=1)


@pytest.mark.parametrize(("local_steps", "topology_cfg", "world_size"), [(1, COMPLETE, 5), (2, BIPARTITE, 4)], ids=["H1-complete-odd", "H2-bipartite"])
def test_swarmsgd_matches_reference_with_valid_shared_matchings(tmp_path: Path, local_steps: int, topology_cfg: dict, world_size: int) -> None:
    steps, lr = 10, 0.1
    shards = make_data(world_size)
    results = run_agents(_agent, world_size, tmp_path, "swarmsgd", {"local_steps": local_steps}, topology_cfg, steps, lr, False, shards)
    expected = swarm_reference(local_steps, topology_cfg, world_size, steps, lr, shards)
    for rank, result in enumerate(results):
        torch.testing.assert_close(result["trajectory"], expected[rank], rtol=1e-12, atol=1e-12, msg=f"agent {rank}")
    # Each agent's own view of the pairing, gathered: a valid matching of the graph, agreed by all.
    adjacency = build_topology(topology_cfg, world_size).adjacency()
    for step in range(steps):
        partner = np.array([result["partners"][step] for result in results])
        assert is_matching(partner, adjacency), f"step {step}: {partner} is not a matching of the graph"
        assert (partner >= 0).sum() == world_size - world_size % 2, "a maximal matching leaves at most one agent out"


@pytest.mark.parametrize(("name", "hparams", "topology_cfg"), [
    ("ngo", {"p": 0.75, "gamma": 0.5, "delay": 0}, RING),
    ("ngo", {"p": 0.75, "gamma": 0.3, "delay": 2, "gamma_schedule": "lr"}, RANDOM_MH),
    ("swarmsgd", {"local_steps": 2, "momentum": 0.9}, RING),
], ids=["ngo", "ngo-delay2-random", "swarmsgd-H2-momentum"])
def test_resume_is_bit_exact(tmp_path: Path, name: str, hparams: dict, topology_cfg: dict) -> None:
    shards = make_data(3)
    uninterrupted = run_agents(_agent, 3, tmp_path, name, hparams, topology_cfg, 7, 0.05, False, shards)
    resumed = run_agents(_agent, 3, tmp_path, name, hparams, topology_cfg, 7, 0.05, False, shards, 3)
    for rank, (a, b) in enumerate(zip(uninterrupted, resumed)):
        assert torch.equal(a["trajectory"], b["trajectory"]), f"{name} agent {rank} differs after resume"


def test_synchronization_index_is_recorded_every_k_steps(tmp_path: Path) -> None:
    """train.consensus_every=k writes [step, 1/n sum ||x_i - x_bar||^2] every k steps, step 0 included."""
    from test_cli import TINY, cgatrain

    result = cgatrain("algorithm=ngo", "agents=3", "train.epochs=2", "train.consensus_every=2", "algorithm.delay=1", "algorithm.p=1",
                      "same_init=false", *TINY, f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    samples = [row["consensus_distance_by_step"] for row in rows]
    assert [[step for step, _ in epoch] for epoch in samples] == [[0, 2, 4], [6, 8]]
    assert samples[1][-1][1] == pytest.approx(rows[1]["consensus_distance"], rel=1e-9)  # step 8 ends epoch 2
    assert samples[0][0][1] > samples[1][-1][1] > 0, "different initial models must draw together"
