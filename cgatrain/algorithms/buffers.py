"""What happens to BatchNorm running statistics (a model's floating buffers) in decentralized training.

`model.buffers=local`: every agent keeps statistics of its own data; only parameters are mixed.
`model.buffers=average`: whenever an algorithm mixes parameters, the buffers are mixed the same way,
in a round of their own ("buffers") after the step, by the algorithm's `mix_buffers` (algorithms/base.py):
matrix-gossip algorithms average them over the agent and that step's in-neighbours with the step's
mixing row (uniformly when the row is not stochastic, as for push-sum), and algorithms that mix
otherwise override it (centralized, fedavg, swarmsgd, local with `average_every`, ngo).

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
        if self.active:
            self.algorithm.mix_buffers(self.buffers, step, epoch)


def average_buffers(buffers: torch.Tensor, world_size: int) -> torch.Tensor:
    """The mean of every agent's buffers (a collective: every agent calls it)."""
    average = buffers.detach().clone()
    if average.numel():
        dist.all_reduce(average)
        average.div_(world_size)
    return average
