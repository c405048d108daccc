"""Topology objects built from Hydra configs: single graphs, schedules and per-step (random, one-peer) graphs."""

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
    in_neighbors_of,
    is_connected,
    is_strongly_connected,
    one_peer_exponential_union,
    out_neighbors_of,
    reachable_from_zero,
)
from cgatrain.topology.mixing import (
    STOCHASTICITY_REQUIREMENTS,
    WEIGHT_KINDS,
    check_weights,
    consensus_rate,
    is_column_stochastic,
    is_row_stochastic,
    mixing_weights,
    spectral_gap,
    stochasticity_label,
)
from cgatrain.topology.per_step import OnePeerExponential, PerStepFamily, RandomGraphs

COMMON_SPEC_KEYS = frozenset({"graph", "weights", "name"})
SCHEDULE_KEYS = frozenset({"schedule", "switch_every", "switch_unit", "weights", "name"})
SWITCH_UNITS = ("step", "epoch")
EXPLICIT_WEIGHTS = "explicit"


def _to_plain(value: Any) -> Any:
    """Recursively turn Mapping/Sequence containers (incl. OmegaConf's) into dicts and lists."""
    if isinstance(value, Mapping):
        return {str(k): _to_plain(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return [_to_plain(v) for v in value]
    return value


@dataclass
class _GraphEntry:
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


def _parse_entry(spec: Any, num_agents: int, default_weights: Any, label: str,
                 key: str = "topology", in_schedule: bool = False) -> _GraphEntry:
    """Validate one graph spec and build its static adjacency (and explicit weights, if any).

    ``key`` is the config key of the spec; ``in_schedule`` leaves connectivity to the union check
    of the whole schedule (`_check_joint_connectivity`) and lets a graph leave agents idle.
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
        return _GraphEntry(kind, name, num_agents, params, weights, directed, None, family=family)
    if kind == "one_peer_exponential":
        if weights == "metropolis_hastings":
            raise TopologyError(f"graph '{name}' is directed: metropolis_hastings weights need an undirected "
                                "graph; use weights=uniform (keep 1/2, push 1/2 to the one peer)")
        # Each step's graph is a permutation i -> i + 2^k, strongly connected only when gcd(n, 2^k) = 1,
        # so a per-step check would reject every even n; push-sum needs strong connectivity of the
        # union over a bounded window (B-strong connectivity), so check the union over one period.
        if not in_schedule and not is_strongly_connected(one_peer_exponential_union(num_agents)):
            raise TopologyError(f"graph '{name}' is disconnected: the union over one period is not strongly connected")
        entry = _GraphEntry(kind, name, num_agents, {}, weights, True, None, family=OnePeerExponential(num_agents))
        entry.mixing(0, 0)  # build eagerly so a bad weights kind fails at build time
        return entry

    A, directed = build_static_adjacency(kind, num_agents, params, key, allow_idle=in_schedule)
    if not in_schedule:
        _check_connected(A, directed, f"graph '{name}' is disconnected")
    entry = _GraphEntry(kind, name, num_agents, params, weights, directed, A)
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


def _check_joint_connectivity(entries: list[_GraphEntry], num_agents: int) -> None:
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


def _idle_note(entries: list[_GraphEntry]) -> str:
    """'; idle agents: topology.schedule[1] leaves out [4]' for the static graphs that leave agents idle, or ''."""
    notes = [f"topology.schedule[{i}] leaves out {idle}" for i, e in enumerate(entries)
             if e.static_adjacency is not None and (idle := idle_agents(e.static_adjacency)) and e.num_agents > 1]
    return f"; idle agents: {'; '.join(notes)}" if notes else ""


class Topology:
    """A (possibly time-varying) communication topology over ``num_agents`` agents."""

    def __init__(self, entries: list[_GraphEntry], num_agents: int, seed: int,
                 switch_every: int = 1, switch_unit: str = "step", is_schedule: bool = False) -> None:
        self.num_agents: int = num_agents
        self.seed: int = seed
        self.switch_every: int = switch_every
        self.switch_unit: str = switch_unit
        self._entries = entries
        self._is_schedule = is_schedule
        self.directed: bool = any(e.directed for e in entries)
        self.time_varying: bool = len(entries) > 1 or any(e.static_adjacency is None for e in entries)

    @property
    def graph_names(self) -> list[str]:
        """Graph kind of every schedule entry (one entry for a single graph)."""
        return [e.kind for e in self._entries]

    def active_index(self, step: int = 0, epoch: int = 0) -> int:
        """Index of the schedule entry in force at (step, epoch)."""
        counter = step if self.switch_unit == "step" else epoch
        return (counter // self.switch_every) % len(self._entries)

    def _entry(self, step: int, epoch: int) -> _GraphEntry:
        return self._entries[self.active_index(step, epoch)]

    def adjacency(self, step: int = 0, epoch: int = 0) -> np.ndarray:
        """Bool (n, n) adjacency at (step, epoch); A[i, j] iff edge j -> i. Returns a copy."""
        return self._entry(step, epoch).adjacency(step, self.seed).copy()

    def mixing_matrix(self, step: int = 0, epoch: int = 0) -> np.ndarray:
        """Float64 (n, n) mixing matrix at (step, epoch); row i = receiver. Returns a copy."""
        return self._entry(step, epoch).mixing(step, self.seed).copy()

    def _check_agent(self, agent: int) -> None:
        if not 0 <= agent < self.num_agents:
            raise IndexError(f"agent {agent} out of range for {self.num_agents} agents")

    def in_neighbors(self, agent: int, step: int = 0, epoch: int = 0) -> list[int]:
        """Sorted agents that ``agent`` receives from at (step, epoch)."""
        self._check_agent(agent)
        return in_neighbors_of(self._entry(step, epoch).adjacency(step, self.seed), agent)

    def out_neighbors(self, agent: int, step: int = 0, epoch: int = 0) -> list[int]:
        """Sorted agents that receive from ``agent`` at (step, epoch)."""
        self._check_agent(agent)
        return out_neighbors_of(self._entry(step, epoch).adjacency(step, self.seed), agent)

    def worst_case_graphs(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """(adjacency, mixing) of every entry's sampled steps and of each per-step family's densest graph."""
        pairs = []
        for entry in self._entries:
            pairs += [(entry.adjacency(step, self.seed), entry.mixing(step, self.seed)) for step in entry.sample_steps()]
            if entry.family is not None and entry.weights_kind != EXPLICIT_WEIGHTS:
                A = entry.densest()
                pairs.append((A, mixing_weights(A, entry.weights_kind, entry.directed, entry.label)))
        return pairs

    def validate(self, require: str) -> None:
        """Check every graph's weights (sign, support, and ``require`` in {row, column, doubly, none}).

        Static graphs are checked once; a random graph is checked on a sample of steps.
        Raises TopologyError on the first failure.
        """
        if require not in STOCHASTICITY_REQUIREMENTS:
            raise TopologyError(f"require must be one of {STOCHASTICITY_REQUIREMENTS}, got {require!r}")
        for entry in self._entries:
            for step in entry.sample_steps():
                A, W = entry.adjacency(step, self.seed), entry.mixing(step, self.seed)
                label = entry.label if entry.static_adjacency is not None else f"{entry.label} at step {step}"
                check_weights(W, A, require, label, entry.stochasticity_hint(A))

    def describe(self, weights: bool = True) -> str:
        """Multi-line human summary of the topology; `weights=False` leaves out the mixing weights' figures."""
        header = f"Topology: n={self.num_agents}, {'directed' if self.directed else 'undirected'}"
        if self._is_schedule:
            header += (f", schedule of {len(self._entries)} graph(s), switching every "
                       f"{self.switch_every} {self.switch_unit}(s)")
        lines = [header + ("" if self.time_varying else ", static")]
        for index, entry in enumerate(self._entries):
            lines.append(f"  [{index}] {entry.label}: " + self._describe_entry(entry, weights))
        period = self._period_line() if weights else None
        return "\n".join([*lines, *([period] if period else [])])

    def _period_line(self) -> str | None:
        """The mixing of one period of a schedule of fixed graphs switched per step: a graph disconnected on
        its own has spectral gap 0, but the product over the period is what contracts."""
        if not self._is_schedule or self.switch_unit != "step" or any(e.static_adjacency is None for e in self._entries):
            return None
        product = np.eye(self.num_agents)
        for entry in self._entries:
            product = np.linalg.matrix_power(entry.mixing(0, self.seed), self.switch_every) @ product
        if stochasticity_label(product) == "none":
            return None
        steps = len(self._entries) * self.switch_every
        return f"  one period ({steps} steps): spectral gap of the product of its mixing matrices {spectral_gap(product):.4f}"

    def _describe_entry(self, entry: _GraphEntry, weights: bool) -> str:
        if entry.static_adjacency is None:
            samples = [(entry.adjacency(s, self.seed), entry.mixing(s, self.seed)) for s in entry.sample_steps()]
            row = all(is_row_stochastic(W) for _, W in samples)
            column = all(is_column_stochastic(W) for _, W in samples)
            kind = "doubly" if row and column else "row" if row else "column" if column else "none"
            stats = f", weights={entry.weights_kind}, {_stochastic(kind)}" if weights else ""
            if weights and kind != "none":  # a spectral gap says nothing of a matrix that is not stochastic (NGO's binary W)
                gaps = [spectral_gap(W) for _, W in samples]
                stats += f", spectral gap mean {np.mean(gaps):.4f} (min {min(gaps):.4f}) over {len(samples)} sampled steps"
            if entry.kind == "one_peer_exponential":
                hops = [2 ** k for k in range(len(samples))] if self.num_agents > 1 else []
                return f"per-step one-peer graph, period {len(samples)} step(s), hops {hops}" + stats
            u = entry.params["edge_prob"]
            return f"per-step graph, u={u}, expected degree {u * (self.num_agents - 1):.2f}" + stats
        A = entry.static_adjacency
        in_deg, out_deg = A.sum(axis=1), A.sum(axis=0)
        degrees = (f"in-degree {in_deg.min()}..{in_deg.max()}, out-degree {out_deg.min()}..{out_deg.max()}"
                   if entry.directed else f"degree {in_deg.min()}..{in_deg.max()}")
        if (idle := idle_agents(A)) and self.num_agents > 1:
            degrees += f", idle agent(s) {idle} (keep their own value this round)"
        if not weights:
            return degrees
        W = entry.mixing(0, self.seed)
        kind = stochasticity_label(W)
        text = f"{degrees}, weights={entry.weights_kind}, {_stochastic(kind)}"
        return text if kind == "none" else text + f", spectral gap {spectral_gap(W):.4f}, consensus rate {consensus_rate(W):.4f}"

    def __repr__(self) -> str:
        return f"Topology(num_agents={self.num_agents}, graphs={self.graph_names}, time_varying={self.time_varying})"


def _stochastic(kind: str) -> str:
    """'doubly stochastic', 'row stochastic', ..., 'not stochastic'."""
    return "not stochastic" if kind == "none" else f"{kind} stochastic"


def build_topology(cfg: Mapping[str, Any], num_agents: int, seed: int = 0) -> Topology:
    """Build a Topology from a config mapping (a single graph spec or a ``schedule``).

    ``seed`` drives the per-step random graphs: step t uses ``default_rng([seed, t])`` on every agent.
    """
    if isinstance(num_agents, bool) or not isinstance(num_agents, (int, np.integer)) or num_agents < 1:
        raise TopologyError(f"num_agents must be an integer >= 1, got {num_agents!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise TopologyError(f"seed must be an integer >= 0, got {seed!r}")
    num_agents, seed = int(num_agents), int(seed)
    config = _to_plain(cfg)
    if not isinstance(config, dict):
        raise TopologyError(f"topology config must be a mapping, got {type(cfg).__name__}")
    if "schedule" not in config:
        entry = _parse_entry(config, num_agents, "uniform", str(config.get("name") or config.get("graph")))
        return Topology([entry], num_agents, seed)

    unknown = set(config) - SCHEDULE_KEYS
    if unknown:
        raise TopologyError(f"topology: unknown key(s) {sorted(unknown)} beside a schedule; allowed: {sorted(SCHEDULE_KEYS)}")
    schedule = config["schedule"]
    if not isinstance(schedule, list) or not schedule:
        raise TopologyError("topology.schedule must be a non-empty list of graph specs")
    switch_every = config.get("switch_every", 1)
    if isinstance(switch_every, bool) or not isinstance(switch_every, int) or switch_every < 1:
        raise TopologyError(f"topology.switch_every must be an integer >= 1, got {switch_every!r}")
    switch_unit = config.get("switch_unit", "step")
    if switch_unit not in SWITCH_UNITS:
        raise TopologyError(f"topology.switch_unit must be one of {SWITCH_UNITS}, got {switch_unit!r}")
    default_weights = config.get("weights") or "uniform"
    entries = []
    for index, spec in enumerate(schedule):
        if isinstance(spec, dict) and "schedule" in spec:
            raise TopologyError(f"topology.schedule[{index}]: nested schedules are not supported")
        kind = spec.get("graph") if isinstance(spec, dict) else None
        name = spec.get("name") if isinstance(spec, dict) else None
        label = f"schedule[{index}] {name} ({kind})" if name else f"schedule[{index}] {kind}"
        entries.append(_parse_entry(spec, num_agents, default_weights, label, f"topology.schedule[{index}]", True))
    _check_joint_connectivity(entries, num_agents)
    return Topology(entries, num_agents, seed, switch_every, switch_unit, is_schedule=True)
