"""Data layer: dataset loading, per-agent partitions, and reproducible batch sampling."""

from cgatrain.data.common import DataError, DatasetSplit
from cgatrain.data.datasets import DATASETS, load_dataset, register_dataset
from cgatrain.data.idx import parse_idx, read_idx, write_idx
from cgatrain.data.partition import PARTITIONS, check_partition_feasible, partition_indices, register_partition
from cgatrain.data.sampler import AgentSampler, steps_per_epoch

__all__ = [
    "DATASETS",
    "PARTITIONS",
    "AgentSampler",
    "DataError",
    "DatasetSplit",
    "check_partition_feasible",
    "load_dataset",
    "parse_idx",
    "partition_indices",
    "read_idx",
    "register_dataset",
    "register_partition",
    "steps_per_epoch",
    "write_idx",
]
