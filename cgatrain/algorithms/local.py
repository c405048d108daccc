"""Local SGD with no communication at all: the lower baseline."""

from __future__ import annotations

from cgatrain.algorithms.base import Algorithm, register


@register
class LocalSGD(Algorithm):
    """v = beta v - alpha g ; x = x + v, each agent alone on its own shard."""

    name = "local"
    rounds = ()
    mixing = "none"
    hyperparameters = {"momentum": 0.9}

    def step(self, lr: float, step: int, epoch: int) -> float:
        ctx = self.ctx
        loss = ctx.objective.self_gradient()
        ctx.model.params.add_(self.heavy_ball(ctx.model.grad, lr))
        return loss
