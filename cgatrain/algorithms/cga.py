"""CGA and CompCGA (Esfandiari et al., ICML 2021): cross-gradient aggregation with a QP projection."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from cgatrain.algorithms.base import Algorithm, register
from cgatrain.algorithms.cross_grad import MODES, CrossGradients
from cgatrain.algorithms.momentum import Momentum
from cgatrain.algorithms.qp import project_gradient, project_per_tensor
from cgatrain.comm.exchange import PendingRound
from cgatrain.compression import ErrorFeedback
from cgatrain.option_checks import flag, number

MOMENTUM_FORMS = ("heavy_ball", "nesterov")
QP_SCOPES = ("whole", "per_tensor")


@register
class CGA(Algorithm):
    """Algorithm 1. Per step, agent j:

    round "model": send x_j to the neighbours, receive their x_l (also used for w_j = sum_l pi_jl x_l);
    round "cross_grad": send g_lj = grad f_j(D_j; x_l) back to each owner l, receive g_jl;
    QP (eq. 5): g_tilde = G^T u* + g_jj with u* = argmin_{u >= margin} 1/2 u^T G G^T u + g^T G^T u;
    update: v = beta v - alpha g_tilde, x = w + v (paper), or the authors' Nesterov form.
    """

    name = "cga"
    rounds = ("model", "cross_grad")
    mixing = "doubly"
    needs_undirected = True  # cross-gradients go back to the agents whose models came in
    uses_compressor = False
    hyperparameters = {
        "momentum": 0.9,
        "momentum_form": "heavy_ball",  # the paper; "nesterov" is the authors' code
        "qp_scope": "whole",  # the paper: one QP on the flat gradient; "per_tensor": the authors' code
        "dual_margin": 0.0,  # the paper: u >= 0; the authors' code: u >= 0.5
        "ridge": None,  # None: automatic (see qp.project_gradient); the authors' code: 1e-12
        "scale_by_mixing": False,  # the authors' code scales g_jj by pi_jj and g_jl by pi_jl before the QP
        "cross_grad_mode": "auto",  # auto | batched (vmap) | loop
    }

    @classmethod
    def check_hyperparameters(cls, hparams: Mapping[str, Any]) -> None:
        super().check_hyperparameters(hparams)
        merged = {**cls.hyperparameters, **hparams}
        for key, allowed in (("momentum_form", MOMENTUM_FORMS), ("qp_scope", QP_SCOPES), ("cross_grad_mode", MODES)):
            if merged[key] not in allowed:
                raise ValueError(f"algorithm.{key} must be one of {allowed}, not {merged[key]!r}")
        margin = number(merged["dual_margin"], "algorithm.dual_margin")
        if not margin >= 0:
            raise ValueError(f"algorithm.dual_margin (the QP's lower bound on u) must be >= 0, got {margin}")
        ridge = number(merged["ridge"], "algorithm.ridge", allow_none=True)
        if ridge is not None and not ridge > 0:
            raise ValueError(f"algorithm.ridge must be null (automatic) or > 0, got {ridge}")
        flag(merged["scale_by_mixing"], "algorithm.scale_by_mixing")

    def setup(self) -> None:
        super().setup()
        self.cross_gradients = CrossGradients(self.ctx.objective, str(self.hparams["cross_grad_mode"]))
        self.boundaries = torch.tensor([0] + [int(s.numel()) for s in self.ctx.model.shapes]).cumsum(0).tolist()
        self.compressor = self.build_compressor() if self.uses_compressor else None
        self.error_memories: dict[str, ErrorFeedback] = {}
        self._reset_counters()

    def _reset_counters(self) -> None:
        self.steps_seen, self.steps_changed = 0, 0
        self.shift_total: torch.Tensor | float = 0.0  # a device tensor once a step has added to it

    def step(self, lr: float, step: int, epoch: int) -> torch.Tensor:
        ctx, params = self.ctx, self.ctx.model.params
        if self.compressor is not None:
            self.compressor.set_step(step)  # shared-seed compressors draw the same mask on both ends
        loss, models = self.gradient_while_gossiping(step, epoch)
        self.dense_bytes_sent += len(self.neighbors(step, epoch)[1]) * params.numel() * params.element_size()
        peers = sorted(models)
        stacked = torch.stack([models[peer] for peer in peers]) if peers else params.new_empty(0, params.numel())
        pending, received_rows = self._post_cross_gradients(self.cross_gradients.compute(stacked), peers)
        own = self._compress("self", ctx.model.grad) if self.compressor else ctx.model.grad
        mixed = self.mix(models, step, epoch)  # w_j while the cross-gradients are in flight
        pending.wait()
        direction = self._project(own, received_rows(), peers, step, epoch)
        self._update(mixed, direction, lr)
        return loss

    def _post_cross_gradients(self, computed: torch.Tensor, peers: list[int]) -> tuple[PendingRound, Callable[[], torch.Tensor]]:
        """Start sending g_lj to each owner l; after wait(), the callable gives the rows g_jl received, in `peers` order."""
        exchange = self.ctx.exchange
        if self.compressor is None:
            buffers = exchange.receive_buffers("cross_grad", self.ctx.model.grad, peers)
            pending = exchange.post("cross_grad", {peer: computed[row] for row, peer in enumerate(peers)}, buffers)
            self.dense_bytes_sent += len(peers) * computed.shape[1] * computed.element_size()
            return pending, lambda: torch.stack([buffers[peer] for peer in peers]) if peers else computed
        # CompCGA: compressed where computed, one error memory per (owner l, data holder j) pair.
        sends = {peer: self._compress_payload(f"cross:{peer}", computed[row]) for row, peer in enumerate(peers)}
        numel, like = computed.shape[1] if peers else 0, self.ctx.model.grad
        payloads = {peer: self.compressor.payload_like(numel, like.dtype, like.device) for peer in peers}
        pending = exchange.post("cross_grad", sends, payloads)
        self.dense_bytes_sent += len(peers) * numel * like.element_size()

        def decompressed() -> torch.Tensor:
            rows = [self.compressor.decompress(payloads[peer], numel, like.dtype) for peer in peers]
            return torch.stack(rows) if rows else computed

        return pending, decompressed

    def _memory(self, key: str) -> ErrorFeedback:
        if key not in self.error_memories:
            self.error_memories[key] = ErrorFeedback(self.compressor)
            saved = self.state.pop(f"error:{key}", None)
            if saved is not None:
                self.error_memories[key].load_state_dict({"memory": saved})
        return self.error_memories[key]

    def _compress_payload(self, key: str, gradient: torch.Tensor) -> list[torch.Tensor]:
        payload, _ = self._memory(key).compress(gradient)
        return payload

    def _compress(self, key: str, gradient: torch.Tensor) -> torch.Tensor:
        _, delta = self._memory(key).compress(gradient)
        return delta.to(gradient.dtype)

    def _project(self, own: torch.Tensor, received: torch.Tensor, peers: list[int], step: int, epoch: int) -> torch.Tensor:
        """The QP projection of equation 5, optionally on mixing-weighted gradients (authors' code)."""
        if self.hparams["scale_by_mixing"]:
            weights = self.ctx.topology.mixing_matrix(step, epoch)[self.ctx.rank]
            own = own * float(weights[self.ctx.rank])
            received = received * torch.tensor([float(weights[p]) for p in peers], dtype=received.dtype, device=received.device).unsqueeze(1)
        margin, ridge = float(self.hparams["dual_margin"]), self.hparams["ridge"]
        try:
            if self.hparams["qp_scope"] == "per_tensor":
                direction, changed, _ = project_per_tensor(own, received, self.boundaries, margin, ridge)
                changed = changed > 0
            else:
                projection = project_gradient(own, received, margin, ridge)
                direction, changed = projection.direction, projection.changed
        except ValueError as error:
            if "non-finite" not in str(error):
                raise
            # Non-finite gradients, or a Gram matrix that overflowed: let NaN/Inf flow into the model so that
            # every agent's divergence check sees it in lock step (raising would leave the neighbours waiting).
            return own + received.sum(dim=0) * float("inf")
        self.steps_seen += 1
        self.steps_changed += int(changed)
        self.shift_total = self.shift_total + (direction - own).norm().double()  # on the device: read once an epoch
        return direction

    def build_momentum(self) -> Momentum:
        # heavy_ball, Algorithm 1: v = beta v - alpha g_tilde ; x = w + v.
        # nesterov, the authors' code: m = beta m + g_tilde ; x = w - alpha (g_tilde + beta m).
        nesterov = self.hparams["momentum_form"] == "nesterov"
        return Momentum(float(self.hparams["momentum"]), nesterov=nesterov, buffer="gradient" if nesterov else "velocity")

    def _update(self, mixed: torch.Tensor, direction: torch.Tensor, lr: float) -> None:
        self.momentum.apply(mixed, direction, lr, out=self.ctx.model.params)

    def epoch_metrics(self) -> dict[str, float]:
        """Share of steps whose projection moved the gradient, and the mean ||g_tilde - g||."""
        seen = max(self.steps_seen, 1)
        result = {"qp_changed_fraction": self.steps_changed / seen, "qp_shift_norm_mean": float(self.shift_total) / seen}
        self._reset_counters()
        return result

    def state_dict(self) -> dict[str, torch.Tensor]:
        state = super().state_dict()
        state.update({f"error:{key}": memory.memory for key, memory in self.error_memories.items() if memory.memory is not None})
        # This epoch's QP counters, so a run resumed mid-epoch reports the same epoch metrics.
        state["_epoch_counters"] = torch.tensor([self.steps_seen, self.steps_changed, float(self.shift_total)], dtype=torch.float64)
        return state

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        counters = state.get("_epoch_counters")
        super().load_state_dict({key: value for key, value in state.items() if key != "_epoch_counters"})
        if counters is not None:
            self.steps_seen, self.steps_changed, self.shift_total = int(counters[0]), int(counters[1]), float(counters[2])


@register
class CompCGA(CGA):
    """Algorithm 2: CGA on error-feedback compressed self- and cross-gradients (scaled sign by default)."""

    name = "compcga"
    uses_compressor = True
    default_compressor = "sign"
