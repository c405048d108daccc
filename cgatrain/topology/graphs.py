"""Communication graphs as boolean adjacency matrices.

Convention (shared with every other layer): ``A[i, j] is True`` iff there is an
edge ``j -> i``, i.e. agent ``i`` RECEIVES from agent ``j``. ``A`` never has
self-loops; undirected graphs have a symmetric ``A``.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np


class TopologyError(ValueError):
    """Raised for every invalid topology configuration or failed check."""


# Parameters each graph accepts (besides the common keys ``graph``, ``weights``, ``name``).
GRAPH_PARAMS: dict[str, frozenset[str]] = {
    "complete": frozenset(),
    "ring": frozenset(),
    "bipartite": frozenset({"left"}),
    "torus": frozenset({"rows", "cols"}),
    "star": frozenset(),
    "exponential": frozenset({"directed"}),
    "directed_ring": frozenset(),
    "random": frozenset({"edge_prob", "directed"}),
    "one_peer_exponential": frozenset(),
    "custom": frozenset({"adjacency", "edges", "directed"}),
}
GRAPH_NAMES: tuple[str, ...] = tuple(GRAPH_PARAMS)


def _empty(n: int) -> np.ndarray:
    return np.zeros((n, n), dtype=bool)


def _add_undirected_edge(A: np.ndarray, i: int, j: int) -> None:
    if i != j:  # wraparound on tiny graphs can map a node onto itself; never store self-loops
        A[i, j] = A[j, i] = True


def _bool_param(name: str, params: dict[str, Any], key: str, default: bool) -> bool:
    value = params.get(key, default)
    if not isinstance(value, (bool, np.bool_)):
        raise TopologyError(f"graph '{name}': parameter '{key}' must be true or false, got {value!r}")
    return bool(value)


def _int_param(name: str, params: dict[str, Any], key: str) -> int | None:
    value = params.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TopologyError(f"graph '{name}': parameter '{key}' must be an integer, got {value!r}")
    return int(value)


def complete_graph(n: int) -> np.ndarray:
    """Every agent receives from every other agent."""
    return ~np.eye(n, dtype=bool)


def ring_graph(n: int) -> np.ndarray:
    """Undirected cycle; n=2 is a single edge and n=1 has no edges."""
    A = _empty(n)
    for i in range(n):
        _add_undirected_edge(A, i, (i + 1) % n)
    return A


def directed_ring_graph(n: int) -> np.ndarray:
    """Directed cycle i -> i+1 (mod n)."""
    A = _empty(n)
    for i in range(n):
        if (i + 1) % n != i:
            A[(i + 1) % n, i] = True
    return A


def bipartite_graph(n: int, left: int | None = None) -> np.ndarray:
    """Complete bipartite graph K_{left, n-left}; the first ``left`` agents form one side."""
    left = n // 2 if left is None else left
    if not 1 <= left <= n - 1:
        raise TopologyError(f"graph 'bipartite': 'left' must be in [1, {n - 1}] for n={n}, got {left}")
    A = _empty(n)
    A[:left, left:] = True
    A[left:, :left] = True
    return A


def most_square_factorization(n: int) -> tuple[int, int]:
    """Return (rows, cols) with rows * cols == n, rows <= cols and rows as large as possible."""
    rows = max(d for d in range(1, math.isqrt(n) + 1) if n % d == 0)
    return rows, n // rows


def torus_graph(n: int, rows: int | None = None, cols: int | None = None) -> np.ndarray:
    """2-D wraparound grid; agent r * cols + c sits at row r, column c."""
    if rows is None and cols is None:
        rows, cols = most_square_factorization(n)
        if rows == 1 and n > 3:  # a 1 x n "torus" of a prime n is just a ring: make the user say so
            raise TopologyError(
                f"graph 'torus': n={n} is prime, so there is no 2-D grid; "
                "give rows and cols explicitly (e.g. rows=1) or use graph=ring")
    elif rows is None or cols is None:
        given = rows if rows is not None else cols
        if given < 1 or n % given != 0:
            raise TopologyError(f"graph 'torus': {'rows' if rows is not None else 'cols'}={given} does not divide n={n}")
        rows, cols = (given, n // given) if rows is not None else (n // given, given)
    if rows < 1 or cols < 1 or rows * cols != n:
        raise TopologyError(f"graph 'torus': rows * cols must equal n={n}, got rows={rows}, cols={cols}")
    A = _empty(n)
    for r in range(rows):
        for c in range(cols):
            node = r * cols + c
            _add_undirected_edge(A, node, ((r + 1) % rows) * cols + c)
            _add_undirected_edge(A, node, r * cols + (c + 1) % cols)
    return A


def star_graph(n: int) -> np.ndarray:
    """Agent 0 is linked to every other agent; leaves are not linked to each other."""
    A = _empty(n)
    A[0, 1:] = True
    A[1:, 0] = True
    return A


def exponential_graph(n: int, directed: bool = False) -> np.ndarray:
    """i linked to i + 2^k (mod n) for every 2^k < n; undirected also links i - 2^k."""
    A = _empty(n)
    hop = 1
    while hop < n:
        for i in range(n):
            A[(i + hop) % n, i] = True  # i sends to i + 2^k
        hop *= 2
    return A if directed else A | A.T


def random_graph(n: int, edge_prob: float, seed: int, step: int, directed: bool = False) -> np.ndarray:
    """Erdos-Renyi graph drawn from ``default_rng([seed, step])``: identical on every agent."""
    if not 0.0 < edge_prob <= 1.0:
        raise TopologyError(f"graph 'random': edge_prob must be in (0, 1], got {edge_prob}")
    if seed < 0 or step < 0:
        raise TopologyError(f"graph 'random': seed and step must be >= 0, got seed={seed}, step={step}")
    draws = np.random.default_rng([seed, step]).random((n, n)) < edge_prob
    np.fill_diagonal(draws, False)
    if directed:
        return draws
    upper = np.triu(draws, k=1)  # one draw per unordered pair, mirrored
    return upper | upper.T


def one_peer_exponential_period(n: int) -> int:
    """Steps in one cycle of the one-peer exponential graph: the number of hops 2^k < n (1 for n <= 2)."""
    return max(1, (n - 1).bit_length())  # floor(log2(n - 1)) + 1 = ceil(log2 n) for n >= 2


def one_peer_exponential_graph(n: int, step: int) -> np.ndarray:
    """SGP's time-varying one-peer exponential graph (Assran et al., 2019): i -> i + 2^k (mod n).

    At step t every agent pushes to the single peer 2^k hops ahead, k = t mod period,
    cycling through the hops 2^0, 2^1, ..., 2^floor(log2(n - 1)). Each step's graph is a
    permutation, strongly connected only if gcd(n, 2^k) = 1; the union over one period
    contains the directed ring (k = 0), so it always is.
    """
    if step < 0:
        raise TopologyError(f"graph 'one_peer_exponential': step must be >= 0, got {step}")
    A = _empty(n)
    if n < 2:
        return A
    hop = 2 ** (step % one_peer_exponential_period(n))
    senders = np.arange(n)
    A[(senders + hop) % n, senders] = True  # hop < n, so no self-loops
    return A


def one_peer_exponential_union(n: int) -> np.ndarray:
    """Union of the one-peer exponential graphs over one period (the directed exponential graph)."""
    A = _empty(n)
    for step in range(one_peer_exponential_period(n)):
        A |= one_peer_exponential_graph(n, step)
    return A


def custom_graph(n: int, adjacency: Any = None, edges: Any = None, directed: bool | None = None,
                 key: str = "topology", allow_idle: bool = False) -> tuple[np.ndarray, bool]:
    """Graph from an explicit adjacency (A[i][j] = 1 iff edge j -> i) or an edge list of [src, dst].

    ``directed=None`` infers directedness from symmetry; ``directed=False`` requires a
    symmetric adjacency, or mirrors every listed edge. ``key`` is the config key messages name
    (``topology.schedule[1]`` in a schedule); ``allow_idle`` accepts an edge list that leaves some
    agents without an edge (a schedule's graph, where they sit a round out). Returns (A, directed).
    """
    if (adjacency is None) == (edges is None):
        raise TopologyError("graph 'custom': give exactly one of 'adjacency' or 'edges'")
    if adjacency is not None:
        try:
            raw = np.asarray(adjacency, dtype=float)
        except (TypeError, ValueError) as exc:
            raise TopologyError(f"graph 'custom': adjacency is not a numeric matrix ({exc})") from exc
        if raw.shape != (n, n):
            raise TopologyError(f"{key}.adjacency has shape {raw.shape} but agents={n}: give an ({n}, {n}) matrix, or set agents to its size")
        if not np.isin(raw, (0.0, 1.0)).all():
            raise TopologyError("graph 'custom': adjacency entries must be 0 or 1")
        A = raw.astype(bool)
        if A.diagonal().any():
            raise TopologyError(f"graph 'custom': self-loop at agent(s) {np.flatnonzero(A.diagonal()).tolist()}")
        if directed is False and not (A == A.T).all():
            raise TopologyError("graph 'custom': directed=false but the adjacency is not symmetric")
    else:
        A = _empty(n)
        if not isinstance(edges, (list, tuple)):
            raise TopologyError(f"graph 'custom': 'edges' must be a list of [src, dst] pairs, got {edges!r}")
        for edge in edges:
            if (not isinstance(edge, (list, tuple)) or len(edge) != 2
                    or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in edge)):
                raise TopologyError(f"graph 'custom': each edge must be a pair of agent ids [src, dst], got {edge!r}")
            src, dst = int(edge[0]), int(edge[1])
            if not (0 <= src < n and 0 <= dst < n):
                raise TopologyError(f"{key}.edges: edge [{src}, {dst}] is out of range: agents={n} are numbered 0..{n - 1}")
            if src == dst:
                raise TopologyError(f"graph 'custom': self-loop [{src}, {dst}] is not allowed")
            A[dst, src] = True  # dst receives from src
            if directed is False:
                A[src, dst] = True
        if not allow_idle:
            _check_every_agent_named(edges, n, key)
    is_directed = bool(directed) if directed is not None else not (A == A.T).all()
    return A, is_directed


def _check_every_agent_named(edges: Any, n: int, key: str) -> None:
    """An edge list written for fewer agents than `agents` leaves the others without an edge: say so."""
    named = {int(v) for edge in edges for v in edge}
    if len(named) < n and named:
        size = max(named) + 1
        missing = sorted(set(range(n)) - named)
        raise TopologyError(f"{key}.edges names {size} agents (0..{size - 1}) but agents={n}, so agent(s) {missing} "
                            f"would have no edge: set agents={size}, or add edges for {missing}")


def build_static_adjacency(name: str, n: int, params: dict[str, Any], key: str = "topology",
                           allow_idle: bool = False) -> tuple[np.ndarray, bool]:
    """Build the adjacency of a non-random graph spec; returns (A, directed). ``key``, ``allow_idle``: see custom_graph."""
    builders: dict[str, Callable[[], tuple[np.ndarray, bool]]] = {
        "complete": lambda: (complete_graph(n), False),
        "ring": lambda: (ring_graph(n), False),
        "directed_ring": lambda: (directed_ring_graph(n), True),
        "bipartite": lambda: (bipartite_graph(n, _int_param(name, params, "left")), False),
        "torus": lambda: (torus_graph(n, _int_param(name, params, "rows"), _int_param(name, params, "cols")), False),
        "star": lambda: (star_graph(n), False),
        "exponential": lambda: (exponential_graph(n, d := _bool_param(name, params, "directed", False)), d),
        "custom": lambda: custom_graph(
            n, params.get("adjacency"), params.get("edges"),
            None if params.get("directed") is None else _bool_param(name, params, "directed", False), key, allow_idle),
    }
    if name not in builders:
        raise TopologyError(f"graph '{name}' is not a static graph; known: {', '.join(builders)}")
    return builders[name]()


def is_connected(A: np.ndarray) -> bool:
    """True if the undirected version ``A | A.T`` of the graph is connected."""
    A = np.asarray(A, dtype=bool)
    return bool(reachable_from_zero(A | A.T).all())


def is_strongly_connected(A: np.ndarray) -> bool:
    """True if every agent reaches every other along directed edges (BFS forwards and backwards)."""
    A = np.asarray(A, dtype=bool)
    return bool(reachable_from_zero(A).all() and reachable_from_zero(A.T).all())


def reachable_from_zero(A: np.ndarray) -> np.ndarray:
    """Agents reachable from agent 0 by following edges j -> i (A[i, j])."""
    n = A.shape[0]
    seen = np.zeros(n, dtype=bool)
    if n == 0:
        return seen
    seen[0] = True
    queue: deque[int] = deque([0])
    while queue:
        sender = queue.popleft()
        for receiver in np.flatnonzero(A[:, sender] & ~seen):
            seen[receiver] = True
            queue.append(int(receiver))
    return seen


def idle_agents(A: np.ndarray) -> list[int]:
    """Agents with no edge in or out: in a schedule's graph they keep their own value that round."""
    A = np.asarray(A, dtype=bool)
    return np.flatnonzero(~(A.any(axis=0) | A.any(axis=1))).tolist()


def in_neighbors_of(A: np.ndarray, agent: int) -> list[int]:
    """Sorted agents j != agent that ``agent`` receives from."""
    return [int(j) for j in np.flatnonzero(A[agent]) if j != agent]


def out_neighbors_of(A: np.ndarray, agent: int) -> list[int]:
    """Sorted agents i != agent that receive from ``agent``."""
    return [int(i) for i in np.flatnonzero(A[:, agent]) if i != agent]
