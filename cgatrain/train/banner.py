"""The lines a run prints before its first step: what runs, on what data and graph, and where its files go."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cgatrain.algorithms.base import Algorithm
from cgatrain.topology import Topology


def topology_line(algorithm: type[Algorithm], hparams: Mapping[str, Any], topology: Topology) -> str:
    """The topology as this algorithm uses it: its graphs, their weights only where the update reads them."""
    name = hparams["name"]
    role = algorithm.topology_role(hparams)
    if role is not None:
        return f"Topology: not used ({name}: {role})"
    ignored = algorithm.ignored_weights(hparams)
    if ignored is None:
        return topology.describe()
    return topology.describe(weights=False) + f"\n  mixing weights: not used ({name}: {ignored})"


def compressor_label(resolved: Mapping[str, Any]) -> str:
    """`topk (fraction=0.01)`: the compressor an algorithm runs with, `compressor=auto` resolved."""
    options = ", ".join(f"{key}={value}" for key, value in resolved.items() if key != "name" and value is not None)
    return f"{resolved['name']} ({options})" if options else str(resolved["name"])


def run_banner(cfg: Mapping[str, Any], world_size: int, data_line: str, model_numel: int, steps: int,
               wire: str, topology: str, run_dir: Path, compressor: str | None = None) -> str:
    """The run's first lines: algorithm (and its compressor), agents, data, model, steps per epoch, wire, topology, run dir."""
    algorithm = cfg["algorithm"]["name"] + (f" with compressor {compressor}" if compressor else "")
    return (
        f"cgatrain: {algorithm} | {world_size} agents | data {data_line} split {cfg['partition']['name']} | "
        f"model {cfg['model']['name']} ({model_numel:,} params) | {steps} steps/epoch | {wire}\n"
        f"{topology}\nrun dir: {run_dir}"
    )
