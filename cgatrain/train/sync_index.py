"""The NGO paper's synchronization index, sampled every `train.consensus_every` steps.

The index 1/n sum_i ||x_i - x_bar||^2 is cgatrain's consensus distance (train/metrics.py); the paper's
Theorem 2.4 writes V(t) without the 1/n. Samples go into the epoch's metrics row as
`consensus_distance_by_step: [[step, value], ...]` (the step counts completed steps), so the paper's
consensus curves (its figures 3, 5 and 6) can be drawn from metrics.jsonl.
"""

from __future__ import annotations

import torch

from cgatrain.train import metrics


class SyncIndex:
    """Collects (step, consensus distance) every `every` steps; `every=None` or 0 turns it off."""

    def __init__(self, every: int | None, world_size: int) -> None:
        self.every, self.world_size = int(every or 0), world_size
        self.samples: list[list[float]] = []

    def after_step(self, steps_done: int, params: torch.Tensor) -> None:
        """Sample after `steps_done` steps (every agent calls this: the index is a collective)."""
        if self.every and steps_done % self.every == 0:
            _, distance, _ = metrics.consensus(params, self.world_size)
            self.samples.append([steps_done, distance])

    def drain(self) -> dict[str, list[list[float]]]:
        """This epoch's samples for the metrics row (empty when off)."""
        samples, self.samples = self.samples, []
        return {"consensus_distance_by_step": samples} if self.every else {}
