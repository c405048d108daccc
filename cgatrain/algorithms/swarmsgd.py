"""SwarmSGD (Nadiradze et al. 2019) as the CGA paper runs it (section 4): H local steps, then pair averages.

Every step each agent takes one local SGD step on its own minibatch (heavy-ball when
`algorithm.momentum` > 0). After every H = `algorithm.local_steps` steps a random maximal matching of
the graph's edges is drawn from the shared seed (identical on every agent, topology/per_step.py), and
every matched pair averages its two models, x_i, x_j <- (x_i + x_j) / 2; an unmatched agent keeps its
model. The CGA paper uses H = 1 on complete, ring and bipartite graphs (the original draws H from a
geometric distribution and lets one pair interact at a time; the matching lets disjoint pairs meet at once).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch

from cgatrain.algorithms.base import Algorithm, register
from cgatrain.option_checks import integer, run_length
from cgatrain.topology import Topology
from cgatrain.topology.per_step import RandomMatchings


@register
class SwarmSGD(Algorithm):
    """x_i <- x_i - alpha g_i each step; every H steps matched pairs average their models."""

    name = "swarmsgd"
    rounds = ("pair",)
    mixing = "none"  # pairs average 1/2-1/2 whatever the topology's weights
    needs_undirected = True
    undirected_because = "averages each matched pair of neighbours both ways"
    hyperparameters: ClassVar[dict[str, Any]] = {"local_steps": 1, "momentum": 0.0}

    @classmethod
    def check_hyperparameters(cls, hparams: Mapping[str, Any]) -> None:
        super().check_hyperparameters(hparams)
        integer({**cls.hyperparameters, **hparams}["local_steps"], "algorithm.local_steps", 1, meaning=" (H, local SGD steps before each pair average)")

    @classmethod
    def check_run_length(cls, hparams: Mapping[str, Any], total_steps: int, steps_per_epoch: int) -> None:
        """Refuse H longer than the run of `total_steps` steps: it would never average.

        For the parent, before any process starts (it knows the steps per epoch once the data is partitioned);
        `finish` repeats it on every agent, so that a run started without that check fails instead of completing.
        """
        steps = {**cls.hyperparameters, **hparams}["local_steps"]
        if int(steps) > total_steps:
            raise ValueError(f"algorithm=swarmsgd would never average: algorithm.local_steps={steps} (H, local steps before each "
                             f"pair average) is longer than the run's {run_length(total_steps, steps_per_epoch)}; lower it or raise train.epochs")

    def finish(self, step: int, epoch: int) -> None:
        self.check_run_length(self.hparams, step, int(self.ctx.steps_per_epoch))

    @classmethod
    def ignored_weights(cls, hparams: Mapping[str, Any]) -> str | None:
        return "matched pairs average 1/2-1/2"

    @classmethod
    def check_topology(cls, topology: Topology, hparams: Mapping[str, Any]) -> None:
        if not any(A.any() for A, _ in topology.worst_case_graphs()):
            raise ValueError(f"algorithm=swarmsgd averages models along graph edges, but the topology "
                             f"({', '.join(topology.graph_names)} on {topology.num_agents} agent(s)) has no edges")

    def setup(self) -> None:
        super().setup()
        topology = self.ctx.topology
        # Interaction r pairs agents along the graph in force at the step it happens.
        self.matchings = RandomMatchings(topology.num_agents, lambda step: topology.adjacency(step, self._epoch))
        self._epoch = 0

    def partner(self, step: int, epoch: int) -> int:
        """The agent this one averages with after `step` (-1: none), the same answer on every agent."""
        self._epoch = epoch
        return int(self.matchings.partners(step, self.ctx.topology.seed)[self.ctx.rank])

    def step(self, lr: float, step: int, epoch: int) -> torch.Tensor:
        ctx, params = self.ctx, self.ctx.model.params
        loss = ctx.objective.self_gradient()
        if float(self.hparams["momentum"]):
            params.add_(self.heavy_ball(ctx.model.grad, lr))
        else:
            params.add_(ctx.model.grad, alpha=-lr)
        if (step + 1) % int(self.hparams["local_steps"]) == 0:
            peer = self.partner(step, epoch)
            if peer >= 0:
                received = ctx.exchange.gossip("pair", params, [peer], [peer])
                params.add_(received[peer]).mul_(0.5)
        return loss

    def mix_buffers(self, buffers: torch.Tensor, step: int, epoch: int) -> None:
        """After every H-th step a matched pair averages its buffers too, b_i, b_j <- (b_i + b_j) / 2."""
        if (step + 1) % int(self.hparams["local_steps"]) == 0:
            peer = self.partner(step, epoch)
            if peer >= 0:
                received = self.ctx.exchange.gossip("buffers", buffers, [peer], [peer])
                buffers.add_(received[peer]).mul_(0.5)

