"""One graph of a topology: its spec parsed and checked, its adjacency and mixing weights at any step.

A schedule's graphs are checked together (`check_joint_connectivity`): only their union over one
period must be (strongly) connected, and a graph may leave agents idle for its round.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cgatrain.topology.graphs import (
    GRAPH_NAMES,
    GRAPH_PARAMS,
    TopologyError,
    build_static_adjacency,
    idle_agents,
    is_connected,
    is_strongly_connected,
    one_peer_exponential_union,
    reachable_from_zero,
)
from cgatrain.topology.mixing import WEIGHT_KINDS, check_weights, mixing_weights
from cgatrain.topology.per_step import OnePeerExponential, PerStepFamily, RandomGraphs

COMMON_SPEC_KEYS = frozenset({"graph", "weights", "name"})
EXPLICIT_WEIGHTS = "explicit"


def to_plain(value: Any) -> Any:
    """Recursively turn Mapping/Sequence containers (incl. OmegaConf's) into dicts and lists."""
    if isinstance(value, Mapping):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return [to_plain(v) for v in value]
    return value


@dataclass
class GraphEntry:
    """One graph of a topology (a schedule entry, or the only graph)."""

    kind: str
    label: str
    num_agents: int
    params: dict[str, Any]
    weights_kind: str
    directed: bool
    static_adjacency: np.ndarray | None  # None for the per-step graphs (random, one_peer_exponential)
    static_mixing: np.ndarray | None = None
    family: PerStepFamily | None = None  # the per-step graphs' family (topology/per_step.py)
    _last_step: tuple[int, np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    def _per_step_at(self, step: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Per-step graph and its weights for ``step``; the last one is cached."""
        if self._last_step is None or self._last_step[0] != step:
            A = self.family.adjacency_at(step, seed)
            self._last_step = (step, A, mixing_weights(A, self.weights_kind, self.directed, self.label))
        return self._last_step[1], self._last_step[2]

    def adjacency(self, step: int, seed: int) -> np.ndarray:
        return self.static_adjacency if self.static_adjacency is not None else self._per_step_at(step, seed)[0]

    def mixing(self, step: int, seed: int) -> np.ndarray:
        if self.static_adjacency is None:
            return self._per_step_at(step, seed)[1]
        if self.static_mixing is None:
            self.static_mixing = mixing_weights(self.static_adjacency, self.weights_kind, self.directed, self.label)
        return self.static_mixing

    def sample_steps(self) -> list[int]:
        """Steps worth checking: one for a static graph, one period of the one-peer graph, a sample of a random one."""
        return [0] if self.family is None else self.family.sample_steps()

    def densest(self) -> np.ndarray:
        """A graph holding every edge this entry can ever use."""
        return self.static_adjacency if self.family is None else self.family.densest()

    def stochasticity_hint(self, A: np.ndarray) -> str:
        """Suggest a fix when this entry's weights lack the required stochasticity."""
        if self.weights_kind == "binary":
            return "weights=binary (the NGO paper's 0/1 weights, eq. 10) are not stochastic; they serve algorithm=ngo"
        if self.weights_kind == EXPLICIT_WEIGHTS:
            return "fix the explicit custom 'weights' so the required rows/columns sum to 1"
        if self.weights_kind == "uniform" and self.directed:
            return ("uniform weights on a directed graph are column stochastic, which only the push-sum algorithms "
                    "take (algorithm=sgp, sparse_push or scsp); otherwise use an undirected topology with "
                    "topology.weights=metropolis_hastings")
        if self.weights_kind == "uniform" and len(set(A.sum(axis=1).tolist())) > 1:
            return "use weights=metropolis_hastings for a doubly stochastic matrix on an irregular graph"
        return ""


def parse_entry(spec: Any, num_agents: int, default_weights: Any, label: str,
                 key: str = "topology", in_schedule: bool = False) -> GraphEntry:
    """Validate one graph spec and build its static adjacency (and explicit weights, if any).

    ``key`` is the config key of the spec; ``in_schedule`` leaves connectivity to the union check
    of the whole schedule (`check_joint_connectivity`) and lets a graph leave agents idle.
    """
    if not isinstance(spec, dict) or "graph" not in spec:
        raise TopologyError(f"{label}: a graph spec must be a mapping with a 'graph' key, got {spec!r}")
    kind = spec["graph"]
    if kind not in GRAPH_PARAMS:
        raise TopologyError(f"{label}: unknown graph {kind!r}; known graphs: {', '.join(GRAPH_NAMES)}")
    name = label if kind in label else f"{label} ({kind})"  # messages always name the graph kind
    unknown = set(spec) - COMMON_SPEC_KEYS - GRAPH_PARAMS[kind]
    if unknown:
        allowed = sorted(GRAPH_PARAMS[kind] | COMMON_SPEC_KEYS)
        raise TopologyError(f"graph '{name}': unknown parameter(s) {sorted(unknown)}; allowed: {allowed}")
    params = {k: v for k, v in spec.items() if k not in COMMON_SPEC_KEYS and v is not None}  # null = default
    weights = spec.get("weights") if spec.get("weights") is not None else default_weights
    explicit: np.ndarray | None = None
    if isinstance(weights, list):
        if kind != "custom":
            raise TopologyError(f"graph '{name}': an explicit weights matrix is only allowed for graph=custom")
        try:
            explicit = np.asarray(weights, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise TopologyError(f"graph '{name}': explicit weights are not a numeric n x n matrix ({exc})") from exc
        weights = EXPLICIT_WEIGHTS
    elif weights not in WEIGHT_KINDS:
        raise TopologyError(f"graph '{name}': unknown weights {weights!r}; known: {', '.join(WEIGHT_KINDS)}")

    if kind == "random":
        edge_prob = params.get("edge_prob")
        if isinstance(edge_prob, bool) or not isinstance(edge_prob, (int, float)) or not 0.0 < edge_prob <= 1.0:
            raise TopologyError(f"graph '{name}': edge_prob must be a number in (0, 1], got {edge_prob!r}")
        directed = params.get("directed", False)
        if not isinstance(directed, bool):
            raise TopologyError(f"graph '{name}': 'directed' must be true or false, got {directed!r}")
        if directed and weights == "metropolis_hastings":
            raise TopologyError(f"graph '{name}' is directed: metropolis_hastings weights need an undirected "
                                "graph; use weights=uniform (column-stochastic push-sum weights)")
        params = {"edge_prob": float(edge_prob), "directed": directed}
        family = RandomGraphs(num_agents, float(edge_prob), directed)
        return GraphEntry(kind, name, num_agents, params, weights, directed, None, family=family)
    if kind == "one_peer_exponential":
        if weights == "metropolis_hastings":
            raise TopologyError(f"graph '{name}' is directed: metropolis_hastings weights need an undirected "
                                "graph; use weights=uniform (keep 1/2, push 1/2 to the one peer)")
        # Each step's graph is a permutation i -> i + 2^k, strongly connected only when gcd(n, 2^k) = 1,
        # so a per-step check would reject every even n; push-sum needs strong connectivity of the
        # union over a bounded window (B-strong connectivity), so check the union over one period.
        if not in_schedule and not is_strongly_connected(one_peer_exponential_union(num_agents)):
            raise TopologyError(f"graph '{name}' is disconnected: the union over one period is not strongly connected")
        entry = GraphEntry(kind, name, num_agents, {}, weights, True, None, family=OnePeerExponential(num_agents))
        entry.mixing(0, 0)  # build eagerly so a bad weights kind fails at build time
        return entry

    A, directed = build_static_adjacency(kind, num_agents, params, key, allow_idle=in_schedule)
    if not in_schedule:
        _check_connected(A, directed, f"graph '{name}' is disconnected")
    entry = GraphEntry(kind, name, num_agents, params, weights, directed, A)
    if explicit is not None:
        check_weights(explicit, A, "none", name)  # shape, sign and support are never negotiable
        entry.static_mixing = explicit
    else:
        entry.mixing(0, 0)  # build eagerly so bad weights kinds (MH on directed) fail at build time
    return entry


def _check_connected(A: np.ndarray, directed: bool, what: str, note: str = "") -> None:
    """Raise TopologyError ``what: <why>note`` unless A is (strongly, if directed) connected."""
    if directed and not is_strongly_connected(A):
        no_path_from_0 = np.flatnonzero(~reachable_from_zero(A)).tolist()
        no_path_to_0 = np.flatnonzero(~reachable_from_zero(A.T)).tolist()
        raise TopologyError(f"{what}: the directed graph is not strongly connected "
                            f"(agent 0 cannot reach {no_path_from_0}; {no_path_to_0} cannot reach agent 0){note}")
    if not directed and not is_connected(A):
        stranded = np.flatnonzero(~reachable_from_zero(A | A.T)).tolist()
        raise TopologyError(f"{what}: agents {stranded} are not linked to agent 0{note}")


def check_joint_connectivity(entries: list[GraphEntry], num_agents: int) -> None:
    """Refuse a schedule whose graphs, joined over one period, leave an agent unreachable.

    Push-sum (Nedic & Olshevsky 2015) and gossip with doubly stochastic weights (Koloskova et al.
    2020, Assumption 4 over a window of tau steps) need only this joint (B-)connectivity, not each graph's.
    """
    union = np.zeros((num_agents, num_agents), dtype=bool)
    for entry in entries:
        union |= entry.densest()  # a per-step family adds every edge it can draw (one-peer: its period)
    keys = f"topology.schedule[0..{len(entries) - 1}]"
    never = idle_agents(union) if num_agents > 1 else []
    if never:
        fewer = f"set agents={never[0]}" if never == list(range(never[0], num_agents)) else "lower agents"
        raise TopologyError(f"topology.schedule: agent(s) {never} have no edge in any graph of {keys}, so they never "
                            f"mix with the others: add edges for {never} to some topology.schedule[i], or {fewer}")
    directed = any(e.directed for e in entries) and not (union == union.T).all()
    _check_connected(union, directed, f"topology.schedule: the union of {keys} over one period is disconnected",
                     _idle_note(entries))


def _idle_note(entries: list[GraphEntry]) -> str:
    """'; idle agents: topology.schedule[1] leaves out [4]' for the static graphs that leave agents idle, or ''."""
    notes = [f"topology.schedule[{i}] leaves out {idle}" for i, e in enumerate(entries)
             if e.static_adjacency is not None and (idle := idle_agents(e.static_adjacency)) and e.num_agents > 1]
    return f"; idle agents: {'; '.join(notes)}" if notes else ""
