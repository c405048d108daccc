"""D-PSGD (Lian et al., 2017), which is also CDSGD (Jiang et al., 2017): one law, two names."""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from cgatrain.algorithms.base import Algorithm, register


@register
class DPSGD(Algorithm):
    """x_j <- sum_l pi_jl x_l - alpha g_j(x_j); the gossip round overlaps the gradient."""

    name = "dpsgd"
    rounds = ("model",)
    mixing = "doubly"
    hyperparameters: ClassVar[dict[str, Any]] = {}

    def step(self, lr: float, step: int, epoch: int) -> torch.Tensor:
        ctx = self.ctx
        loss, received = self.gradient_while_gossiping(step, epoch)
        mixed = self.mix(received, step, epoch)
        # Lian et al. 2017, Algorithm 1: X_{k+1} = X_k W - gamma G(X_k); CDSGD paper, eq. 5 / Algorithm 1.
        ctx.model.params.copy_(mixed).add_(ctx.model.grad, alpha=-lr)
        return loss


@register
class CDSGD(DPSGD):
    """CDSGD (Jiang et al., NeurIPS 2017), Algorithm 1: w_j = sum_l pi_jl x_l ; x_j = w_j - alpha g_j(x_j).

    The same update as D-PSGD, so the same code: only the name differs (for configs and records).
    """

    name = "cdsgd"
