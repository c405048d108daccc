"""Data layer: dataset loading, per-agent partitions, and reproducible batch sampling."""

from cgatrain.data.common import DataError, DatasetSplit
from cgatrain.data.datasets import load_dataset
from cgatrain.data.idx import parse_idx, read_idx, write_idx
from cgatrain.data.partition import check_partition_feasible, partition_indices
from cgatrain.data.sampler import AgentSampler, steps_per_epoch

__all__ = [
    "AgentSampler",
    "DataError",
    "DatasetSplit",
    "check_partition_feasible",
    "load_dataset",
    "parse_idx",
    "partition_indices",
    "read_idx",
    "steps_per_epoch",
    "write_idx",
]
