"""Push-sum methods for directed, time-varying graphs: SGP, Sparse-Push and SCSP.

Every agent keeps a numerator x and a push-sum weight u (starting at 1), mixes both with the same
column-stochastic weights, and trains the de-biased model z = x / u, which is what the module holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from cgatrain.algorithms.base import Algorithm, register
from cgatrain.algorithms.momentum import Momentum
from cgatrain.option_checks import flag, integer, number


class PushSum(Algorithm):
    """Shared state of the push-sum family: numerator x, weight u, de-biased z in the model."""

    mixing = "column"

    def setup(self) -> None:
        super().setup()
        self.state["numerator"] = self.ctx.model.params.detach().clone()
        self.state["push_sum_weight"] = torch.ones(1, dtype=self.ctx.model.params.dtype, device=self.ctx.model.params.device)

    def debias(self) -> None:
        """z = x / u into the model's parameters."""
        torch.div(self.state["numerator"], self.state["push_sum_weight"], out=self.ctx.model.params)

    def push(self, name: str, numerator: torch.Tensor, step: int, epoch: int) -> None:
        """x_i <- sum_j W_ij x_j and u_i <- sum_j W_ij u_j, one message [x, u] per out-neighbour."""
        in_neighbors, out_neighbors = self.neighbors(step, epoch)
        message = torch.cat([numerator, self.state["push_sum_weight"]])
        received = self.ctx.exchange.gossip(name, message, out_neighbors, in_neighbors)
        self.dense_bytes_sent += len(out_neighbors) * message.numel() * message.element_size()
        weights = self.ctx.topology.mixing_matrix(step, epoch)[self.ctx.rank]
        mixed = message * float(weights[self.ctx.rank])
        for peer, tensor in received.items():
            mixed.add_(tensor, alpha=float(weights[peer]))
        self.state["numerator"].copy_(mixed[:-1])
        self.state["push_sum_weight"].copy_(mixed[-1:])


@register
class SGP(PushSum):
    """Stochastic Gradient Push (Assran et al. 2019): local step on x at z, then push-sum gossip.

    With momentum (their Nesterov form): m = beta m + g, x <- x - lr (beta m + g).
    """

    name = "sgp"
    rounds = ("push",)
    hyperparameters = {"momentum": 0.9, "nesterov": True}

    @classmethod
    def check_hyperparameters(cls, hparams: Mapping[str, Any]) -> None:
        super().check_hyperparameters(hparams)
        flag({**cls.hyperparameters, **hparams}["nesterov"], "algorithm.nesterov")

    def build_momentum(self) -> Momentum:
        return Momentum(float(self.hparams["momentum"]), nesterov=bool(self.hparams["nesterov"]), buffer="gradient")

    def step(self, lr: float, step: int, epoch: int) -> torch.Tensor:
        ctx = self.ctx
        loss = ctx.objective.self_gradient()
        numerator = self.state["numerator"]
        self.momentum.apply(numerator, ctx.model.grad, lr)
        self.push("push", numerator, step, epoch)
        self.debias()
        return loss


@register
class SparsePush(PushSum):
    """Sparse-Push (Aketi et al.), Algorithm 1, with error-compensated compression C.

    x_hat = x - gamma g(z); v = x_hat + delta; delta = v - C[v]; send C[v] and u;
    x <- x_hat + eta sum_j (W_ij - I_ij) C[v_j]; u <- u + eta sum_j (W_ij - I_ij) u_j; z = x / u.
    """

    name = "sparse_push"
    rounds = ("push_compressed",)
    uses_compressor = True
    default_compressor = "topk"
    hyperparameters = {"eta": 0.01, "momentum": 0.9}

    @classmethod
    def check_hyperparameters(cls, hparams: Mapping[str, Any]) -> None:
        super().check_hyperparameters(hparams)
        eta = number({**cls.hyperparameters, **hparams}["eta"], "algorithm.eta")
        if not 0.0 < eta <= 1.0:
            raise ValueError(f"algorithm.eta (the averaging rate) must lie in (0, 1], got {eta}")

    def setup(self) -> None:
        super().setup()
        self.compressor = self.build_compressor()
        self.state["error"] = torch.zeros_like(self.ctx.model.params)

    def step(self, lr: float, step: int, epoch: int) -> torch.Tensor:
        ctx = self.ctx
        loss = ctx.objective.self_gradient()
        x_hat = self.state["numerator"]
        self.momentum.apply(x_hat, ctx.model.grad, lr)
        self.compressed_gossip(x_hat, step, epoch)
        self.debias()
        return loss

    def compressed_gossip(self, x_hat: torch.Tensor, step: int, epoch: int) -> None:
        """Steps 5-9 of Algorithm 1 on the numerator x_hat (updated in place) and the weight u."""
        self.compressor.set_step(step)  # shared-seed compressors draw the same mask on both ends
        corrected = x_hat + self.state["error"]
        payload = self.compressor.compress(corrected)
        sent = self.compressor.decompress(payload, corrected.numel(), corrected.dtype)
        torch.sub(corrected, sent, out=self.state["error"])
        in_neighbors, out_neighbors = self.neighbors(step, epoch)
        weight = self.state["push_sum_weight"]
        sends = {peer: [*payload, weight] for peer in out_neighbors}
        buffers = {peer: [*self.compressor.payload_like(corrected.numel(), corrected.dtype, corrected.device), torch.empty_like(weight)] for peer in in_neighbors}
        self.ctx.exchange.exchange("push_compressed", sends, buffers)
        self.dense_bytes_sent += len(out_neighbors) * (corrected.numel() + 1) * corrected.element_size()
        W, eta, rank = self.ctx.topology.mixing_matrix(step, epoch), float(self.hparams["eta"]), self.ctx.rank
        own_share = float(W[rank, rank]) - 1.0
        numerator_change = sent * own_share
        weight_change = weight * own_share
        for peer, received in buffers.items():
            numerator_change.add_(self.compressor.decompress(received[:-1], corrected.numel(), corrected.dtype), alpha=float(W[rank, peer]))
            weight_change.add_(received[-1], alpha=float(W[rank, peer]))
        x_hat.add_(numerator_change, alpha=eta)
        weight.add_(weight_change, alpha=eta)


