"""The local objective an algorithm optimizes: a model whose parameters live in one flat buffer."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class FlatModel:
    """A module whose parameters and gradients are views into two contiguous vectors.

    Algorithms update `params` with vector ops and send it as it is; the module sees the change.
    Floating-point buffers (BatchNorm running means and variances) are views into a third vector,
    `buffers`, so they can be averaged, sent and checkpointed in one piece; integer buffers
    (BatchNorm's batch counters) stay per agent in `counters`.
    """

    def __init__(self, module: nn.Module) -> None:
        self.module = module
        parameters = [p for p in module.parameters() if p.requires_grad]
        self.shapes = [p.shape for p in parameters]
        self.numel = sum(p.numel() for p in parameters)
        like = parameters[0] if parameters else torch.empty(0)
        self.params = torch.empty(self.numel, device=like.device, dtype=like.dtype)
        self.grad = torch.zeros(self.numel, device=like.device, dtype=like.dtype)
        offset = 0
        for p in parameters:
            size = p.numel()
            self.params[offset : offset + size].copy_(p.detach().reshape(-1))
            p.data = self.params[offset : offset + size].view_as(p)
            p.grad = self.grad[offset : offset + size].view_as(p)
            offset += size
        self._parameters = parameters
        self.buffers, self.counters = _flatten_buffers(module, like)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Buffers and counters, on the CPU: what a checkpoint needs besides `params`."""
        state = {"buffers": self.buffers.detach().cpu().clone()}
        if self.counters:
            state["buffer_counters"] = torch.stack([c.detach().cpu().reshape(()) for c in self.counters])
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore buffers and counters saved by `state_dict` (absent keys: checkpoints without BatchNorm)."""
        if "buffers" in state:
            self.buffers.copy_(state["buffers"].to(self.buffers.device))
        for counter, value in zip(self.counters, state.get("buffer_counters", torch.empty(0))):
            counter.copy_(value)

    @contextmanager
    def holding(self, params: torch.Tensor | None, buffers: torch.Tensor | None = None) -> Iterator[None]:
        """Put another model's parameters (and buffers) in place for a while; the own ones come back after."""
        saved = [(mine, mine.clone()) for mine, other in ((self.params, params), (self.buffers, buffers)) if other is not None]
        for mine, other in ((self.params, params), (self.buffers, buffers)):
            if other is not None:
                mine.copy_(other)
        try:
            yield
        finally:
            for mine, own in saved:
                mine.copy_(own)

    def grads_are_views(self) -> bool:
        """True while autograd still accumulates into the flat gradient buffer."""
        start = self.grad.data_ptr()
        end = start + self.grad.numel() * self.grad.element_size()
        return all(p.grad is not None and start <= p.grad.data_ptr() < end for p in self._parameters)

    def gather_grads(self) -> None:
        """Copy gradients into the flat buffer if autograd replaced the views (it rarely does)."""
        if not self.grads_are_views():
            torch.cat([p.grad.reshape(-1) for p in self._parameters], out=self.grad)
            offset = 0
            for p in self._parameters:
                p.grad = self.grad[offset : offset + p.numel()].view_as(p)
                offset += p.numel()


def _flatten_buffers(module: nn.Module, like: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Re-point every floating buffer into one flat vector; return it and the integer buffers."""
    floating = [(m, n, b) for m in module.modules() for n, b in m.named_buffers(recurse=False) if b is not None and b.is_floating_point()]
    counters = [b for b in module.buffers() if b is not None and not b.is_floating_point()]
    flat = torch.empty(sum(b.numel() for _, _, b in floating), device=like.device, dtype=like.dtype)
    offset = 0
    for owner, name, buffer in floating:
        size = buffer.numel()
        flat[offset : offset + size].copy_(buffer.reshape(-1))
        setattr(owner, name, flat[offset : offset + size].view_as(buffer))
        offset += size
    return flat, counters


class LocalObjective:
    """f_j on the current minibatch of agent j: loss plus L2 weight decay, gradient into the flat buffer."""

    def __init__(self, flat_model: FlatModel, loss_fn: LossFn, weight_decay: float = 0.0) -> None:
        self.flat_model = flat_model
        self.loss_fn = loss_fn
        self.weight_decay = weight_decay
        self.inputs: torch.Tensor | None = None
        self.targets: torch.Tensor | None = None

    def set_batch(self, inputs: torch.Tensor, targets: torch.Tensor) -> None:
        """Fix the minibatch that the next gradients are taken on."""
        self.inputs, self.targets = inputs, targets

    def self_gradient(self) -> torch.Tensor:
        """Loss at the agent's own parameters (a 0-dim tensor on its device, so nothing waits for a
        GPU); leaves its gradient in `flat_model.grad`."""
        if self.inputs is None or self.targets is None:
            raise RuntimeError("set_batch must be called before self_gradient")
        model = self.flat_model
        model.grad.zero_()
        loss = self.loss_fn(model.module(self.inputs), self.targets)
        loss.backward()
        model.gather_grads()
        if self.weight_decay:
            model.grad.add_(model.params, alpha=self.weight_decay)
        return loss.detach()

    @torch.no_grad()
    def loss(self) -> torch.Tensor:
        """Loss at the agent's own parameters on the current minibatch, without a gradient (0-dim tensor)."""
        if self.inputs is None or self.targets is None:
            raise RuntimeError("set_batch must be called before loss")
        model = self.flat_model
        # A forward pass in training mode would move BatchNorm's running statistics: keep them as they were.
        buffers, counters = model.buffers.clone(), [counter.clone() for counter in model.counters]
        with torch.no_grad():
            value = self.loss_fn(model.module(self.inputs), self.targets)
        model.buffers.copy_(buffers)
        for counter, saved in zip(model.counters, counters):
            counter.copy_(saved)
        return value
