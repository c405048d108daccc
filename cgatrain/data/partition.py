"""Split a train set across agents: IID shards, the CGA paper's class-per-agent split, or Sparse-Push's data skew."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from cgatrain.data.common import DataError, bool_option, float_option
from cgatrain.data.label_skew import dirichlet_partition, shards_partition
from cgatrain.registry import Registry, failure, origin, require_name

Partitioner = Callable[[np.ndarray, int, Mapping[str, Any], np.random.Generator], list[np.ndarray]]
"""``partitioner(labels, num_agents, partition_cfg, rng)``: one index array per agent (disjoint; sorted later)."""

PARTITIONS: Registry[Partitioner] = Registry("partition", DataError)


def register_partition(name: str) -> Callable[[Partitioner], Partitioner]:
    """Decorator: make the partitioner selectable as `partition=name`."""
    require_name(name, "register_partition")
    return PARTITIONS.register(name)


@register_partition("iid")
def _iid_partition(labels: np.ndarray, num_agents: int, cfg: Mapping[str, Any], rng: np.random.Generator) -> list[np.ndarray]:
    """Deal a seeded permutation into near-equal shards (sizes differ by at most 1).

    With ``drop_remainder: true`` the last ``N mod num_agents`` permuted samples are
    dropped so every shard has exactly ``N // num_agents`` samples.
    """
    order = rng.permutation(len(labels))
    if bool_option(cfg, "drop_remainder", False):
        order = order[: (len(order) // num_agents) * num_agents]
    return list(np.array_split(order, num_agents))


def _integer_class_labels(labels: np.ndarray, partition: str = "class") -> np.ndarray:
    """Validate that ``labels`` are non-negative integer class ids (not regression targets)."""
    if not np.issubdtype(labels.dtype, np.integer):
        raise DataError(
            f"the {partition} partition needs integer class labels, got dtype {labels.dtype} "
            "(regression targets cannot be split by class; use partition=iid)"
        )
    if labels.size and labels.min() < 0:
        raise DataError(f"the {partition} partition needs non-negative class labels")
    return labels


def _agents_for_class(class_id: int, num_classes: int, num_agents: int) -> list[int]:
    """Agents that share class ``class_id``: agent ``c mod n`` when n <= classes, else all r with r mod classes == c."""
    if num_agents <= num_classes:
        return [class_id % num_agents]
    return list(range(class_id, num_agents, num_classes))


@register_partition("class")
def _class_partition(labels: np.ndarray, num_agents: int, cfg: Mapping[str, Any], rng: np.random.Generator) -> list[np.ndarray]:
    """The CGA paper's extreme non-IID split (as in the authors' code).

    Class ``c`` goes to agent ``c mod n``: with 10 classes, 5 agents hold classes
    {r, r+5}, 10 agents one class each. If ``n`` does not divide the number of
    classes, agents hold unequal numbers of classes (allowed). When ``n`` exceeds
    the number of classes, class ``c`` is shuffled and cut into near-equal disjoint
    parts, one per agent ``r`` with ``r mod num_classes == c``. With
    ``balance_classes: true`` every class is first shuffled and then cut to the
    smallest class's size, as the authors did (723 per class on MNIST). With
    ``assignment: random`` the shards are handed to agents in a seeded random order, as the
    paper's section 4 says ("agents are randomly assigned distinct subsets").
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
    result = [np.concatenate(parts) if parts else np.empty(0, dtype=np.int64) for parts in shards]
    assignment = cfg.get("assignment") or "modulo"
    if assignment not in ("modulo", "random"):
        raise DataError(f"partition.assignment must be modulo or random, got {assignment!r}")
    return [result[i] for i in rng.permutation(num_agents)] if assignment == "random" else result


