"""Gradients of this agent's minibatch loss at other agents' models: the cross-gradients of CGA.

BatchNorm: a neighbour's model is run in training mode on this agent's batch, so it normalizes with
the batch's statistics, exactly as the neighbour's own gradient step does on its batch. Running
statistics play no part in that gradient, so cross-gradients are taken on a copy of the module whose
BatchNorm layers track none (torch.func.replace_all_batch_norm_modules_): neither this agent's nor
the neighbour's statistics change, and vmap can batch the models.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.func import functional_call, grad, replace_all_batch_norm_modules_, vmap

from cgatrain.algorithms.objective import FlatModel, LocalObjective

MODES = ("auto", "batched", "loop")


def supports_vmap(module: nn.Module) -> bool:
    """False for modules whose training-mode forward mutates state (BatchNorm running statistics)."""
    return not any(isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training and m.running_mean is not None for m in module.modules())


def has_batchnorm(module: nn.Module) -> bool:
    """True if any layer of `module` is a BatchNorm."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())


def stateless_copy(module: nn.Module) -> nn.Module:
    """A copy of `module` whose BatchNorm layers use batch statistics and keep no running ones."""
    return replace_all_batch_norm_modules_(copy.deepcopy(module)) if has_batchnorm(module) else module


def prefer_batched(module: nn.Module, device: torch.device) -> bool:
    """The `auto` choice: vmap on GPUs, a loop on CPUs.

    On one CPU thread the loop costs about one self-gradient per neighbour, while vmap adds a fixed
    cost and turns convolutions into slower grouped convolutions (benchmarks/cross_gradients.py).
    """
    return supports_vmap(module) and device.type == "cuda"


class CrossGradients:
    """grad f_j(D_j; x_l) for a stack of models x_l, on the objective's current minibatch.

    The batched path evaluates all models in one `vmap` over `functional_call`; the loop path
    loads each model into a scratch copy of the module and back-propagates (BatchNorm-safe).
    """

    def __init__(self, objective: LocalObjective, mode: str = "auto") -> None:
        if mode not in MODES:
            raise ValueError(f"cross_grad_mode must be one of {MODES}, not {mode!r}")
        self.objective = objective
        module = self._module = stateless_copy(objective.flat_model.module)
        if mode == "batched" and not supports_vmap(module):
            raise ValueError("cross_grad_mode=batched cannot handle BatchNorm in training mode; use auto or loop")
        self.batched = mode == "batched" or (mode == "auto" and prefer_batched(module, objective.flat_model.params.device))
        self._layout = [(name, p.shape, p.numel()) for name, p in module.named_parameters() if p.requires_grad]
        # Dropout draws its own mask per model, as the loop does (vmap's default refuses random ops).
        self._batched_grad = vmap(grad(self._loss_at), in_dims=(0, None, None), randomness="different")
        self._scratch: LocalObjective | None = None

    def _loss_at(self, params: dict[str, torch.Tensor], inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        outputs = functional_call(self._module, params, (inputs,))
        return self.objective.loss_fn(outputs, targets)

    def compute(self, models: torch.Tensor) -> torch.Tensor:
        """(m, d) gradients, row i taken at model `models[i]`, including weight decay."""
        if models.shape[0] == 0:
            return torch.empty_like(models)
        gradients = self._compute_batched(models) if self.batched else self._compute_looped(models)
        if self.objective.weight_decay:
            gradients.add_(models, alpha=self.objective.weight_decay)
        return gradients

    def _compute_batched(self, models: torch.Tensor) -> torch.Tensor:
        # Per-parameter views of the stacked models: differentiating a flat vector would make
        # backward fill a full (m, d) buffer once per parameter tensor.
        params, offset = {}, 0
        for name, shape, numel in self._layout:
            params[name] = models[:, offset : offset + numel].unflatten(1, shape)
            offset += numel
        grads = self._batched_grad(params, self.objective.inputs, self.objective.targets)
        return torch.cat([grads[name].reshape(len(models), -1) for name, _, _ in self._layout], dim=1)

    def _compute_looped(self, models: torch.Tensor) -> torch.Tensor:
        if self._scratch is None:
            scratch_model = FlatModel(copy.deepcopy(self._module))
            self._scratch = LocalObjective(scratch_model, self.objective.loss_fn, weight_decay=0.0)
        scratch = self._scratch
        scratch.set_batch(self.objective.inputs, self.objective.targets)
        gradients = torch.empty_like(models)
        for row, model in enumerate(models):
            scratch.flat_model.params.copy_(model)
            scratch.self_gradient()
            gradients[row].copy_(scratch.flat_model.grad)
        return gradients
