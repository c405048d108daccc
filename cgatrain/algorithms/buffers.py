"""What happens to BatchNorm running statistics (a model's floating buffers) in decentralized training.

`model.buffers=local`: every agent keeps statistics of its own data; only parameters are mixed.
`model.buffers=average`: whenever an algorithm mixes parameters, the buffers are mixed too, in a
round of their own ("buffers") after the step: gossip algorithms average them over the agent and its
in-neighbours of that step (with the step's mixing row when it is row-stochastic, else uniformly),
`centralized` all-reduces them, and algorithms that never mix (`local`) leave them alone. An algorithm
that mixes only at some steps says so with a `mixes_at(step, epoch) -> bool` method.

The consensus (averaged) model is always evaluated with the average of all agents' buffers.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from cgatrain.algorithms.base import Algorithm
from cgatrain.models.norm import check_buffer_mode


class BufferMixer:
    """The post-step hook that applies `model.buffers` to one agent's buffers."""

    def __init__(self, algorithm: Algorithm, mode: str) -> None:
        check_buffer_mode(mode)
        self.algorithm, self.mode = algorithm, mode
        self.buffers = algorithm.ctx.model.buffers
        self.active = mode == "average" and self.buffers.numel() > 0

    def after_step(self, step: int, epoch: int) -> None:
        """Mix the buffers the way this step mixed the parameters."""
        if not self.active:
            return
        algorithm, ctx = self.algorithm, self.algorithm.ctx
        mixes_at = getattr(algorithm, "mixes_at", None)
        if mixes_at is not None and not mixes_at(step, epoch):
            return
        if algorithm.name == "centralized":
            ctx.exchange.all_reduce_mean("buffers", self.buffers)
            return
        if algorithm.mixing == "none":
            return
        in_neighbors, out_neighbors = algorithm.neighbors(step, epoch)
        received = ctx.exchange.gossip("buffers", self.buffers, out_neighbors, in_neighbors)
        row = ctx.topology.mixing_matrix(step, epoch)[ctx.rank]
        members = [ctx.rank, *received]
        weights = [float(row[peer]) for peer in members]
        if abs(sum(weights) - 1.0) > 1e-6:  # column-stochastic (push-sum) rows do not average
            weights = [1.0 / len(members)] * len(members)
        mixed = self.buffers * weights[0]
        for peer, weight in zip(received, weights[1:]):
            mixed.add_(received[peer], alpha=weight)
        self.buffers.copy_(mixed)


def average_buffers(buffers: torch.Tensor, world_size: int) -> torch.Tensor:
    """The mean of every agent's buffers (a collective: every agent calls it)."""
    average = buffers.detach().clone()
    if average.numel():
        dist.all_reduce(average)
        average.div_(world_size)
    return average
