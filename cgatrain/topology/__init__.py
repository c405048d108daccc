"""Topology layer: communication graphs, mixing matrices and time-varying schedules.

Conventions: ``A[i, j]`` is True iff agent i receives from agent j (edge j -> i, no
self-loops); agent i's mixed value is ``sum_j W[i, j] * x_j``. Pure numpy.
"""

from cgatrain.topology.graphs import (
    GRAPH_NAMES,
    TopologyError,
    in_neighbors_of,
    is_connected,
    is_strongly_connected,
    out_neighbors_of,
)
from cgatrain.topology.mixing import (
    WEIGHT_KINDS,
    consensus_rate,
    is_column_stochastic,
    is_doubly_stochastic,
    is_row_stochastic,
    metropolis_hastings_weights,
    spectral_gap,
    uniform_weights,
)
from cgatrain.topology.schedule import Topology, build_topology

__all__ = [
    "GRAPH_NAMES",
    "WEIGHT_KINDS",
    "Topology",
    "TopologyError",
    "build_topology",
    "consensus_rate",
    "in_neighbors_of",
    "is_column_stochastic",
    "is_connected",
    "is_doubly_stochastic",
    "is_row_stochastic",
    "is_strongly_connected",
    "metropolis_hastings_weights",
    "out_neighbors_of",
    "spectral_gap",
    "uniform_weights",
]
