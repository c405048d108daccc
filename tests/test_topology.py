"""Tests for cgatrain.topology: graphs, mixing weights, spectral quantities, schedules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from cgatrain.topology import (
    GRAPH_NAMES,
    TopologyError,
    build_topology,
    consensus_rate,
    is_column_stochastic,
    is_connected,
    is_doubly_stochastic,
    is_row_stochastic,
    is_strongly_connected,
    spectral_gap,
)

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs" / "topology"

# (spec, n, promised stochasticity) for every built-in graph with both weight kinds where meaningful.
STOCHASTICITY_CASES: list[tuple[dict[str, Any], int, str]] = [
    ({"graph": "complete", "weights": "uniform"}, 6, "doubly"),
    ({"graph": "ring", "weights": "uniform"}, 7, "doubly"),
    ({"graph": "torus", "weights": "uniform"}, 12, "doubly"),
    ({"graph": "exponential", "weights": "uniform"}, 10, "doubly"),
    ({"graph": "bipartite", "weights": "uniform"}, 8, "doubly"),  # K_{4,4} is regular
    ({"graph": "bipartite", "weights": "uniform"}, 7, "row"),
    ({"graph": "star", "weights": "uniform"}, 6, "row"),
    ({"graph": "directed_ring", "weights": "uniform"}, 5, "column"),
    ({"graph": "exponential", "directed": True, "weights": "uniform"}, 6, "column"),
    ({"graph": "custom", "edges": [[0, 1], [1, 2], [2, 0], [0, 2]], "weights": "uniform"}, 3, "column"),
    ({"graph": "random", "edge_prob": 0.4, "directed": True, "weights": "uniform"}, 8, "column"),
    ({"graph": "random", "edge_prob": 0.4, "weights": "uniform"}, 8, "row"),
] + [({"graph": g, "weights": "metropolis_hastings"}, 9, "doubly")
     for g in ("complete", "ring", "torus", "exponential", "bipartite", "star")] + [
    ({"graph": "random", "edge_prob": 0.3, "weights": "metropolis_hastings"}, 8, "doubly"),
]


@pytest.mark.parametrize(("spec", "n", "promise"), STOCHASTICITY_CASES)
def test_weights_have_promised_stochasticity(spec: dict[str, Any], n: int, promise: str) -> None:
    topology = build_topology(spec, n, seed=3)
    topology.validate(promise)
    check = {"doubly": is_doubly_stochastic, "row": is_row_stochastic, "column": is_column_stochastic}[promise]
    for step in range(5):
        W, A = topology.mixing_matrix(step=step), topology.adjacency(step=step)
        assert W.dtype == np.float64 and (W >= 0).all() and check(W)
        assert (W[~(A | np.eye(n, dtype=bool))] == 0).all()  # weights only on edges and the diagonal


def test_irregular_uniform_is_not_column_stochastic_and_validate_hints_mh() -> None:
    topology = build_topology({"graph": "star", "weights": "uniform"}, 6)
    assert not is_column_stochastic(topology.mixing_matrix())
    with pytest.raises(TopologyError, match="metropolis_hastings"):
        topology.validate("doubly")


def test_directed_uniform_keeps_half_pushes_half() -> None:
    W = build_topology({"graph": "directed_ring"}, 4).mixing_matrix()
    assert W[0, 0] == 0.5 and W[1, 0] == 0.5 and W[2, 0] == 0.0


@pytest.mark.parametrize("n", range(3, 11))
def test_ring_spectral_gap_matches_closed_form(n: int) -> None:
    W = build_topology({"graph": "ring", "weights": "uniform"}, n).mixing_matrix()
    assert np.allclose(W[W > 0], 1 / 3)
    expected = 1 - max(abs((1 + 2 * np.cos(2 * np.pi * k / n)) / 3) for k in range(1, n))
    assert spectral_gap(W) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("n", [1, 2, 5, 8])
def test_complete_uniform_is_averaging(n: int) -> None:
    W = build_topology({"graph": "complete"}, n).mixing_matrix()
    assert np.allclose(W, np.full((n, n), 1 / n))
    assert spectral_gap(W) == pytest.approx(1.0)
    assert consensus_rate(W) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("spec", [{"graph": "ring"}, {"graph": "star", "weights": "metropolis_hastings"},
                                  {"graph": "torus", "weights": "metropolis_hastings"}])
def test_consensus_rate_is_second_eigenvalue_modulus_for_symmetric(spec: dict[str, Any]) -> None:
    W = build_topology(spec, 9).mixing_matrix()
    assert np.allclose(W, W.T)
    assert consensus_rate(W) == pytest.approx(1 - spectral_gap(W), abs=1e-12)


def test_connectivity_helpers() -> None:
    path = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], dtype=bool)
    one_way = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], dtype=bool)  # 0 -> 1 -> 2
    assert is_connected(path) and is_strongly_connected(path)
    assert is_connected(one_way) and not is_strongly_connected(one_way)
    assert not is_connected(np.zeros((2, 2), dtype=bool))


def test_disconnected_custom_graph_rejected() -> None:
    adjacency = [[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]]
    with pytest.raises(TopologyError, match="custom.*disconnected"):
        build_topology({"graph": "custom", "adjacency": adjacency, "directed": False}, 4)


def test_not_strongly_connected_directed_custom_rejected() -> None:
    with pytest.raises(TopologyError, match="disconnected"):
        build_topology({"graph": "custom", "edges": [[0, 1], [1, 2]], "directed": True}, 3)


def test_custom_forms_agree_and_edges_undirected_mirrors() -> None:
    from_adjacency = build_topology({"graph": "custom", "adjacency": [[0, 0, 1], [1, 0, 0], [0, 1, 0]]}, 3)
    from_edges = build_topology({"graph": "custom", "edges": [[0, 1], [1, 2], [2, 0]]}, 3)
    assert from_adjacency.directed and from_edges.directed
    assert (from_adjacency.adjacency() == from_edges.adjacency()).all()
    mirrored = build_topology({"graph": "custom", "edges": [[0, 1], [1, 2]], "directed": False}, 3)
    assert not mirrored.directed and (mirrored.adjacency() == mirrored.adjacency().T).all()


def test_custom_explicit_weights() -> None:
    good = [[0.5, 0.5, 0.0], [0.5, 0.25, 0.25], [0.0, 0.25, 0.75]]
    edges = [[0, 1], [1, 2]]
    topology = build_topology({"graph": "custom", "edges": edges, "directed": False, "weights": good}, 3)
    topology.validate("doubly")
    assert np.array_equal(topology.mixing_matrix(), np.array(good))
    bad = [[0.5, 0.5, 0.0], [0.5, 0.5, 0.25], [0.0, 0.25, 0.75]]
    with pytest.raises(TopologyError, match="not row stochastic.*deviation 0.25"):
        build_topology({"graph": "custom", "edges": edges, "directed": False, "weights": bad}, 3).validate("row")
    off_edge = [[0.5, 0.25, 0.25], [0.5, 0.25, 0.25], [0.0, 0.25, 0.75]]
    with pytest.raises(TopologyError, match="no edge 2 -> 0"):
        build_topology({"graph": "custom", "edges": edges, "directed": False, "weights": off_edge}, 3)
    negative = [[1.5, -0.5, 0.0], [-0.5, 1.25, 0.25], [0.0, 0.25, 0.75]]
    with pytest.raises(TopologyError, match="negative"):
        build_topology({"graph": "custom", "edges": edges, "directed": False, "weights": negative}, 3)


@pytest.mark.parametrize(("spec", "n", "message"), [
    ({"graph": "hypercube"}, 4, "known graphs"),
    ({"graph": "ring"}, 0, "num_agents"),
    ({"graph": "random", "edge_prob": 0.0}, 4, "edge_prob"),
    ({"graph": "random", "edge_prob": 1.5}, 4, "edge_prob"),
    ({"graph": "random"}, 4, "edge_prob"),
    ({"graph": "torus", "rows": 3, "cols": 3}, 8, "rows \\* cols"),
    ({"graph": "torus"}, 7, "prime"),
    ({"graph": "bipartite", "left": 0}, 4, "left"),
    ({"graph": "bipartite", "left": 4}, 4, "left"),
    ({"graph": "custom", "adjacency": [[0, 1], [1, 0]]}, 3, "shape"),
    ({"graph": "custom", "edges": [[0, 3]]}, 3, "out of range"),
    ({"graph": "custom", "edges": [[1, 1], [0, 1]]}, 2, "self-loop"),
    ({"graph": "custom", "edges": [[0, 1.5]]}, 2, "pair of agent ids"),
    ({"graph": "custom", "edges": [[0, 1]], "adjacency": [[0, 1], [1, 0]]}, 2, "exactly one"),
    ({"graph": "custom", "edges": [[0, 1], [1, 0]], "weights": [[1, 0], [0]]}, 2, "numeric"),
    ({"graph": "ring", "weights": [[1.0]]}, 1, "only allowed for graph=custom"),
    ({"graph": "custom", "adjacency": [[0, 1], [0, 0]], "directed": False}, 2, "not symmetric"),
    ({"graph": "directed_ring", "weights": "metropolis_hastings"}, 4, "undirected"),
    ({"graph": "ring", "weights": "laplacian"}, 4, "unknown weights"),
    ({"graph": "ring", "edge_prob": 0.5}, 4, "unknown parameter"),
    ({"schedule": [], "switch_every": 1}, 4, "non-empty"),
    ({"schedule": [{"graph": "ring"}], "switch_every": 0}, 4, "switch_every"),
    ({"schedule": [{"graph": "ring"}], "switch_unit": "batch"}, 4, "switch_unit"),
])
def test_invalid_configs_raise(spec: dict[str, Any], n: int, message: str) -> None:
    with pytest.raises(TopologyError, match=message):
        build_topology(spec, n)


def test_validate_rejects_unknown_requirement() -> None:
    with pytest.raises(TopologyError, match="require"):
        build_topology({"graph": "ring"}, 4).validate("symmetric")


def test_single_agent_is_allowed_everywhere() -> None:
    for graph in ("complete", "ring", "torus", "star", "exponential", "directed_ring"):
        topology = build_topology({"graph": graph}, 1)
        assert np.array_equal(topology.mixing_matrix(), [[1.0]])
        assert topology.in_neighbors(0) == [] and topology.out_neighbors(0) == []
        topology.validate("doubly")


def test_degrees_of_structured_graphs() -> None:
    def degrees(spec: dict[str, Any], n: int) -> np.ndarray:
        return build_topology(spec, n).adjacency().sum(axis=1)

    assert (degrees({"graph": "torus"}, 16) == 4).all()
    assert (degrees({"graph": "torus", "rows": 2, "cols": 6}, 12) == 3).all()  # the 2-row wrap is one edge
    assert (degrees({"graph": "torus"}, 12) == 4).all()  # default 3 x 4
    assert degrees({"graph": "bipartite", "left": 2}, 7).tolist() == [5, 5, 2, 2, 2, 2, 2]
    assert degrees({"graph": "star"}, 6).tolist() == [5, 1, 1, 1, 1, 1]
    assert degrees({"graph": "ring"}, 2).tolist() == [1, 1]
    for n in (2, 5, 8, 12):
        offsets = {(s * 2 ** k) % n for k in range(n.bit_length()) if 2 ** k < n for s in (1, -1)}
        assert (degrees({"graph": "exponential"}, n) == len(offsets)).all()
        directed = build_topology({"graph": "exponential", "directed": True}, n).adjacency()
        hops = [2 ** k for k in range(n.bit_length()) if 2 ** k < n]
        assert (directed.sum(axis=0) == len(hops)).all()  # out-degree
        assert all(directed[(n - 1 + h) % n, n - 1] for h in hops)  # last agent sends to (n-1) + 2^k


def test_random_graph_is_reproducible_and_fresh_each_step() -> None:
    spec = {"graph": "random", "edge_prob": 0.3}
    first, second = build_topology(spec, 10, seed=7), build_topology(spec, 10, seed=7)
    assert first.time_varying and not first.directed
    for step in (0, 1, 5, 1000):
        assert np.array_equal(first.adjacency(step=step), second.adjacency(step=step))
        A = first.adjacency(step=step)
        assert (A == A.T).all() and not A.diagonal().any()
    assert not np.array_equal(first.adjacency(step=0), first.adjacency(step=1))
    assert not np.array_equal(first.adjacency(step=3), build_topology(spec, 10, seed=8).adjacency(step=3))
    assert np.array_equal(first.mixing_matrix(step=4), first.mixing_matrix(step=4))  # cached path


@pytest.mark.parametrize("directed", [False, True])
def test_random_edge_frequency_matches_edge_prob(directed: bool) -> None:
    n, steps, edge_prob = 8, 400, 0.3
    topology = build_topology({"graph": "random", "edge_prob": edge_prob, "directed": directed}, n, seed=1)
    counts = sum(topology.adjacency(step=s).astype(int) for s in range(steps))
    off_diagonal = counts[~np.eye(n, dtype=bool)] / steps
    assert off_diagonal.mean() == pytest.approx(edge_prob, abs=0.02)
    assert np.array_equal(counts, counts.T) != directed


def test_schedule_switches_by_epoch() -> None:
    cfg = yaml.safe_load((CONFIG_DIR / "time_varying_example.yaml").read_text())
    topology = build_topology(cfg, 6)
    assert topology.time_varying
    complete_edges = 6 * 5
    for epoch, edges in [(0, 12), (1, complete_edges), (2, 12), (3, complete_edges)]:
        for step in (0, 7, 31):  # the step counter is irrelevant with switch_unit=epoch
            assert topology.adjacency(step=step, epoch=epoch).sum() == edges


def test_schedule_switches_by_step_and_inherits_weights() -> None:
    cfg = {"schedule": [{"graph": "star"}, {"graph": "ring", "weights": "uniform"}],
           "switch_every": 3, "switch_unit": "step", "weights": "metropolis_hastings"}
    topology = build_topology(cfg, 5)
    expected = ["star"] * 3 + ["ring"] * 3 + ["star"] * 3
    assert [topology.graph_names[topology.active_index(step=s)] for s in range(9)] == expected
    assert is_doubly_stochastic(topology.mixing_matrix(step=0))  # inherited metropolis_hastings
    assert np.allclose(topology.mixing_matrix(step=3)[topology.adjacency(step=3)], 1 / 3)
    topology.validate("doubly")
    single = build_topology({"schedule": [{"graph": "ring"}]}, 5)
    assert not single.time_varying


def test_schedule_directed_flag_and_validate_each_graph() -> None:
    mixed = build_topology({"schedule": [{"graph": "ring"}, {"graph": "directed_ring"}]}, 5)
    assert mixed.directed
    mixed.validate("column")
    with pytest.raises(TopologyError, match=r"schedule\[1\] star.*metropolis_hastings"):
        build_topology({"schedule": [{"graph": "ring"}, {"graph": "star"}]}, 5).validate("doubly")
    with pytest.raises(TopologyError, match="push-sum"):
        triangle_plus_chord = {"graph": "custom", "edges": [[0, 1], [1, 2], [2, 0], [0, 2]]}
        build_topology({"schedule": [{"graph": "ring"}, triangle_plus_chord]}, 3).validate("row")


# Two directed paths whose union is the ring 0 -> 1 -> 2 -> 3 -> 4 -> 0: neither is strongly connected alone.
PATHS_TO_A_RING = {"schedule": [{"graph": "custom", "directed": True, "edges": [[0, 1], [1, 2], [2, 3], [3, 4]]},
                                {"graph": "custom", "directed": True, "edges": [[4, 0], [0, 1]]}]}
# The first graph leaves agent 4 out; the second brings it in and closes the ring.
IDLE_IN_ONE_GRAPH = {"schedule": [{"graph": "custom", "directed": True, "edges": [[0, 1], [1, 2], [2, 3]]},
                                  {"graph": "custom", "directed": True, "edges": [[3, 4], [4, 0]]}]}


def test_schedule_needs_only_its_union_strongly_connected() -> None:
    topology = build_topology(PATHS_TO_A_RING, 5)
    assert not any(is_strongly_connected(topology.adjacency(step=s)) for s in (0, 1))
    topology.validate("column")
    with pytest.raises(TopologyError, match="disconnected"):  # a single graph is still checked alone
        build_topology(PATHS_TO_A_RING["schedule"][0], 5)


def test_schedule_graph_may_leave_an_agent_idle_with_weight_one_on_itself() -> None:
    topology = build_topology(IDLE_IN_ONE_GRAPH, 5)
    topology.validate("column")
    W = topology.mixing_matrix(step=0)
    assert W[4, 4] == 1.0 and W[:, 4].sum() == W[4].sum() == 1.0  # idle: keeps its own mass, sends and gets none
    product = np.eye(5)
    for step in range(2 * 5):  # five periods of two graphs
        product = topology.mixing_matrix(step=step) @ product
    assert (product > 0).all()  # jointly strongly connected with self-weights: the product mixes everyone
    assert "idle agent(s) [4]" in topology.describe() and "idle agent(s) [1, 2]" in topology.describe()
    with pytest.raises(TopologyError, match=r"topology.edges names 4 agents"):  # a static graph may not leave one out
        build_topology(IDLE_IN_ONE_GRAPH["schedule"][0], 5)


def test_doubly_stochastic_schedule_with_idle_agents_validates() -> None:
    # Undirected pairings {0-1, 2-3} then {1-2, 3-4}: each graph leaves an agent idle; the union is a path.
    pairs = {"schedule": [{"graph": "custom", "edges": [[0, 1], [2, 3]], "directed": False},
                          {"graph": "custom", "edges": [[1, 2], [3, 4]], "directed": False}],
             "weights": "metropolis_hastings"}
    topology = build_topology(pairs, 5)
    topology.validate("doubly")
    assert topology.mixing_matrix(step=0)[4, 4] == 1.0 and topology.mixing_matrix(step=1)[0, 0] == 1.0


def test_schedule_union_leaving_agents_out_is_refused_naming_the_keys() -> None:
    never = {"schedule": [IDLE_IN_ONE_GRAPH["schedule"][0], {"graph": "custom", "directed": True, "edges": [[3, 0]]}]}
    with pytest.raises(TopologyError, match=r"topology.schedule: agent\(s\) \[4\] have no edge in any graph of "
                                            r"topology.schedule\[0..1\].*set agents=4"):
        build_topology(never, 5)
    one_way = {"schedule": [IDLE_IN_ONE_GRAPH["schedule"][0], {"graph": "custom", "directed": True, "edges": [[3, 4]]}]}
    with pytest.raises(TopologyError, match=r"union of topology.schedule\[0..1\] over one period is disconnected.*"
                                            r"\[1, 2, 3, 4\] cannot reach agent 0.*topology.schedule\[0\] leaves out \[4\]"):
        build_topology(one_way, 5)
    undirected = {"schedule": [{"graph": "custom", "edges": [[0, 1]], "directed": False},
                               {"graph": "custom", "edges": [[2, 3], [3, 4]], "directed": False}]}
    with pytest.raises(TopologyError, match=r"disconnected: agents \[2, 3, 4\] are not linked to agent 0"):
        build_topology(undirected, 5)


@pytest.mark.parametrize(("entry", "message"), [
    ({"graph": "custom", "edges": [[0, 5]]}, r"topology.schedule\[1\].edges: edge \[0, 5\] is out of range"),
    ({"graph": "custom", "adjacency": [[0, 1], [1, 0]]}, r"topology.schedule\[1\].adjacency has shape \(2, 2\)"),
])
def test_schedule_custom_graph_errors_name_the_schedule_key(entry: dict[str, Any], message: str) -> None:
    with pytest.raises(TopologyError, match=message):
        build_topology({"schedule": [{"graph": "ring"}, entry]}, 5)


@pytest.mark.parametrize("spec", [{"graph": "star"}, {"graph": "exponential", "directed": True},
                                  {"graph": "custom", "edges": [[0, 1], [1, 2], [2, 0], [0, 3], [3, 0]]},
                                  {"graph": "random", "edge_prob": 0.4, "directed": True}])
def test_neighbor_lists_consistent_with_adjacency(spec: dict[str, Any]) -> None:
    topology = build_topology(spec, 4 if spec["graph"] == "custom" else 7, seed=2)
    n = topology.num_agents
    for step in (0, 1):
        A = topology.adjacency(step=step)
        for agent in range(n):
            ins, outs = topology.in_neighbors(agent, step=step), topology.out_neighbors(agent, step=step)
            assert ins == sorted(j for j in range(n) if A[agent, j])
            assert outs == sorted(i for i in range(n) if A[i, agent])
            assert all(agent in topology.out_neighbors(j, step=step) for j in ins)
            W = topology.mixing_matrix(step=step)
            assert set(np.flatnonzero(W[agent])) - {agent} <= set(ins)


def test_all_config_files_build_and_describe() -> None:
    files = sorted(CONFIG_DIR.glob("*.yaml"))
    assert len(files) == 15
    for path in files:
        cfg = yaml.safe_load(path.read_text())
        # custom and the Sparse-Push paper's figure-4 graphs are fixed 4-agent graphs.
        topology = build_topology(cfg, 4 if "custom" in path.stem or path.stem.startswith("sp_") else 8, seed=0)
        text = topology.describe()
        assert "n=" in text and "spectral gap" in text
        topology.validate("column" if topology.directed else "row")
    assert "u=0.5" in build_topology(yaml.safe_load((CONFIG_DIR / "random.yaml").read_text()), 8).describe()
    for graph in ({"graph": "ring"}, {"graph": "random", "edge_prob": 0.5}):  # NGO's 0/1 weights: no spectral gap to speak of
        binary = build_topology({**graph, "weights": "binary"}, 5).describe()
        assert "weights=binary, not stochastic" in binary and "spectral gap" not in binary
    # The paper's figure graphs are named in the banner, not just "custom", also inside a schedule.
    schedule = build_topology(yaml.safe_load((CONFIG_DIR / "sp_time_varying.yaml").read_text()), 4).describe()
    assert all(f"[{i}] schedule[{i}] sp_fig4_{c} (custom):" in schedule for i, c in enumerate("abc"))
    assert "[0] sp_fig4_b (custom):" in build_topology(yaml.safe_load((CONFIG_DIR / "sp_fig4_b.yaml").read_text()), 4).describe()
    assert set(GRAPH_NAMES) == {"complete", "ring", "bipartite", "torus", "star", "exponential",
                                "directed_ring", "random", "one_peer_exponential", "custom"}


def test_accepts_omegaconf_configs() -> None:
    omegaconf = pytest.importorskip("omegaconf")
    cfg = omegaconf.OmegaConf.create({"graph": "custom", "edges": [[0, 1], [1, 0], [1, 2], [2, 1]],
                                      "weights": "metropolis_hastings"})
    topology = build_topology(cfg, 3)
    assert not topology.directed
    topology.validate("doubly")


def test_a_schedule_of_fixed_graphs_reports_the_mixing_of_one_period() -> None:
    """Two matchings, each disconnected (spectral gap 0), mix over a period: the banner says by how much."""
    pairs = {"schedule": [{"graph": "custom", "edges": [[0, 1], [1, 0], [2, 3], [3, 2]]},
                          {"graph": "custom", "edges": [[1, 2], [2, 1], [3, 0], [0, 3]]}], "switch_every": 2, "switch_unit": "step"}
    topology = build_topology(pairs, 4)
    W0, W1 = topology.mixing_matrix(0, 0), topology.mixing_matrix(2, 0)
    product = W1 @ W1 @ W0 @ W0
    expected = 1 - np.sort(np.abs(np.linalg.eigvals(product)))[::-1][1]
    lines = topology.describe().splitlines()
    assert "spectral gap 0.0000" in lines[1] and lines[-1] == f"  one period (4 steps): spectral gap of the product of its mixing matrices {expected:.4f}"
    assert expected > 0.4
    assert "one period" not in build_topology({**pairs, "switch_unit": "epoch"}, 4).describe()  # steps per epoch unknown here
    assert "one period" not in topology.describe(weights=False)
