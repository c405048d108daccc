"""Communication layer: process groups and neighbour exchanges on flat buffers; knows nothing of models."""

from cgatrain.comm.exchange import NeighborExchange, PeerError, RoundStats
from cgatrain.comm.process_group import LaunchEnv, choose_backend, detect_launch_env, init_comm, slurm_first_host, teardown_comm

__all__ = [
    "LaunchEnv",
    "NeighborExchange",
    "PeerError",
    "RoundStats",
    "choose_backend",
    "detect_launch_env",
    "init_comm",
    "slurm_first_host",
    "teardown_comm",
]
