"""Momentum, the one piece every momentum method here shares: heavy-ball (Polyak) and Nesterov.

Two bookkeeping conventions exist in the papers and codes we follow, and they differ once the
learning rate changes between steps (a schedule), so both are kept:

- ``buffer="velocity"`` (the CGA and CDSGD papers, Sutskever et al. 2013): the buffer holds the
  step itself, learning rate included.
    heavy-ball: v <- beta v - lr d ;  x <- base + v
    Nesterov:   v <- beta v - lr d ;  x <- base + beta v - lr d      (CDMSGD, the authors' code)
- ``buffer="gradient"`` (torch.optim.SGD, SGP's and the CGA authors' code): the buffer sums
  gradients and the current learning rate scales the step.
    heavy-ball: m <- beta m + d ;  x <- base - lr m
    Nesterov:   m <- beta m + d ;  x <- base - lr (d + beta m)

With a constant learning rate the two conventions give the same iterates (v = -lr m).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

BUFFERS = ("velocity", "gradient")


class Momentum:
    """A momentum buffer and the update rule that uses it; saved and loaded as ``{"velocity": buffer}``."""

    state_key = "velocity"  # the checkpoint key, as written by every cgatrain version so far

    def __init__(self, beta: float, nesterov: bool = False, buffer: str = "velocity") -> None:
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"momentum must lie in [0, 1), got {beta}")
        if buffer not in BUFFERS:
            raise ValueError(f"momentum buffer must be one of {BUFFERS}, not {buffer!r}")
        self.beta, self.nesterov, self.buffer_kind = float(beta), bool(nesterov), buffer
        self.buffer: torch.Tensor | None = None

    def describe(self) -> str:
        """A short label for banners and logs, e.g. "heavy-ball momentum 0.9 (velocity buffer)" or "no momentum"."""
        form = "Nesterov" if self.nesterov else "heavy-ball"
        return f"{form} momentum {self.beta} ({self.buffer_kind} buffer)" if self.beta else "no momentum"

    def _buffer_like(self, like: torch.Tensor) -> torch.Tensor:
        if self.buffer is None:
            self.buffer = torch.zeros_like(like)
        return self.buffer

    def velocity(self, direction: torch.Tensor, lr: float) -> torch.Tensor:
        """v <- beta v - lr d, in place in the buffer (velocity convention); returns v."""
        return self._buffer_like(direction).mul_(self.beta).add_(direction, alpha=-lr)

    def apply(self, base: torch.Tensor, direction: torch.Tensor, lr: float, out: torch.Tensor | None = None) -> torch.Tensor:
        """out <- base + the momentum step for descent direction `direction` at learning rate `lr`.

        `out=None` updates `base` in place. Every form is written with the same tensor operations
        the algorithms used before this module existed, so their iterates are unchanged bit for bit.
        """
        out = base if out is None else out
        if not self.beta:
            if self.buffer_kind == "gradient":
                return torch.add(base, direction, alpha=-lr, out=out)
            return torch.add(base, direction.mul(-lr), out=out)
        if self.buffer_kind == "velocity":
            velocity = self.velocity(direction, lr)
            if not self.nesterov:
                return torch.add(base, velocity, out=out)
            return torch.add(base, velocity, alpha=self.beta, out=out).add_(direction, alpha=-lr)
        summed = self._buffer_like(direction).mul_(self.beta).add_(direction)
        step = direction.add(summed, alpha=self.beta) if self.nesterov else summed
        return torch.add(base, step, alpha=-lr, out=out)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """``{"velocity": buffer}`` for checkpoints once the buffer exists, else {} (no step has created it yet)."""
        return {self.state_key: self.buffer} if self.buffer is not None else {}

    def load_state_dict(self, state: Mapping[str, torch.Tensor], device: torch.device | None = None) -> None:
        """Take the buffer from `state` (other keys are ignored); a missing key leaves a zero buffer."""
        saved = state.get(self.state_key)
        self.buffer = None if saved is None else saved.clone().to(device if device is not None else saved.device)
