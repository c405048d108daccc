"""Tests for the push (column-stochastic) graphs: one-peer exponential and the Sparse-Push Fig. 4 configs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from cgatrain.topology import (
    TopologyError,
    build_topology,
    is_column_stochastic,
    is_doubly_stochastic,
    is_strongly_connected,
)
from cgatrain.topology.graphs import one_peer_exponential_graph, one_peer_exponential_period

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs" / "topology"
PUSH_CONFIGS = ("sp_fig4_a", "sp_fig4_b", "sp_fig4_c", "sp_time_varying", "one_peer_exponential")


def _load(stem: str) -> dict:
    return yaml.safe_load((CONFIG_DIR / f"{stem}.yaml").read_text())


# (step, epoch) pairs that visit every graph: a 3-entry epoch schedule and the one-peer period of 2 at n=4
STEPS_AND_EPOCHS: list[tuple[int, int]] = [(t, t) for t in range(6)]


@pytest.mark.parametrize("n", [2, 3, 4, 5, 8, 9, 16])
def test_one_peer_period_and_peer(n: int) -> None:
    period = one_peer_exponential_period(n)
    assert period == int(np.ceil(np.log2(n))) and 2 ** (period - 1) < n  # hops 2^0 .. 2^floor(log2(n-1))
    topology = build_topology({"graph": "one_peer_exponential"}, n)
    for step in range(2 * period + 1):
        hop = 2 ** (step % period)
        for agent in range(n):
            assert topology.out_neighbors(agent, step=step) == [(agent + hop) % n]
        W = topology.mixing_matrix(step=step)
        assert is_column_stochastic(W)
        assert np.allclose(np.diag(W), 0.5) and np.allclose(W.max(axis=0), 0.5)  # keep 1/2, send 1/2


def test_one_peer_single_steps_may_be_disconnected_but_union_validates() -> None:
    # n=4, hop 2 pairs {0,2} and {1,3}: not strongly connected on its own
    assert not is_strongly_connected(one_peer_exponential_graph(4, 1))
    topology = build_topology({"graph": "one_peer_exponential"}, 4)
    topology.validate("column")
    assert topology.time_varying and topology.directed
    with pytest.raises(TopologyError, match="metropolis_hastings"):
        build_topology({"graph": "one_peer_exponential", "weights": "metropolis_hastings"}, 4)
    with pytest.raises(TopologyError, match="unknown parameter"):
        build_topology({"graph": "one_peer_exponential", "directed": False}, 4)


@pytest.mark.parametrize("n", [4, 8])
def test_one_peer_product_over_period_is_exact_average(n: int) -> None:
    topology = build_topology({"graph": "one_peer_exponential"}, n)
    product = np.eye(n)
    for step in range(one_peer_exponential_period(n)):
        product = topology.mixing_matrix(step=step) @ product
    assert np.allclose(product, np.full((n, n), 1.0 / n), atol=1e-12)


@pytest.mark.parametrize("stem", PUSH_CONFIGS)
def test_push_configs_build_validate_column_and_connected(stem: str) -> None:
    topology = build_topology(_load(stem), 4)
    assert topology.directed
    topology.validate("column")
    union = np.zeros((4, 4), dtype=bool)
    for step, epoch in STEPS_AND_EPOCHS:
        A, W = topology.adjacency(step, epoch), topology.mixing_matrix(step, epoch)
        assert is_column_stochastic(W)
        union |= A
        if stem.startswith("sp_"):  # (one-peer's hop 2 at n=4 is its own inverse, hence symmetric)
            assert is_strongly_connected(A) and not np.allclose(W, W.T)  # directed rings, asymmetric W (Fig. 5)
    assert is_strongly_connected(union)
    assert "spectral gap" in topology.describe()


@pytest.mark.parametrize("stem", PUSH_CONFIGS)
def test_validate_doubly_rejects_exactly_the_non_doubly_stochastic(stem: str) -> None:
    # keep-1/2/push-1/2 on graphs with in-degree = out-degree = 1 is doubly stochastic, so these pass
    topology = build_topology(_load(stem), 4)
    doubly = all(is_doubly_stochastic(topology.mixing_matrix(s, e)) for s, e in STEPS_AND_EPOCHS)
    if doubly:
        topology.validate("doubly")
    else:
        with pytest.raises(TopologyError, match="not doubly stochastic"):
            topology.validate("doubly")


def test_validate_doubly_rejects_column_only_push_weights() -> None:
    # a chord 0 -> 2 makes agent 0 split three ways: columns sum to 1, rows do not
    spec = {"graph": "custom", "directed": True, "edges": [[0, 1], [1, 2], [2, 3], [3, 0], [0, 2]]}
    topology = build_topology(spec, 4)
    topology.validate("column")
    with pytest.raises(TopologyError, match="not doubly stochastic"):
        topology.validate("doubly")
    schedule = {"schedule": [_load("sp_fig4_a"), spec], "switch_every": 1, "switch_unit": "epoch"}
    with pytest.raises(TopologyError, match="not doubly stochastic"):
        build_topology(schedule, 4).validate("doubly")


def test_sp_time_varying_rotates_a_b_c_every_epoch() -> None:
    topology = build_topology(_load("sp_time_varying"), 4)
    graphs = [build_topology(_load(f"sp_fig4_{x}"), 4).mixing_matrix() for x in "abc"]
    assert topology.switch_unit == "epoch" and topology.switch_every == 1
    for epoch in range(6):
        assert np.array_equal(topology.mixing_matrix(step=0, epoch=epoch), graphs[epoch % 3])
    assert len({g.tobytes() for g in graphs}) == 3
