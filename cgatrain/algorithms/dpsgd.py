"""D-PSGD (Lian et al., 2017): gossip the models, step along the self-gradient."""

from __future__ import annotations

from cgatrain.algorithms.base import Algorithm, register


@register
class DPSGD(Algorithm):
    """x_j <- sum_l pi_jl x_l - alpha g_j(x_j); the gossip round overlaps the gradient."""

    name = "dpsgd"
    rounds = ("model",)
    mixing = "doubly"
    hyperparameters: dict = {}

    def step(self, lr: float, step: int, epoch: int) -> float:
        ctx = self.ctx
        in_neighbors, out_neighbors = self.neighbors(step, epoch)
        pending, received = ctx.exchange.post_gossip("model", ctx.model.params, out_neighbors, in_neighbors)
        loss = ctx.objective.self_gradient()
        pending.wait()
        mixed = self.mix(received, step, epoch)
        # Lian et al. 2017, Algorithm 1: X_{k+1} = X_k W - gamma G(X_k).
        ctx.model.params.copy_(mixed).add_(ctx.model.grad, alpha=-lr)
        return loss
