"""Composing the config: where configs/ is, the run directory's name, cgatrain's resolvers, Hydra's compose API.

One `compose_config()` serves the command, the parent's checks (cgatrain/precheck.py) and the tests.
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from cgatrain.comm.launch_env import detect_launch_env


def config_dir() -> str:
    """The `configs/` folder: beside the package in a checkout, inside it in a wheel."""
    package = Path(__file__).resolve().parent
    for candidate in (package.parent / "configs", package / "_configs"):
        if (candidate / "config.yaml").exists():
            return str(candidate)
    raise FileNotFoundError(f"cgatrain configs not found next to {package}")


def config_groups() -> set[str]:
    """The config groups of configs/ (algorithm, topology, data, ...)."""
    return {path.name for path in Path(config_dir()).iterdir() if path.is_dir()}


def default_run_dir() -> str:
    """outputs/<date>/<time> for a local run; one shared folder per launcher job under torchrun/srun."""
    env = detect_launch_env()
    if env is None:
        return datetime.datetime.now().strftime("outputs/%Y-%m-%d/%H-%M-%S")
    # Every rank derives the same name from the launcher's job id; torchrun's default id is "none".
    run_id = env.run_id if env.run_id and env.run_id != "none" else f"pid{os.getppid()}"
    return f"outputs/{env.launcher}/{run_id}"


def _register_resolver(name: str, resolver: Any) -> None:
    """Register once; omegaconf >= 2.4 renamed register_new_resolver to register_resolver (the 2.3 one is legacy)."""
    if OmegaConf.has_resolver(name):
        return
    import omegaconf

    major, minor = (int(part) for part in omegaconf.__version__.split(".")[:2])
    if (major, minor) >= (2, 4):
        OmegaConf.register_resolver(name, resolver)
    else:  # in 2.1-2.3 register_resolver is the legacy API, without nested interpolations
        OmegaConf.register_new_resolver(name, resolver)


def register_resolvers() -> None:
    """cgatrain_run_dir and cgatrain_tasks_per_node, used by configs/config.yaml and the Slurm launcher config."""
    _register_resolver("cgatrain_run_dir", default_run_dir)
    _register_resolver("cgatrain_tasks_per_node", _tasks_per_node)


def _tasks_per_node(agents: int, nodes: int) -> int:
    """slurm: agents spread evenly over the nodes, one task per agent."""
    if int(agents) % int(nodes):
        raise ValueError(f"agents={agents} cannot be spread evenly over slurm.nodes={nodes}")
    return int(agents) // int(nodes)



def hydra_version_base() -> dict[str, str]:
    """`version_base` for Hydra: 1.3 wants it (a warning without), 1.4 deprecates it (a warning with)."""
    import hydra

    major, minor = (int(part) for part in hydra.__version__.split(".")[:2])
    return {} if (major, minor) >= (1, 4) else {"version_base": "1.3"}


def compose_config(overrides: list[str], return_hydra_config: bool = False) -> DictConfig:
    """The config `cgatrain OVERRIDES...` would run with, composed without starting anything."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    register_resolvers()
    # Inside a cgatrain job: its own config loader and search path (not another app's Hydra, e.g. in a notebook).
    if GlobalHydra.instance().is_initialized() and HydraConfig.initialized() and HydraConfig.get().job.name == "cgatrain":
        return compose("config", overrides=list(overrides), return_hydra_config=return_hydra_config)
    with initialize_config_dir(config_dir=config_dir(), **hydra_version_base()):
        return compose("config", overrides=list(overrides), return_hydra_config=return_hydra_config)
