"""Per-step graph families: a fresh graph at every step, drawn from a seed every agent shares.

One interface, `PerStepFamily.adjacency_at(step, seed)`, serves every graph that changes each step:
- `RandomGraphs`: Erdos-Renyi G(n, u), `default_rng([seed, step])` (the NGO paper's eq. 10);
- `OnePeerExponential`: SGP's one-peer exponential graph, i -> i + 2^(t mod period);
- `RandomMatchings`: a random maximal matching of a base graph's edges (SwarmSGD's pairings).
Every agent computes the same graph from (seed, step) alone, so no agent ever has to ask another.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

import numpy as np

from cgatrain.topology.graphs import (
    complete_graph,
    one_peer_exponential_graph,
    one_peer_exponential_period,
    one_peer_exponential_union,
    random_graph,
)

SAMPLE_STEPS = 20  # how many steps of a random family checks and descriptions inspect
MATCHING_STREAM = 0x5A4D  # keeps matchings independent of a random graph drawn from the same (seed, step)


class PerStepFamily(ABC):
    """A graph per step: `adjacency_at(step, seed)` is identical on every agent."""

    num_agents: int
    directed: bool

    @abstractmethod
    def adjacency_at(self, step: int, seed: int) -> np.ndarray:
        """Bool (n, n) adjacency at `step`, A[i, j] iff edge j -> i."""

    @abstractmethod
    def sample_steps(self) -> list[int]:
        """Steps worth checking (a whole period, or a sample of a random family)."""

    @abstractmethod
    def densest(self) -> np.ndarray:
        """A graph holding every edge the family can draw (for worst-case checks such as NGO's gamma bound)."""


class RandomGraphs(PerStepFamily):
    """G(n, u): each edge present independently with probability u at every step (NGO eq. 10)."""

    def __init__(self, num_agents: int, edge_prob: float, directed: bool = False) -> None:
        self.num_agents, self.edge_prob, self.directed = num_agents, edge_prob, directed

    def adjacency_at(self, step: int, seed: int) -> np.ndarray:
        """G(n, u) drawn from `default_rng([seed, step])`."""
        return random_graph(self.num_agents, self.edge_prob, seed, step, self.directed)

    def sample_steps(self) -> list[int]:
        """The first SAMPLE_STEPS steps: a sample, since the family has no period."""
        return list(range(SAMPLE_STEPS))

    def densest(self) -> np.ndarray:
        """The complete graph: any draw may be complete."""
        return complete_graph(self.num_agents)


class OnePeerExponential(PerStepFamily):
    """SGP's one-peer exponential graph (Assran et al. 2019); periodic, so one period says it all."""

    directed = True

    def __init__(self, num_agents: int) -> None:
        self.num_agents = num_agents

    def adjacency_at(self, step: int, seed: int) -> np.ndarray:
        """Agent i sends to i + 2^(step mod period) (the seed is not used)."""
        return one_peer_exponential_graph(self.num_agents, step)

    def sample_steps(self) -> list[int]:
        """One whole period: every graph the family ever gives."""
        return list(range(one_peer_exponential_period(self.num_agents)))

    def densest(self) -> np.ndarray:
        """The union of one period's graphs."""
        return one_peer_exponential_union(self.num_agents)


def random_matching(adjacency: np.ndarray, seed: int, step: int) -> np.ndarray:
    """partner[i] = the agent i is paired with at `step`, or -1: a random maximal matching of the edges.

    The undirected edges are shuffled with `default_rng([seed, step, MATCHING_STREAM])` and taken
    greedily, so every agent draws the same matching and no edge can be added to it.
    """
    A = np.asarray(adjacency, dtype=bool)
    n = A.shape[0]
    edges = np.argwhere(np.triu(A | A.T, k=1))
    order = np.random.default_rng([seed, step, MATCHING_STREAM]).permutation(len(edges))
    partner = np.full(n, -1, dtype=np.int64)
    for i, j in edges[order]:
        if partner[i] < 0 and partner[j] < 0:
            partner[i], partner[j] = j, i
    return partner


def is_matching(partner: np.ndarray, adjacency: np.ndarray) -> bool:
    """True if partner pairs agents along edges of the graph, symmetrically, with nobody in two pairs."""
    A = np.asarray(adjacency, dtype=bool)
    for i, j in enumerate(np.asarray(partner).tolist()):
        if j >= 0 and (j == i or partner[j] != i or not (A[i, j] or A[j, i])):
            return False
    return True


class RandomMatchings(PerStepFamily):
    """A random maximal matching of a base graph (which may itself change per step) at every step."""

    directed = False

    def __init__(self, num_agents: int, base: Callable[[int], np.ndarray], base_steps: list[int] | None = None) -> None:
        self.num_agents, self.base, self._base_steps = num_agents, base, base_steps or [0]

    def partners(self, step: int, seed: int) -> np.ndarray:
        """partner[i] for every agent (-1: unmatched this step)."""
        return random_matching(self.base(step), seed, step)

    def adjacency_at(self, step: int, seed: int) -> np.ndarray:
        """Edges both ways between the agents matched at `step`; unmatched agents have none."""
        partner = self.partners(step, seed)
        A = np.zeros((self.num_agents, self.num_agents), dtype=bool)
        matched = np.flatnonzero(partner >= 0)
        A[matched, partner[matched]] = True
        return A

    def sample_steps(self) -> list[int]:
        """The first SAMPLE_STEPS steps: a sample of the random matchings."""
        return list(range(SAMPLE_STEPS))

    def densest(self) -> np.ndarray:
        """Every edge of the base graph at its sampled steps, both ways: all a matching can use."""
        union = np.zeros((self.num_agents, self.num_agents), dtype=bool)
        for step in self._base_steps:
            union |= self.base(step)
        return union | union.T
