"""Local SGD: each agent steps alone on its shard, optionally averaging every H steps."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch

from cgatrain.algorithms.base import Algorithm, register
from cgatrain.option_checks import integer, run_length

AVERAGE_WITH = ("allreduce", "gossip")


@register
class LocalSGD(Algorithm):
    """v = beta v - alpha g ; x = x + v on each agent's own shard.

    With `average_every` H (the NGO paper's local SGD baseline, section 5.4; Stich 2018), after
    every H-th step the agents average their models: exactly, x_j <- 1/n sum_l x_l (`allreduce`),
    or by one gossip step with the topology's weights, x_j <- sum_l pi_jl x_l (`gossip`; H = 1 is
    gossip SGD). Momentum buffers stay local. Without H there is no communication at all (the
    lower baseline).
    """

    name = "local"
    rounds = ("average",)
    mixing = "none"
    hyperparameters: ClassVar[dict[str, Any]] = {"momentum": 0.9, "average_every": None, "average_with": "allreduce"}

    @classmethod
    def check_hyperparameters(cls, hparams: Mapping[str, Any]) -> None:
        super().check_hyperparameters(hparams)
        merged = {**cls.hyperparameters, **hparams}
        integer(merged["average_every"], "algorithm.average_every", 1, allow_none=True, meaning=" (H, steps between averages; null: never)")
        if merged["average_with"] not in AVERAGE_WITH:
            raise ValueError(f"algorithm.average_with must be one of {AVERAGE_WITH}, not {merged['average_with']!r}")

    @classmethod
    def check_run_length(cls, hparams: Mapping[str, Any], total_steps: int, steps_per_epoch: int) -> None:
        """Refuse `average_every` longer than the run of `total_steps` steps: it would never average.

        For the parent, before any process starts (it knows the steps per epoch once the data is partitioned);
        `finish` repeats it on every agent, so that a run started without that check fails instead of completing.
        """
        every = {**cls.hyperparameters, **hparams}["average_every"]
        if every is not None and int(every) > total_steps:
            raise ValueError(f"algorithm=local would never average: algorithm.average_every={every} is longer than the run's "
                             f"{run_length(total_steps, steps_per_epoch)}; lower it, raise train.epochs, or set it to null "
                             "for local SGD without communication")

    def finish(self, step: int, epoch: int) -> None:
        self.check_run_length(self.hparams, step, int(self.ctx.steps_per_epoch))

    @classmethod
    def topology_role(cls, hparams: Mapping[str, Any]) -> str | None:
        merged = {**cls.hyperparameters, **hparams}
        if merged["average_every"] is None:
            return "no communication at all"
        return None if merged["average_with"] == "gossip" else f"models averaged by all-reduce every {merged['average_every']} steps"

    @classmethod
    def required_mixing(cls, hparams: Mapping[str, Any]) -> str:
        merged = {**cls.hyperparameters, **hparams}
        # Gossip averaging must keep the mean of the models, as D-PSGD's does.
        return "doubly" if merged["average_every"] is not None and merged["average_with"] == "gossip" else "none"

    def step(self, lr: float, step: int, epoch: int) -> torch.Tensor:
        ctx = self.ctx
        loss = ctx.objective.self_gradient()
        self.momentum.apply(ctx.model.params, ctx.model.grad, lr)
        if self._averages_at(step):
            self._average(step, epoch)
        return loss

    def _averages_at(self, step: int) -> bool:
        every = self.hparams["average_every"]
        return every is not None and (step + 1) % int(every) == 0

    def mix_buffers(self, buffers: torch.Tensor, step: int, epoch: int) -> None:
        """At the averaging steps the buffers are averaged as the models are (all-reduce or one gossip step)."""
        if not self._averages_at(step):
            return
        if self.hparams["average_with"] == "allreduce":
            self.ctx.exchange.all_reduce_mean("buffers", buffers)
        else:
            self.gossip_buffers(buffers, step, epoch)

    def _average(self, step: int, epoch: int) -> None:
        params = self.ctx.model.params
        if self.hparams["average_with"] == "allreduce":
            self.ctx.exchange.all_reduce_mean("average", params)
            return
        in_neighbors, out_neighbors = self.neighbors(step, epoch)
        received = self.ctx.exchange.gossip("average", params, out_neighbors, in_neighbors)
        params.copy_(self.mix(received, step, epoch))
