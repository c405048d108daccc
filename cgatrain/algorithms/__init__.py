"""Algorithms, registered by name: importing this package registers every built-in one."""

from cgatrain.algorithms import centralized, cga, dpmsgd, dpsgd, local, push_sum  # noqa: F401  (registration)
from cgatrain.algorithms import ngo, swarmsgd  # noqa: F401  (registration)
from cgatrain.algorithms.base import ALGORITHMS, AgentContext, Algorithm, get_algorithm, register, resolve_compressor
from cgatrain.algorithms.objective import FlatModel, LocalObjective

__all__ = ["ALGORITHMS", "AgentContext", "Algorithm", "FlatModel", "LocalObjective", "get_algorithm", "register", "resolve_compressor"]
