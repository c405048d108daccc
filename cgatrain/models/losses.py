"""Task losses: cross-entropy for classification, mean squared error for regression."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SqueezedMSELoss(nn.Module):
    """Mean squared error that accepts ``(N, 1)`` model outputs against ``(N,)`` targets."""

    def forward(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean of (output - target)^2 after dropping the trailing singleton output dim."""
        if outputs.dim() == targets.dim() + 1 and outputs.shape[-1] == 1:
            outputs = outputs.squeeze(-1)
        return F.mse_loss(outputs, targets.to(outputs.dtype))


def loss_fn(task: str) -> nn.Module:
    """Return the loss module for ``task``: ``classification`` or ``regression``."""
    if task == "classification":
        return nn.CrossEntropyLoss()
    if task == "regression":
        return SqueezedMSELoss()
    raise ValueError(f"unknown task {task!r}; known: classification, regression")