def _skew_option(cfg: Mapping[str, Any]) -> float:
    """Read ``skew`` (default 0.8): the fraction of every class dealt out sorted by label."""
    if isinstance(cfg.get("skew"), bool):  # float(True) == 1.0 would silently mean "fully sorted"
        raise DataError(f"option 'skew' must be a number in [0, 1], got {cfg.get('skew')!r}")
    skew = float_option(cfg, "skew", 0.8)
    if not 0.0 <= skew <= 1.0:
        raise DataError(f"option 'skew' must be a number in [0, 1], got {skew!r}")
    return skew


def skew_split(labels: np.ndarray, num_agents: int, skew: float,
               rng: np.random.Generator) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Sparse-Push's data-skew split (Aketi et al., Section 5); returns (sorted parts, IID parts) per agent.

    From every class ``round(skew * count)`` samples are drawn at random; the drawn
    samples, ordered by label, are cut into ``num_agents`` contiguous near-equal
    blocks (agent 0 gets the first block, so each agent holds a contiguous label
    range). The rest is shuffled and dealt into near-equal IID pieces, handed out in
    reverse so the larger IID pieces go to the agents with the smaller sorted blocks:
    agent totals differ by at most 1. ``skew=0`` is the IID split, ``skew=1`` fully sorted.
    """
    labels = _integer_class_labels(labels, "skew")
    num_classes = int(labels.max()) + 1 if labels.size else 0
    class_members = [rng.permutation(np.flatnonzero(labels == c)) for c in range(num_classes)]
    cuts = [round(skew * len(members)) for members in class_members]
    empty = np.empty(0, dtype=np.int64)
    # classes are concatenated in label order, so the sampled part is already sorted by label
    sampled = np.concatenate([m[:k] for m, k in zip(class_members, cuts)] + [empty])
    rest = rng.permutation(np.concatenate([m[k:] for m, k in zip(class_members, cuts)] + [empty]))
    sorted_parts = np.array_split(sampled, num_agents)  # the first (len mod n) blocks are 1 longer
    iid_parts = np.array_split(rest, num_agents)[::-1]  # ... so the longer IID pieces go to the last agents
    return list(sorted_parts), list(iid_parts)


@register_partition("skew")
def _skew_partition(labels: np.ndarray, num_agents: int, cfg: Mapping[str, Any], rng: np.random.Generator) -> list[np.ndarray]:
    """Data-skew split with ``skew`` in [0, 1] (default 0.8); shard sizes differ by at most 1."""
    sorted_parts, iid_parts = skew_split(labels, num_agents, _skew_option(cfg), rng)
    return [np.concatenate([s, r]) for s, r in zip(sorted_parts, iid_parts)]


@register_partition("shards")
def _shards_partition(labels: np.ndarray, num_agents: int, cfg: Mapping[str, Any], rng: np.random.Generator) -> list[np.ndarray]:
    """Each agent gets `shards_per_agent` label-sorted shards (see label_skew.py)."""
    return shards_partition(_integer_class_labels(labels, "shards"), num_agents, cfg, rng)


@register_partition("dirichlet")
def _dirichlet_partition(labels: np.ndarray, num_agents: int, cfg: Mapping[str, Any], rng: np.random.Generator) -> list[np.ndarray]:
    """Per-class agent shares drawn from Dirichlet(`alpha`) (see label_skew.py)."""
    return dirichlet_partition(_integer_class_labels(labels, "dirichlet"), num_agents, cfg, rng)


def partition_indices(labels: np.ndarray, num_agents: int, cfg: Mapping[str, Any], seed: int) -> list[np.ndarray]:
    """Split train indices ``0..len(labels)-1`` among ``num_agents`` agents.

    Returns one sorted int64 index array per agent; the arrays are disjoint.
    ``cfg["name"]`` picks a registered partitioner: ``iid``, ``class``, ``skew``, ``shards``, ``dirichlet``, .... Raises DataError for unknown
    names, bad labels, or when any agent would end up with no samples.
    """
    labels = np.asarray(labels)
    name = cfg.get("name")
    if name is None:
        raise DataError(f"partition.name is missing: a partition config names its partition; known: {', '.join(PARTITIONS.names())}")
    partitioner = PARTITIONS.get(name)
    if isinstance(num_agents, bool) or not isinstance(num_agents, (int, np.integer)) or num_agents < 1:
        raise DataError(f"num_agents must be a positive integer, got {num_agents!r}")
    if labels.ndim != 1:
        raise DataError(f"labels must be a 1-D array, got shape {labels.shape}")
    rng = np.random.default_rng(seed)
    try:
        shards = partitioner(labels, int(num_agents), cfg, rng)
    except DataError:
        raise
    except Exception as error:  # a plugin's bug: named with its type and line, not a bare traceback
        raise DataError(f"partition={name}: the partitioner {origin(partitioner)} raised {failure(error)}") from error
    shards = _checked_shards(shards, str(name), len(labels), int(num_agents))
    empty = [agent for agent, shard in enumerate(shards) if len(shard) == 0]
    if empty:
        raise DataError(
            f"more agents than the partition can serve: {name} partition of {len(labels)} samples "
            f"among {num_agents} agents leaves agents {empty} with no data"
        )
    return [np.sort(shard).astype(np.int64) for shard in shards]


def _checked_shards(shards: Any, name: str, num_samples: int, num_agents: int) -> list[np.ndarray]:
    """A partitioner's return value as index arrays; a DataError unless it is `num_agents` disjoint 1-D integer
    arrays (or sequences) of indices in [0, num_samples)."""
    where = f"partition={name}"
    if not isinstance(shards, (list, tuple)):
        got = f"one array of shape {tuple(shards.shape)}" if hasattr(shards, "shape") else f"a {type(shards).__qualname__}"
        raise DataError(f"{where} returned {got}; a partitioner returns a list of {num_agents} index arrays, one per agent")
    if len(shards) != num_agents:
        raise DataError(f"{where} returned {len(shards)} shards for agents={num_agents}; it must return one per agent")
    arrays = []
    for agent, shard in enumerate(shards):
        array = np.asarray(shard)
        if array.ndim != 1:
            raise DataError(f"{where}: the shard of agent {agent} has shape {array.shape}; each shard is a 1-D array of train-set indices")
        if array.size and not np.issubdtype(array.dtype, np.integer):
            raise DataError(f"{where}: the shard of agent {agent} holds {array.dtype} values; train-set indices are integers")
        if array.size and (array.min() < 0 or array.max() >= num_samples):
            raise DataError(f"{where}: the shard of agent {agent} holds index {array.min() if array.min() < 0 else array.max()}, "
                            f"outside [0, {num_samples}) (the train set has {num_samples} samples)")
        arrays.append(array)
    counts = np.bincount(np.concatenate([a for a in arrays if a.size] + [np.empty(0, dtype=np.int64)]), minlength=num_samples)
    shared = np.flatnonzero(counts > 1)
    if shared.size:
        sample = int(shared[0])
        owners = [agent for agent, array in enumerate(arrays) if (array == sample).any()]
        twice = f"gives sample {sample} to agents {owners}" if len(owners) > 1 else f"gives sample {sample} twice to agent {owners[0]}"
        raise DataError(f"{where} {twice} ({shared.size} samples more than once); the shards must be disjoint")
    return arrays


def partition_in_parent(labels: np.ndarray, num_agents: int, cfg: Mapping[str, Any], seed: int) -> list[np.ndarray]:
    """`partition_indices`, twice: a partitioner whose shards differ between equal seeds (it draws from
    np.random, not from its `rng`) would give every agent a different split from the one checked here."""
    shards = partition_indices(labels, num_agents, cfg, seed)
    again = partition_indices(labels, num_agents, cfg, seed)
    if any(not np.array_equal(a, b) for a, b in zip(shards, again)):
        raise DataError(f"partition {cfg.get('name')!r} must draw its randomness from the rng it is given: two calls "
                        f"with seed={seed} gave different shards, so the agents would not get the shards checked here")
    return shards


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
