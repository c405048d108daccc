"""Label-skewed partitions: k label shards per agent (McMahan et al.) and Dirichlet class proportions
(Hsu et al.; the NGO paper's non-IID TinyImageNet split), plus the per-agent class-count table."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from cgatrain.data.common import DataError, float_option, int_option


def shards_partition(labels: np.ndarray, num_agents: int, cfg: Mapping[str, Any], rng: np.random.Generator) -> list[np.ndarray]:
    """Sort by label, cut into ``num_agents * shards_per_agent`` equal shards, deal each agent k at random."""
    per_agent = int_option(cfg, "shards_per_agent", 2, minimum=1)
    assert per_agent is not None
    total = num_agents * per_agent
    if total > len(labels):
        raise DataError(f"partition=shards: {num_agents} agents x shards_per_agent={per_agent} = {total} shards, but only {len(labels)} samples")
    # stable sort after a shuffle: shards are label-pure where possible, random within a label
    shuffled = rng.permutation(len(labels))
    by_label = shuffled[np.argsort(labels[shuffled], kind="stable")]
    pieces = np.array_split(by_label, total)
    order = rng.permutation(total)
    return [np.concatenate([pieces[s] for s in order[a * per_agent : (a + 1) * per_agent]]) for a in range(num_agents)]


def dirichlet_partition(labels: np.ndarray, num_agents: int, cfg: Mapping[str, Any], rng: np.random.Generator) -> list[np.ndarray]:
    """Each class is split among agents in proportions p ~ Dir(alpha); redrawn until every shard has min_size."""
    alpha = float_option(cfg, "alpha", 0.5)
    min_size = int_option(cfg, "min_size", 10, minimum=1)
    tries = int_option(cfg, "max_tries", 100, minimum=1)
    assert min_size is not None and tries is not None
    if not alpha > 0:
        raise DataError(f"partition.alpha must be > 0, got {alpha}")
    if num_agents * min_size > len(labels):
        raise DataError(f"partition=dirichlet: {num_agents} agents x min_size={min_size} exceeds the {len(labels)} train samples")
    classes = [rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)]
    smallest = 0
    for _ in range(tries):
        parts: list[list[np.ndarray]] = [[] for _ in range(num_agents)]
        for members in classes:
            cuts = (np.cumsum(rng.dirichlet(np.full(num_agents, alpha))) * len(members)).astype(int)[:-1]
            for agent, piece in enumerate(np.split(members, cuts)):
                parts[agent].append(piece)
        shards = [np.concatenate(p) for p in parts]
        smallest = min(len(s) for s in shards)
        if smallest >= min_size:
            return shards
    raise DataError(
        f"partition=dirichlet: no draw in max_tries={tries} gave every one of {num_agents} agents at least "
        f"min_size={min_size} samples (alpha={alpha}, last smallest shard {smallest}); raise partition.alpha or lower partition.min_size"
    )


def class_counts(labels: np.ndarray, shards: Sequence[np.ndarray], num_classes: int) -> np.ndarray:
    """(agents, classes) table: how many samples of each class every agent holds."""
    return np.stack([np.bincount(labels[shard], minlength=num_classes)[:num_classes] for shard in shards])


def format_class_counts(counts: np.ndarray, max_columns: int = 20) -> str:
    """The table as text; with many classes, a per-agent summary instead of one column per class."""
    agents, classes = counts.shape
    if classes <= max_columns:
        header = "agent " + " ".join(f"{c:>6}" for c in range(classes)) + "   total"
        rows = [f"{a:>5} " + " ".join(f"{n:>6}" for n in counts[a]) + f" {counts[a].sum():>7}" for a in range(agents)]
    else:
        header = "agent  classes held  largest class  total"
        rows = [f"{a:>5} {int((counts[a] > 0).sum()):>13} {int(counts[a].max()):>14} {int(counts[a].sum()):>6}" for a in range(agents)]
    return "\n".join(["samples per class and agent:", header, *rows])
