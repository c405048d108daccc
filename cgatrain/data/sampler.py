"""Per-agent mini-batch sampling that is reproducible from (seed, agent, epoch) alone."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from cgatrain.data.common import DataError


class AgentSampler:
    """Draws an agent's mini-batches from its shard of train indices.

    Each epoch starts from ``default_rng([seed, agent, epoch])`` and walks
    through consecutive fresh permutations ("passes") of the shard, so a run
    resumed at any epoch sees exactly the same batches, no sample repeats
    within a pass, and no batch contains a sample twice.
    """

    def __init__(self, indices: np.ndarray, batch_size: int, seed: int, agent: int) -> None:
        """Keep the shard (global train indices) and the keys of the random stream."""
        self.indices = np.asarray(indices, dtype=np.int64)
        if self.indices.ndim != 1 or len(self.indices) == 0:
            raise DataError(f"agent {agent}: sampler needs a non-empty 1-D index array")
        if batch_size < 1:
            raise DataError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.agent = int(agent)

    @property
    def effective_batch_size(self) -> int:
        """Batch size actually used: the whole shard when it is smaller than batch_size."""
        return min(self.batch_size, len(self.indices))

    def epoch_batches(self, epoch: int, steps: int) -> list[np.ndarray]:
        """Return ``steps`` batches (arrays of train indices) for ``epoch``."""
        if steps < 0:
            raise DataError(f"steps must be >= 0, got {steps}")
        rng = np.random.default_rng([self.seed, self.agent, int(epoch)])
        batch_size = self.effective_batch_size
        batches: list[np.ndarray] = []
        current_pass = rng.permutation(self.indices)
        position = 0
        for _ in range(steps):
            remaining = len(current_pass) - position
            if remaining >= batch_size:
                batches.append(current_pass[position : position + batch_size])
                position += batch_size
                continue
            # the pass ends mid-batch: finish it, then top up from a fresh pass
            head = current_pass[position:]
            next_pass = rng.permutation(self.indices)
            # put samples already in this batch last so the top-up cannot duplicate them
            already_used = np.isin(next_pass, head)
            next_pass = np.concatenate([next_pass[~already_used], next_pass[already_used]])
            needed = batch_size - len(head)
            batches.append(np.concatenate([head, next_pass[:needed]]))
            current_pass, position = next_pass, needed
        return batches


def steps_per_epoch(shard_sizes: Sequence[int], batch_size: int) -> int:
    """Steps per epoch: ceil(largest shard / batch_size), so every agent covers its whole shard."""
    if len(shard_sizes) == 0 or min(shard_sizes) < 1:
        raise DataError(f"every shard must be non-empty, got sizes {list(shard_sizes)}")
    if batch_size < 1:
        raise DataError(f"batch_size must be >= 1, got {batch_size}")
    return math.ceil(max(shard_sizes) / batch_size)
