"""Centralized SGD: gradients averaged over all agents by all-reduce (the parameter-server upper line)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.distributed as dist

from cgatrain.algorithms.base import Algorithm, register


@register
class Centralized(Algorithm):
    """v = beta v - alpha mean_j g_j ; x = x + v on identical replicas."""

    name = "centralized"
    rounds = ("grad_allreduce",)
    mixing = "none"
    hyperparameters = {"momentum": 0.9}

    @classmethod
    def topology_role(cls, hparams: Mapping[str, Any]) -> str | None:
        return "gradients averaged by all-reduce every step"

    def setup(self) -> None:
        # Replicas must start equal even when agents drew different initial models.
        dist.broadcast(self.ctx.model.params, src=0)
        super().setup()

    def step(self, lr: float, step: int, epoch: int) -> torch.Tensor:
        ctx = self.ctx
        loss = ctx.objective.self_gradient()
        ctx.exchange.all_reduce_mean("grad_allreduce", ctx.model.grad)
        self.momentum.apply(ctx.model.params, ctx.model.grad, lr)
        return loss

    def mix_buffers(self, buffers: torch.Tensor, step: int, epoch: int) -> None:
        """Replicas share one model, so every step all-reduces the buffers to their mean."""
        self.ctx.exchange.all_reduce_mean("buffers", buffers)
