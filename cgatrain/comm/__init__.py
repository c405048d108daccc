"""Communication layer: process groups and neighbour exchanges on flat buffers; knows nothing of models."""

from cgatrain.comm.devices import DevicePlan, plan_devices
from cgatrain.comm.exchange import NeighborExchange, PeerError, RoundStats
from cgatrain.comm.process_group import LaunchEnv, choose_backend, detect_launch_env, init_comm, slurm_first_host, teardown_comm

__all__ = [
    "DevicePlan",
    "LaunchEnv",
    "NeighborExchange",
    "PeerError",
    "RoundStats",
    "choose_backend",
    "detect_launch_env",
    "init_comm",
    "plan_devices",
    "slurm_first_host",
    "teardown_comm",
]
