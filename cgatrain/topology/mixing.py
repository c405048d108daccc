"""Mixing matrices and their spectral / stochasticity diagnostics.

Convention: agent i's new value is ``sum_j W[i, j] * x_j`` (row i = receiver).
Off-diagonal ``W[i, j]`` may be nonzero only where ``A[i, j]``. For push-sum
(directed graphs) columns sum to 1: ``W[i, j]`` is the share of j's mass pushed to i.
"""

from __future__ import annotations

import numpy as np

from cgatrain.topology.graphs import TopologyError

WEIGHT_KINDS: tuple[str, ...] = ("uniform", "metropolis_hastings", "binary")
STOCHASTICITY_REQUIREMENTS: tuple[str, ...] = ("row", "column", "doubly", "none")


def uniform_weights(A: np.ndarray, directed: bool) -> np.ndarray:
    """Equal weights over each neighbourhood including self.

    Undirected: W[i, j] = 1 / (deg_i + 1) for j in N(i) + {i} (row stochastic).
    Directed: W[i, j] = 1 / (outdeg_j + 1) for i in out(j) + {j} (column stochastic, push-sum).
    """
    A = np.asarray(A, dtype=bool)
    support = (A | np.eye(A.shape[0], dtype=bool)).astype(np.float64)
    if directed:
        return support / support.sum(axis=0, keepdims=True)  # each sender splits its mass evenly
    return support / support.sum(axis=1, keepdims=True)  # each receiver averages evenly


def metropolis_hastings_weights(A: np.ndarray, graph_name: str = "graph") -> np.ndarray:
    """Metropolis-Hastings weights on an undirected graph: symmetric and doubly stochastic."""
    A = np.asarray(A, dtype=bool)
    if not (A == A.T).all():
        raise TopologyError(
            f"graph '{graph_name}': metropolis_hastings weights need an undirected (symmetric) graph; "
            "use weights=uniform for push-sum on a directed graph")
    degree = A.sum(axis=1)
    W = np.where(A, 1.0 / (1.0 + np.maximum.outer(degree, degree)), 0.0)
    np.fill_diagonal(W, 1.0 - W.sum(axis=1))  # self weight absorbs the rest of each row
    return W


def binary_weights(A: np.ndarray) -> np.ndarray:
    """The NGO paper's eq. 10 weights: W[i, j] = 1 on every edge, 0 elsewhere (diagonal too); not stochastic."""
    return np.asarray(A, dtype=bool).astype(np.float64)


def mixing_weights(A: np.ndarray, kind: str, directed: bool, graph_name: str = "graph") -> np.ndarray:
    """Dispatch on the weights kind ('uniform', 'metropolis_hastings' or 'binary')."""
    if kind == "uniform":
        return uniform_weights(A, directed)
    if kind == "binary":
        return binary_weights(A)
    if kind == "metropolis_hastings":
        if directed:
            raise TopologyError(
                f"graph '{graph_name}' is directed: metropolis_hastings weights need an undirected graph; "
                "use weights=uniform (column-stochastic push-sum weights)")
        return metropolis_hastings_weights(A, graph_name)
    raise TopologyError(f"graph '{graph_name}': unknown weights '{kind}'; known: {', '.join(WEIGHT_KINDS)}")


def is_row_stochastic(W: np.ndarray, tol: float = 1e-9) -> bool:
    """Rows sum to 1 and no entry is below -tol."""
    W = np.asarray(W, dtype=np.float64)
    return bool((W >= -tol).all() and np.allclose(W.sum(axis=1), 1.0, rtol=0.0, atol=tol))


def is_column_stochastic(W: np.ndarray, tol: float = 1e-9) -> bool:
    """Columns sum to 1 and no entry is below -tol."""
    W = np.asarray(W, dtype=np.float64)
    return bool((W >= -tol).all() and np.allclose(W.sum(axis=0), 1.0, rtol=0.0, atol=tol))


def is_doubly_stochastic(W: np.ndarray, tol: float = 1e-9) -> bool:
    """Both row and column stochastic."""
    return is_row_stochastic(W, tol) and is_column_stochastic(W, tol)


def stochasticity_label(W: np.ndarray, tol: float = 1e-9) -> str:
    """Human label: 'doubly', 'row', 'column' or 'none'."""
    row, column = is_row_stochastic(W, tol), is_column_stochastic(W, tol)
    return "doubly" if row and column else "row" if row else "column" if column else "none"


def spectral_gap(W: np.ndarray) -> float:
    """1 - second-largest eigenvalue modulus of W; 1.0 for a single agent."""
    W = np.asarray(W, dtype=np.float64)
    if W.shape[0] == 1:
        return 1.0
    eigenvalues = np.linalg.eigvalsh(W) if np.allclose(W, W.T) else np.linalg.eigvals(W)
    moduli = np.sort(np.abs(eigenvalues))[::-1]
    return float(1.0 - moduli[1])


def consensus_rate(W: np.ndarray) -> float:
    """Spectral norm ||W - 11^T/n||_2: per-step contraction of the distance to the average (doubly stochastic W)."""
    W = np.asarray(W, dtype=np.float64)
    n = W.shape[0]
    return float(np.linalg.norm(W - np.full((n, n), 1.0 / n), ord=2))


def check_weights(W: np.ndarray, A: np.ndarray, require: str, graph_name: str, hint: str = "",
                  tol: float = 1e-9) -> None:
    """Raise TopologyError if W is negative, nonzero off the graph's edges, or lacks ``require`` stochasticity."""
    if require not in STOCHASTICITY_REQUIREMENTS:
        raise TopologyError(f"require must be one of {STOCHASTICITY_REQUIREMENTS}, got {require!r}")
    n = A.shape[0]
    if W.shape != (n, n):
        raise TopologyError(f"graph '{graph_name}': mixing matrix must have shape ({n}, {n}), got {W.shape}")
    if not np.isfinite(W).all():
        raise TopologyError(f"graph '{graph_name}': mixing matrix has non-finite entries")
    if (W < -tol).any():
        i, j = np.unravel_index(np.argmin(W), W.shape)
        raise TopologyError(f"graph '{graph_name}': negative weight W[{i}, {j}] = {W[i, j]:.6g}")
    off_edge = (np.abs(W) > tol) & ~A & ~np.eye(n, dtype=bool)
    if off_edge.any():
        i, j = np.argwhere(off_edge)[0]
        raise TopologyError(
            f"graph '{graph_name}': W[{i}, {j}] = {W[i, j]:.6g} is nonzero but there is no edge {j} -> {i}")
    row_dev = float(np.max(np.abs(W.sum(axis=1) - 1.0)))
    col_dev = float(np.max(np.abs(W.sum(axis=0) - 1.0)))
    missing = [axis for axis, dev in (("row", row_dev), ("column", col_dev))
               if require in (axis, "doubly") and dev > tol]
    if missing:
        raise TopologyError(
            f"graph '{graph_name}': mixing matrix is not {require} stochastic "
            f"(worst row-sum deviation {row_dev:.3g}, worst column-sum deviation {col_dev:.3g})"
            + (f"; hint: {hint}" if hint else ""))
