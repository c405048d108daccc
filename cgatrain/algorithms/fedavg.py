"""FedAvg (McMahan et al. 2017) as the CDSGD paper runs it (section 5.1, E = 1 and C = 1)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import torch
import torch.distributed as dist

from cgatrain.algorithms.base import Algorithm, register
from cgatrain.option_checks import integer, number, run_length

# Mixed into the shared seed so that client draws never coincide with another shared-seed stream.
_SELECTION_STREAM = 0xFEDA


def clients_per_round(client_fraction: float, agents: int) -> int:
    """m = max(floor(C n), 1), as in McMahan et al.'s FedAvg."""
    return max(math.floor(client_fraction * agents + 1e-9), 1)


def chosen_clients(seed: int, round_index: int, client_fraction: float, agents: int) -> list[int]:
    """The clients of one round: a draw every agent makes identically from (seed, round)."""
    count = clients_per_round(client_fraction, agents)
    if count == agents:
        return list(range(agents))
    rng = np.random.default_rng([int(seed), _SELECTION_STREAM, int(round_index)])
    return sorted(int(agent) for agent in rng.choice(agents, size=count, replace=False))


@register
class FedAvg(Algorithm):
    """Federated averaging with the server as a role played over an all-reduce.

    A round is R = `local_steps` training steps (default: `local_epochs` x steps per epoch). At its
    start m = max(floor(C n), 1) clients are drawn from the run's seed, identically on every agent.
    Each chosen client k starts from the global model x and runs R steps of plain SGD on its shard,
    x_k <- x_k - alpha g_k(x_k); the others hold x. At the round's end the server's model is
    x <- sum_k n_k x_k / sum_k n_k over the chosen clients (n_k: shard size), and every agent holds
    it. Traffic is counted as a server moves it: each chosen client sends one model, every agent
    receives one. Rounds run on the global step count, so a round may span epochs; metrics score the
    latest global model, and a checkpoint taken mid-round resumes the clients' local models exactly.
    """

    name = "fedavg"
    rounds = ("server_average",)
    mixing = "none"
    hyperparameters: ClassVar[dict[str, Any]] = {"client_fraction": 1.0, "local_epochs": 1, "local_steps": None}

    @classmethod
    def topology_role(cls, hparams: Mapping[str, Any]) -> str | None:
        return "a server averages the chosen clients' models each round"

    @classmethod
    def check_hyperparameters(cls, hparams: Mapping[str, Any]) -> None:
        super().check_hyperparameters(hparams)
        merged = {**cls.hyperparameters, **hparams}
        fraction = number(merged["client_fraction"], "algorithm.client_fraction")
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"algorithm.client_fraction must lie in (0, 1], got {merged['client_fraction']!r}")
        integer(merged["local_epochs"], "algorithm.local_epochs", 1, meaning=" (E, epochs per round)")
        integer(merged["local_steps"], "algorithm.local_steps", 1, allow_none=True, meaning=" (steps per round, instead of E epochs)")

    @classmethod
    def check_run_length(cls, hparams: Mapping[str, Any], total_steps: int, steps_per_epoch: int) -> None:
        """Refuse a round longer than the run of `total_steps` steps: it would never average.

        For the parent, before any process starts (it knows the steps per epoch once the data is partitioned);
        `finish` repeats it on every agent, so that a run started without that check fails instead of completing.
        """
        merged = {**cls.hyperparameters, **hparams}
        if merged["local_steps"] is not None:
            length, keys = int(merged["local_steps"]), f"algorithm.local_steps={merged['local_steps']}"
        else:
            length = int(merged["local_epochs"]) * steps_per_epoch
            keys = f"algorithm.local_epochs={merged['local_epochs']} x {steps_per_epoch} steps per epoch"
        if length > total_steps:
            raise ValueError(f"algorithm=fedavg would never average: a round is {length} steps ({keys}), longer than the run's "
                             f"{run_length(total_steps, steps_per_epoch)}; shorten the round or raise train.epochs")

    def finish(self, step: int, epoch: int) -> None:
        self.check_run_length(self.hparams, step, int(self.ctx.steps_per_epoch))

    @property
    def round_length(self) -> int:
        """R: training steps per round."""
        steps = self.hparams["local_steps"]
        return int(steps) if steps is not None else int(self.hparams["local_epochs"]) * max(int(self.ctx.steps_per_epoch), 1)

    def setup(self) -> None:
        # The server's initial model, which every client downloads before the first round.
        dist.broadcast(self.ctx.model.params, src=0)
        super().setup()
        self.state["global_model"] = self.ctx.model.params.detach().clone()
        # Completed rounds and the total of chosen clients over them (for the server's byte count).
        self.state["round_counters"] = torch.zeros(2, dtype=torch.float64)
        self._chosen: tuple[int, list[int]] | None = None

    def clients(self, round_index: int) -> list[int]:
        """The chosen clients of `round_index` (drawn once per round, also after a resume)."""
        if self._chosen is None or self._chosen[0] != round_index:
            chosen = chosen_clients(self.ctx.seed, round_index, float(self.hparams["client_fraction"]), self.ctx.world_size)
            self._chosen = (round_index, chosen)
        return self._chosen[1]

    def step(self, lr: float, step: int, epoch: int) -> torch.Tensor:
        ctx = self.ctx
        round_index, position = divmod(step, self.round_length)
        if ctx.rank in self.clients(round_index):
            loss = ctx.objective.self_gradient()
            ctx.model.params.add_(ctx.model.grad, alpha=-lr)
        else:
            loss = ctx.objective.loss()  # an idle agent reports the global model's loss on its batch
        if position == self.round_length - 1:
            self._aggregate(round_index)
        return loss

    def _aggregate(self, round_index: int) -> None:
        """x <- sum_k n_k x_k / sum_k n_k over the chosen clients; every agent takes x."""
        chosen = self.clients(round_index)
        self._server_average("server_average", self.ctx.model.params, chosen)
        self.state["global_model"].copy_(self.ctx.model.params)
        self.state["round_counters"] += self.state["round_counters"].new_tensor([1.0, float(len(chosen))])

    def _server_average(self, name: str, tensor: torch.Tensor, chosen: list[int]) -> None:
        """tensor <- sum_k n_k tensor_k / sum_k n_k over the chosen clients, in place on every agent."""
        ctx = self.ctx
        weight = float(ctx.samples) if ctx.rank in chosen else 0.0
        weighted = torch.cat([tensor * weight, tensor.new_full((1,), weight)])
        size = tensor.numel() * tensor.element_size()
        ctx.exchange.all_reduce_sum(name, weighted, size if weight else 0, size)
        torch.div(weighted[:-1], weighted[-1], out=tensor)

    def mix_buffers(self, buffers: torch.Tensor, step: int, epoch: int) -> None:
        """At a round's end the server averages the chosen clients' buffers as it does their models."""
        round_index, position = divmod(step, self.round_length)
        if position == self.round_length - 1:
            self._server_average("buffers", buffers, self.clients(round_index))

    def evaluated_params(self) -> torch.Tensor:
        return self.state["global_model"]

    def epoch_metrics(self) -> dict[str, float]:
        """Rounds so far, and the server's traffic so far (identical on every agent)."""
        rounds, uploads = (float(value) for value in self.state["round_counters"])
        model_mb = self.ctx.model.params.numel() * self.ctx.model.params.element_size() / 1e6
        return {"fedavg_rounds": rounds, "server_mb_received": uploads * model_mb, "server_mb_sent": rounds * self.ctx.world_size * model_mb}