@register
class SCSP(SparsePush):
    """Skew-Compensated Sparse-Push, Algorithm 2: Sparse-Push, then k steps of uncompressed push-sum
    gossip with no gradient, x <- x + eta sum_j (W_ij - I_ij) x_j (same for u), z = x / u.

    The gossip phase runs after the last training step (T = all steps), or every `gossip_every`
    steps when that is set.
    """

    name = "scsp"
    rounds = ("push_compressed", "push")
    hyperparameters = {"eta": 0.01, "momentum": 0.9, "gossip_steps": 40, "gossip_eta": 1.0, "gossip_every": None}

    @classmethod
    def check_hyperparameters(cls, hparams: Mapping[str, Any]) -> None:
        super().check_hyperparameters(hparams)
        merged = {**cls.hyperparameters, **hparams}
        gossip_eta = number(merged["gossip_eta"], "algorithm.gossip_eta", allow_none=True)
        if gossip_eta is not None and not 0.0 < gossip_eta <= 1.0:
            raise ValueError(f"algorithm.gossip_eta must lie in (0, 1] (or be null to reuse eta), got {gossip_eta}")
        integer(merged["gossip_steps"], "algorithm.gossip_steps", 0, meaning=" (push-sum steps per gossip phase)")
        integer(merged["gossip_every"], "algorithm.gossip_every", 1, allow_none=True, meaning=" (training steps between gossip phases)")

    def step(self, lr: float, step: int, epoch: int) -> torch.Tensor:
        loss = super().step(lr, step, epoch)
        if self._gossips_after(step + 1):
            self._gossip(step + 1, epoch)
        return loss

    def _gossips_after(self, steps_done: int) -> bool:
        every = self.hparams["gossip_every"]
        return bool(every) and steps_done % int(every) == 0

    def finish(self, step: int, epoch: int) -> None:
        """The final gossip phase, unless `gossip_every` just ran one at this step.

        The pre-gossip numerator and weight are kept so that extending a finished run continues
        from where an uninterrupted longer run would be (it would not have gossiped here).
        """
        if self._gossips_after(step):
            return
        self.state["pre_gossip_numerator"] = self.state["numerator"].clone()
        self.state["pre_gossip_weight"] = self.state["push_sum_weight"].clone()
        self._gossip(step, epoch)

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        super().load_state_dict(state)
        if "pre_gossip_numerator" in self.state:
            self.state["numerator"] = self.state.pop("pre_gossip_numerator")
            self.state["push_sum_weight"] = self.state.pop("pre_gossip_weight")
            self.debias()

    def _gossip(self, step: int, epoch: int) -> None:
        """k push-sum gossip steps on the uncompressed model, no gradient (Algorithm 2, steps 4-9)."""
        # The gossip phase is uncompressed, which Table 5 pairs with eta = 1; null reuses Algorithm 1's eta.
        eta = float(self.hparams["gossip_eta"] if self.hparams["gossip_eta"] is not None else self.hparams["eta"])
        for offset in range(int(self.hparams["gossip_steps"])):
            numerator = self.state["numerator"]
            before = torch.cat([numerator, self.state["push_sum_weight"]])
            self.push("push", numerator, step + offset, epoch)
            after = torch.cat([self.state["numerator"], self.state["push_sum_weight"]])
            # x <- x + eta sum_j (W_ij - I_ij) x_j, i.e. a step of eta towards the full push-sum mix.
            mixed = before.add_(after - before, alpha=eta)
            self.state["numerator"].copy_(mixed[:-1])
            self.state["push_sum_weight"].copy_(mixed[-1:])
        self.debias()
