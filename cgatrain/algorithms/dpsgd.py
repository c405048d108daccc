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
        loss, received = self.gradient_while_gossiping(step, epoch)
        mixed = self.mix(received, step, epoch)
        # Lian et al. 2017, Algorithm 1: X_{k+1} = X_k W - gamma G(X_k).
        ctx.model.params.copy_(mixed).add_(ctx.model.grad, alpha=-lr)
        return loss
