"""Algorithms, registered by name: importing this package registers every built-in one."""

from cgatrain.algorithms import cdmsgd, centralized, cga, dpmsgd, dpsgd, fedavg, local, ngo, push_sum, swarmsgd  # noqa: F401  (registration)
from cgatrain.algorithms.base import ALGORITHMS, AgentContext, Algorithm, get_algorithm, register, resolve_compressor
from cgatrain.algorithms.momentum import Momentum
from cgatrain.algorithms.objective import FlatModel, LocalObjective

__all__ = ["ALGORITHMS", "AgentContext", "Algorithm", "FlatModel", "LocalObjective", "Momentum", "get_algorithm", "register", "resolve_compressor"]
