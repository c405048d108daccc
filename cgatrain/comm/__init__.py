"""Communication layer: process groups and neighbour exchanges on flat buffers; knows nothing of models.

Names are imported on first use (PEP 562), so `cgatrain.comm.launch_env` loads without torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "DevicePlan": "devices",
    "plan_devices": "devices",
    "NeighborExchange": "exchange",
    "PeerError": "exchange",
    "RoundStats": "exchange",
    "LaunchEnv": "launch_env",
    "detect_launch_env": "launch_env",
    "slurm_first_host": "launch_env",
    "choose_backend": "process_group",
    "init_comm": "process_group",
    "teardown_comm": "process_group",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'cgatrain.comm' has no attribute {name!r}")
    return getattr(importlib.import_module(f"cgatrain.comm.{_HOMES[name]}"), name)
