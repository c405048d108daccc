"""Per-step graph families, eq. 10's 0/1 weights, NGO's pure parts and the refusals of ngo/swarmsgd configs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_config import composed

from cgatrain.algorithms.ngo import (
    NGO,
    delayed_gain_limit,
    laplacian_radius,
    max_weighted_degree,
    phi,
)
from cgatrain.config import ConfigError, validate
from cgatrain.topology import build_topology
from cgatrain.topology.graphs import one_peer_exponential_graph, random_graph
from cgatrain.topology.per_step import (
    OnePeerExponential,
    RandomGraphs,
    is_matching,
    random_matching,
)

RING = {"graph": "ring", "weights": "uniform"}
COMPLETE = {"graph": "complete", "weights": "uniform"}
BIPARTITE = {"graph": "bipartite", "weights": "metropolis_hastings"}
RANDOM_MH = {"graph": "random", "edge_prob": 0.5, "weights": "metropolis_hastings"}


def test_families_draw_the_topology_graphs() -> None:
    random = build_topology({"graph": "random", "edge_prob": 0.3}, 7, seed=5)
    one_peer = build_topology({"graph": "one_peer_exponential"}, 6)
    for step in range(12):
        assert np.array_equal(random.adjacency(step), RandomGraphs(7, 0.3).adjacency_at(step, 5))
        assert np.array_equal(random.adjacency(step), random_graph(7, 0.3, 5, step))
        assert np.array_equal(one_peer.adjacency(step), OnePeerExponential(6).adjacency_at(step, 0))
        assert np.array_equal(one_peer.adjacency(step), one_peer_exponential_graph(6, step))
    assert RandomGraphs(7, 0.3).densest().sum() == 7 * 6


def test_binary_weights_are_the_graph_itself() -> None:
    topology = build_topology({"graph": "random", "edge_prob": 0.4, "weights": "binary"}, 6, seed=2)
    for step in range(5):
        assert np.array_equal(topology.mixing_matrix(step), topology.adjacency(step).astype(float))
    topology.validate("none")
    with pytest.raises(ValueError, match="binary"):
        topology.validate("doubly")


def test_random_matchings_are_valid_maximal_and_vary() -> None:
    for topology_cfg, n in [(RING, 6), (BIPARTITE, 5), (RANDOM_MH, 7), (COMPLETE, 4)]:
        topology = build_topology(topology_cfg, n, seed=1)
        drawn = set()
        for step in range(30):
            A = topology.adjacency(step)
            partner = random_matching(A, 1, step)
            assert is_matching(partner, A)
            free = np.flatnonzero(partner < 0)
            assert not (A | A.T)[np.ix_(free, free)].any(), "an edge between two unmatched agents: not maximal"
            assert np.array_equal(partner, random_matching(A, 1, step)), "the same (seed, step) must give the same matching"
            drawn.add(tuple(partner.tolist()))
        assert len(drawn) > 1
    assert not is_matching(np.array([1, 2, 0]), np.ones((3, 3), dtype=bool))


def test_phi_and_weighted_degree() -> None:
    z = torch.tensor([-4.0, -0.25, 0.0, 0.25, 4.0], dtype=torch.float64)
    torch.testing.assert_close(phi(z.clone(), 0.5), torch.tensor([-1.0, -1.0, 0.0, 1.0, 1.0], dtype=torch.float64))
    torch.testing.assert_close(phi(z.clone(), 0.75), torch.tensor([-2.0, -0.5, 0.0, 0.5, 2.0], dtype=torch.float64))
    torch.testing.assert_close(phi(z.clone(), 2.0), z ** 3)
    assert phi(z, 1.0) is z
    assert max_weighted_degree(build_topology(RING, 5).mixing_matrix()) == pytest.approx(2 / 3)
    assert laplacian_radius(np.ones((4, 4))) == pytest.approx(4.0)  # 0/1 weights on K4: lambda_n = n
    assert delayed_gain_limit(0) == pytest.approx(2.0) and delayed_gain_limit(1) == pytest.approx(1.0)


def test_delay_bound_is_where_linear_delayed_consensus_turns_unstable() -> None:
    """x(t+1) = x(t) - gamma L x(t - tau) on the ring: contracts just below the bound, grows just above it."""
    topology = build_topology(RING, 5)
    L = np.eye(5) - topology.mixing_matrix()
    limit = delayed_gain_limit(2) / laplacian_radius(topology.mixing_matrix())
    for gamma, grows in ((0.97 * limit, False), (1.03 * limit, True)):
        history = [np.random.default_rng(0).standard_normal(5)] * 3
        for _ in range(3000):
            history.append(history[-1] - gamma * L @ history[-3])
        spread = np.ptp(history[-1])
        assert (spread > np.ptp(history[0])) == grows, f"gamma={gamma:.4f}: spread {spread:.3g}"


def test_gamma_bound_uses_the_densest_graph_a_random_family_can_draw() -> None:
    binary = build_topology({"graph": "random", "edge_prob": 0.2, "weights": "binary"}, 6, seed=0)
    NGO.check_topology(binary, {"gamma": 0.19})
    with pytest.raises(ValueError, match=r"algorithm.gamma=0.21.*1/max-degree"):
        NGO.check_topology(binary, {"gamma": 0.21})  # a draw may be complete: degree 5


@pytest.mark.parametrize(("overrides", "message"), [
    (["algorithm=ngo", "algorithm.p=0.4"], "algorithm.p must lie in [0.5, 2]"),
    (["algorithm=ngo", "algorithm.p=2.5"], "algorithm.p must lie in [0.5, 2]"),
    (["algorithm=ngo", "algorithm.delay=-1"], "algorithm.delay"),
    (["algorithm=ngo", "algorithm.diff_at=after"], "algorithm.diff_at"),
    (["algorithm=ngo", "algorithm.gamma=1.5"], "algorithm.gamma=1.5 is too large"),
    (["algorithm=ngo", "topology=complete", "topology.weights=binary", "algorithm.gamma=0.3"], "algorithm.gamma=0.3 is too large"),
    (["algorithm=ngo", "topology=directed_ring"], "needs an undirected topology"),
    (["algorithm=ngo", "algorithm.gamma=0.6", "algorithm.delay=2"], "algorithm.gamma=0.6 is too large for algorithm.delay=2"),
    (["algorithm=swarmsgd", "agents=1"], "has no edges"),
    (["algorithm=swarmsgd", "algorithm.local_steps=0"], "algorithm.local_steps"),
    (["train.consensus_every=0"], "train.consensus_every"),
])
def test_bad_ngo_and_swarmsgd_configs_are_refused(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as error:
        validate(composed(*overrides))
    assert message in str(error.value)


def test_ngo_and_swarmsgd_configs_are_valid() -> None:
    validate(composed("algorithm=ngo", "topology=random", "topology.weights=binary", "algorithm.gamma=0.1", "agents=5",
                      "algorithm.delay=2", "train.consensus_every=5"))
    validate(composed("algorithm=ngo", "topology=ring", "algorithm.p=1", "algorithm.diff_at=pre"))
    for graph in ("complete", "ring", "bipartite"):
        validate(composed("algorithm=swarmsgd", f"topology={graph}"))
