"""DPMSGD: the CGA paper's Algorithm 1 with the self-gradient in place of the QP projection."""

from __future__ import annotations

import torch

from cgatrain.algorithms.base import Algorithm, register


@register
class DPMSGD(Algorithm):
    """w = sum_l pi_jl x_l, v = beta v - alpha g, x = w + v (Esfandiari et al. 2021, Alg. 1 without QP)."""

    name = "dpmsgd"
    rounds = ("model",)
    mixing = "doubly"
    hyperparameters = {"momentum": 0.9}

    def step(self, lr: float, step: int, epoch: int) -> torch.Tensor:
        ctx = self.ctx
        loss, received = self.gradient_while_gossiping(step, epoch)
        mixed = self.mix(received, step, epoch)
        # CGA paper, Algorithm 1: v_j = beta v_j - alpha g_j ; x_j = w_j + v_j.
        self.momentum.apply(mixed, ctx.model.grad, lr, out=ctx.model.params)
        return loss
