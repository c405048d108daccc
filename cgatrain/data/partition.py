"""Split a train set across agents: IID shards or the CGA paper's class-per-agent split."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from cgatrain.data.common import DataError, bool_option


def _iid_partition(labels: np.ndarray, num_agents: int, cfg: Mapping[str, Any], rng: np.random.Generator) -> list[np.ndarray]:
    """Deal a seeded permutation into near-equal shards (sizes differ by at most 1).

    With ``drop_remainder: true`` the last ``N mod num_agents`` permuted samples are
    dropped so every shard has exactly ``N // num_agents`` samples.
    """
    order = rng.permutation(len(labels))
    if bool_option(cfg, "drop_remainder", False):
        order = order[: (len(order) // num_agents) * num_agents]
    return list(np.array_split(order, num_agents))


def _integer_class_labels(labels: np.ndarray) -> np.ndarray:
    """Validate that ``labels`` are non-negative integer class ids (not regression targets)."""
    if not np.issubdtype(labels.dtype, np.integer):
        raise DataError(
            f"the class partition needs integer class labels, got dtype {labels.dtype} "
            "(regression targets cannot be split by class; use partition=iid)"
        )
    if labels.size and labels.min() < 0:
        raise DataError("the class partition needs non-negative class labels")
    return labels


def _agents_for_class(class_id: int, num_classes: int, num_agents: int) -> list[int]:
    """Agents that share class ``class_id``: agent ``c mod n`` when n <= classes, else all r with r mod classes == c."""
    if num_agents <= num_classes:
        return [class_id % num_agents]
    return list(range(class_id, num_agents, num_classes))


def _class_partition(labels: np.ndarray, num_agents: int, cfg: Mapping[str, Any], rng: np.random.Generator) -> list[np.ndarray]:
    """The CGA paper's extreme non-IID split (as in the authors' code).

    Class ``c`` goes to agent ``c mod n``: with 10 classes, 5 agents hold classes
    {r, r+5}, 10 agents one class each. If ``n`` does not divide the number of
    classes, agents hold unequal numbers of classes (allowed). When ``n`` exceeds
    the number of classes, class ``c`` is shuffled and cut into near-equal disjoint
    parts, one per agent ``r`` with ``r mod num_classes == c``. With
    ``balance_classes: true`` every class is first shuffled and then cut to the
    smallest class's size, as the authors did (723 per class on MNIST).
    """
    labels = _integer_class_labels(labels)
    num_classes = int(labels.max()) + 1 if labels.size else 0
    # shuffle each class once so both the balancing cut and the sub-splits are random
    class_members = [rng.permutation(np.flatnonzero(labels == c)) for c in range(num_classes)]
    if bool_option(cfg, "balance_classes", False):
        min_count = min((len(m) for m in class_members if len(m)), default=0)
        class_members = [m[:min_count] for m in class_members]
    shards: list[list[np.ndarray]] = [[] for _ in range(num_agents)]
    for class_id, members in enumerate(class_members):
        owners = _agents_for_class(class_id, num_classes, num_agents)
        if len(members) < len(owners):
            raise DataError(
                f"more agents than the partition can serve: class {class_id} has {len(members)} samples "
                f"but would be split among {len(owners)} agents"
            )
        for owner, part in zip(owners, np.array_split(members, len(owners))):
            shards[owner].append(part)
    return [np.concatenate(parts) if parts else np.empty(0, dtype=np.int64) for parts in shards]


_PARTITIONERS: dict[str, Callable[[np.ndarray, int, Mapping[str, Any], np.random.Generator], list[np.ndarray]]] = {
    "iid": _iid_partition,
    "class": _class_partition,
}


def partition_indices(labels: np.ndarray, num_agents: int, cfg: Mapping[str, Any], seed: int) -> list[np.ndarray]:
    """Split train indices ``0..len(labels)-1`` among ``num_agents`` agents.

    Returns one sorted int64 index array per agent; the arrays are disjoint.
    ``cfg["name"]`` picks ``iid`` or ``class``. Raises DataError for unknown
    names, bad labels, or when any agent would end up with no samples.
    """
    labels = np.asarray(labels)
    name = cfg.get("name")
    if name not in _PARTITIONERS:
        raise DataError(f"unknown partition {name!r}; known: {', '.join(sorted(_PARTITIONERS))}")
    if isinstance(num_agents, bool) or not isinstance(num_agents, (int, np.integer)) or num_agents < 1:
        raise DataError(f"num_agents must be a positive integer, got {num_agents!r}")
    if labels.ndim != 1:
        raise DataError(f"labels must be a 1-D array, got shape {labels.shape}")
    rng = np.random.default_rng(seed)
    shards = _PARTITIONERS[name](labels, int(num_agents), cfg, rng)
    empty = [agent for agent, shard in enumerate(shards) if len(shard) == 0]
    if empty:
        raise DataError(
            f"more agents than the partition can serve: {name} partition of {len(labels)} samples "
            f"among {num_agents} agents leaves agents {empty} with no data"
        )
    return [np.sort(shard).astype(np.int64) for shard in shards]


def check_partition_feasible(num_samples: int, labels: np.ndarray | None, num_agents: int, cfg: Mapping[str, Any]) -> list[int]:
    """Raise DataError if the partition cannot serve ``num_agents``; else return the shard sizes.

    ``labels`` may be None for the ``iid`` partition, which only needs the count.
    Shard sizes do not depend on the seed, so any seed gives the same verdict.
    """
    if labels is None:
        labels = np.zeros(num_samples, dtype=np.int64)
    labels = np.asarray(labels)
    if len(labels) != num_samples:
        raise DataError(f"num_samples={num_samples} but {len(labels)} labels were given")
    return [len(shard) for shard in partition_indices(labels, num_agents, cfg, seed=0)]
