"""Topology objects built from Hydra configs: single graphs, schedules and per-step (random, one-peer) graphs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from cgatrain.topology.entries import EXPLICIT_WEIGHTS, GraphEntry, check_joint_connectivity, parse_entry, to_plain
from cgatrain.topology.graphs import TopologyError, idle_agents, in_neighbors_of, out_neighbors_of
from cgatrain.topology.mixing import (
    STOCHASTICITY_REQUIREMENTS,
    check_weights,
    consensus_rate,
    is_column_stochastic,
    is_row_stochastic,
    mixing_weights,
    spectral_gap,
    stochasticity_label,
)

SCHEDULE_KEYS = frozenset({"schedule", "switch_every", "switch_unit", "weights", "name"})
SWITCH_UNITS = ("step", "epoch")


class Topology:
    """A (possibly time-varying) communication topology over ``num_agents`` agents."""

    def __init__(self, entries: list[GraphEntry], num_agents: int, seed: int,
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

    def _entry(self, step: int, epoch: int) -> GraphEntry:
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

    def _describe_entry(self, entry: GraphEntry, weights: bool) -> str:
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
    config = to_plain(cfg)
    if not isinstance(config, dict):
        raise TopologyError(f"topology config must be a mapping, got {type(cfg).__name__}")
    if "schedule" not in config:
        entry = parse_entry(config, num_agents, "uniform", str(config.get("name") or config.get("graph")))
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
        entries.append(parse_entry(spec, num_agents, default_weights, label, f"topology.schedule[{index}]", True))
    check_joint_connectivity(entries, num_agents)
    return Topology(entries, num_agents, seed, switch_every, switch_unit, is_schedule=True)
