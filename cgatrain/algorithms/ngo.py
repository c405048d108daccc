"""NGO: nonlinear gossiping learning (the NGO paper, Algorithm 1 and eqs. 6-11).

    x_half_i = x_i - eta g_i(x_i)                                  (Algorithm 1)
    x_i     <- x_half_i + gamma sum_j W_ij phi(y_j(t - tau) - y_i(t - tau))
    phi(z)   = sign(z) |z|^(2p - 1), elementwise                   (eq. 6)

y is x_half (`diff_at=half`, Algorithm 1) or the pre-step model x (`diff_at=pre`, eq. 8). `delay`
tau > 0 uses both ends' states from tau steps earlier (eq. 9): the round posted at step t stays in
flight and is consumed at step t + tau, along the graph and weights of step t (a message travels the
edges it was sent on). States before step 0 are the initial model, exchanged once in `setup` along the
step-0 graph. p = 1 is linear gossip (eq. 3); with gamma = 1, `diff_at=pre` and stochastic W it is
exactly D-PSGD. W may be any undirected topology's weights, redrawn per step on `topology=random`,
including eq. 10's 0/1 weights (`topology.weights=binary`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import torch

from cgatrain.algorithms.base import Algorithm, register
from cgatrain.comm.delayed import DelayedGossip
from cgatrain.option_checks import integer, number, run_length
from cgatrain.topology import Topology

GAMMA_SCHEDULES = ("constant", "lr")
DIFF_AT = ("half", "pre")


def phi(z: torch.Tensor, p: float) -> torch.Tensor:
    """sign(z) |z|^(2p - 1) elementwise (in place on z); p = 1 leaves z as it is."""
    if p == 1.0:
        return z
    return z.abs().pow_(2.0 * p - 1.0).mul_(torch.sign(z))


def max_weighted_degree(W: np.ndarray) -> float:
    """max_i sum_{j != i} W_ij: the largest diagonal entry of the weighted Laplacian."""
    off_diagonal = np.asarray(W, dtype=np.float64).copy()
    np.fill_diagonal(off_diagonal, 0.0)
    return float(off_diagonal.sum(axis=1).max()) if len(W) else 0.0


def laplacian_radius(W: np.ndarray) -> float:
    """Largest eigenvalue modulus of the weighted Laplacian L = diag(sum_{j != i} W_ij) - W_offdiagonal."""
    off_diagonal = np.asarray(W, dtype=np.float64).copy()
    np.fill_diagonal(off_diagonal, 0.0)
    laplacian = np.diag(off_diagonal.sum(axis=1)) - off_diagonal
    return float(np.abs(np.linalg.eigvals(laplacian)).max()) if len(W) else 0.0


def delayed_gain_limit(delay: int) -> float:
    """x(t+1) = x(t) - a x(t - tau) is stable iff 0 < a < 2 sin(pi / (2 (2 tau + 1))) (Levin and May 1965)."""
    return 2.0 * math.sin(math.pi / (2 * (2 * delay + 1)))


@register
class NGO(Algorithm):
    """Nonlinear gossip SGD; p = 1 is linear gossip SGD."""

    name = "ngo"
    rounds = ("ngo_state",)
    mixing = "none"  # NGO uses only W's off-diagonal entries; gamma's bound is checked instead
    needs_undirected = True
    undirected_because = "couples each pair of neighbours both ways, phi(y_j - y_i) and phi(y_i - y_j)"
    hyperparameters: ClassVar[dict[str, Any]] = {"p": 0.75, "gamma": 0.2, "gamma_schedule": "constant", "delay": 0, "diff_at": "half"}

    @classmethod
    def check_hyperparameters(cls, hparams: Mapping[str, Any]) -> None:
        super().check_hyperparameters(hparams)
        merged = {**cls.hyperparameters, **hparams}
        for key in ("p", "gamma"):
            number(merged[key], f"algorithm.{key}")
        if not 0.5 <= float(merged["p"]) <= 2.0:
            raise ValueError(f"algorithm.p must lie in [0.5, 2] (p = 1 is linear gossip), got {merged['p']}")
        if not float(merged["gamma"]) > 0.0:
            raise ValueError(f"algorithm.gamma (the consensus step) must be > 0, got {merged['gamma']}")
        integer(merged["delay"], "algorithm.delay", 0, meaning=" (tau, in steps)")
        if merged["diff_at"] not in DIFF_AT:
            raise ValueError(f"algorithm.diff_at must be one of {DIFF_AT}, got {merged['diff_at']!r}")
        if merged["gamma_schedule"] not in GAMMA_SCHEDULES:
            raise ValueError(f"algorithm.gamma_schedule must be one of {GAMMA_SCHEDULES}, got {merged['gamma_schedule']!r}")

    @classmethod
    def check_topology(cls, topology: Topology, hparams: Mapping[str, Any]) -> None:
        """Refuse a gamma for which linear coupling x + gamma sum_j W_ij (x_j(t - tau) - x_i(t - tau)) may be unstable.

        Checked on every sampled graph of the topology and, for per-step families, on the densest graph a step can draw.
        """
        merged = {**cls.hyperparameters, **hparams}
        if isinstance(merged["gamma"], bool) or not isinstance(merged["gamma"], int | float) or not isinstance(merged["delay"], int):
            return  # check_hyperparameters names the bad option
        gamma, delay = float(merged["gamma"]), int(merged["delay"])
        weights = [W for _, W in topology.worst_case_graphs()]
        degree = max(max_weighted_degree(W) for W in weights)
        if degree > 0 and not gamma < 1.0 / degree:
            raise ValueError(
                f"algorithm.gamma={gamma} is too large for these weights: linear coupling (I - gamma L) is a "
                f"nonnegative averaging matrix, hence stable, only for 0 < gamma < 1/max_i sum_j W_ij = {1.0 / degree:.4g} "
                "(the NGO paper's 0 < gamma < 1/max-degree for 0/1 weights, Theorem S3); lower algorithm.gamma")
        radius = max(laplacian_radius(W) for W in weights)
        limit = delayed_gain_limit(delay)
        if delay > 0 and not gamma * radius < limit:
            raise ValueError(
                f"algorithm.gamma={gamma} is too large for algorithm.delay={delay}: linear coupling with states tau steps "
                f"old is stable only for gamma * lambda_max(L) < 2 sin(pi / (2 (2 tau + 1))) = {limit:.4g}, i.e. "
                f"gamma < {limit / radius:.4g} here (lambda_max(L) = {radius:.4g}; the discrete form of Theorem 3.5's "
                "tau < pi / (2 lambda_n)); lower algorithm.gamma or algorithm.delay")

    @classmethod
    def check_run_length(cls, hparams: Mapping[str, Any], total_steps: int, steps_per_epoch: int) -> None:
        """Refuse a delay as long as the run of `total_steps` steps: every step would couple the initial models.

        For the parent, before any process starts (it knows the steps per epoch once the data is partitioned);
        `finish` repeats it on every agent, so that a run started without that check fails instead of completing.
        """
        delay = {**cls.hyperparameters, **hparams}["delay"]
        if int(delay) >= total_steps:
            raise ValueError(f"algorithm=ngo would never exchange a trained state: algorithm.delay={delay} (tau, in steps) is "
                             f"not shorter than the run's {run_length(total_steps, steps_per_epoch)}, so every step couples "
                             "the initial models; lower it or raise train.epochs")

    def finish(self, step: int, epoch: int) -> None:
        self.check_run_length(self.hparams, step, int(self.ctx.steps_per_epoch))

    def setup(self) -> None:
        super().setup()
        ctx = self.ctx
        self.delay_line = DelayedGossip(ctx.exchange, "ngo_state", int(self.hparams["delay"]))
        self._coupling = torch.empty_like(ctx.model.params)
        self._difference = torch.empty_like(ctx.model.params)
        if self.delay_line.delay > 0:
            # States before step 0 are the initial model (eq. 9 with t - tau < 0), sent once along the step-0 graph.
            in_neighbors, out_neighbors = self.neighbors(0, 0)
            self.delay_line.post_initial(ctx.model.params, out_neighbors, in_neighbors)

    def _gamma(self, lr: float) -> float:
        """gamma_t: gamma, or with `gamma_schedule=lr` gamma * lr_t / lr_peak, so that gamma_t <= gamma always.

        lr_peak is the largest learning rate of the steps so far: the base rate optim.lr once the schedule
        reaches it (no schedule goes above it), the warmup's rate while it ramps up. The consensus step so
        follows the schedule's decay, never exceeds the gamma the parent checked against the stability
        bounds (check_topology), and is not scaled down by a warmup. lr_peak is saved in checkpoints.
        """
        gamma = float(self.hparams["gamma"])
        if self.hparams["gamma_schedule"] == "constant":
            return gamma
        peak = max(float(self.state["peak_lr"]), lr) if "peak_lr" in self.state else lr
        self.state["peak_lr"] = torch.tensor(peak, dtype=torch.float64)
        return gamma * lr / peak if peak > 0 else gamma

    def step(self, lr: float, step: int, epoch: int) -> torch.Tensor:
        ctx, params = self.ctx, self.ctx.model.params
        gamma = self._gamma(lr)  # every step, so that lr_peak sees every rate
        in_neighbors, out_neighbors = self.neighbors(step, epoch)
        if self.hparams["diff_at"] == "pre":  # eq. 8: send x(t), computing the gradient while it flies
            self.delay_line.post(step, params, out_neighbors, in_neighbors)
            loss = ctx.objective.self_gradient()
            params.add_(ctx.model.grad, alpha=-lr)
        else:  # Algorithm 1: send x(t + 1/2)
            loss = ctx.objective.self_gradient()
            params.add_(ctx.model.grad, alpha=-lr)
            self.delay_line.post(step, params, out_neighbors, in_neighbors)
        arrived = self.delay_line.collect(step)
        if arrived is not None and arrived.received:
            self._couple(arrived.sent, arrived.received, max(arrived.step, 0), epoch)
            params.add_(self._coupling, alpha=gamma)
        return loss

    def _couple(self, own: torch.Tensor, received: Mapping[int, torch.Tensor], step: int, epoch: int) -> None:
        """sum_j W_ij phi(y_j - y_i) into the coupling buffer, W from the step the round was sent at."""
        weights = self.ctx.topology.mixing_matrix(step, epoch)[self.ctx.rank]
        p = float(self.hparams["p"])
        self._coupling.zero_()
        for peer, state in received.items():
            torch.sub(state, own, out=self._difference)
            self._coupling.add_(phi(self._difference, p), alpha=float(weights[peer]))

    def mix_buffers(self, buffers: torch.Tensor, step: int, epoch: int) -> None:
        """Buffers are statistics, not iterates: NGO mixes them by linear gossip with the step's weights.

        b_i <- sum_j pi_ij b_j over this step's in-neighbours (uniform weights where W's row is not
        stochastic, e.g. `topology.weights=binary`), undelayed, whatever `p`, `gamma` and `delay`.
        """
        self.gossip_buffers(buffers, step, epoch)

    def state_dict(self) -> dict[str, torch.Tensor]:
        state = super().state_dict()
        state.update({f"inflight:{key}": value for key, value in self.delay_line.state_dict().items()})
        return state

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        inflight = {key.split(":", 1)[1]: value for key, value in state.items() if key.startswith("inflight:")}
        super().load_state_dict({key: value for key, value in state.items() if not key.startswith("inflight:")})
        # Checkpoints from before lr_peak saved the first step's rate as "initial_lr": a lower bound of lr_peak
        # (equal to it unless that step was in a warmup), which the next steps' rates raise to lr_peak.
        initial = self.state.pop("initial_lr", None)
        if initial is not None and "peak_lr" not in self.state:
            self.state["peak_lr"] = initial.to(torch.float64)
        self.delay_line.load_state_dict(inflight, self.ctx.model.params.device)
