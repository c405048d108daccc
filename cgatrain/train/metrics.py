"""Metrics that need every agent: consensus model, consensus distance, per-agent test scores.

These collectives are for reporting only and never touch the algorithm's byte counters.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.distributed as dist
from torch import nn


@torch.no_grad()
def evaluate(
    module: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    classification: bool,
    batch_size: int = 1024,
) -> tuple[float, float]:
    """(mean loss, accuracy) of `module` on a data set; accuracy is NaN for regression."""
    was_training = module.training
    module.eval()
    total_loss, correct, count = 0.0, 0, 0
    for start in range(0, len(inputs), batch_size):
        batch_x, batch_y = inputs[start : start + batch_size], targets[start : start + batch_size]
        outputs = module(batch_x)
        total_loss += float(loss_fn(outputs, batch_y)) * len(batch_x)
        if classification:
            correct += int((outputs.argmax(dim=1) == batch_y).sum())
        count += len(batch_x)
    module.train(was_training)
    accuracy = correct / max(count, 1) if classification else float("nan")
    return total_loss / max(count, 1), accuracy


def consensus(params: torch.Tensor, world_size: int) -> tuple[torch.Tensor, float, float]:
    """(average model, consensus distance 1/n sum_i ||x_i - mean||^2, parameter divergence 1/n sum_i ||x_i - mean||)."""
    average = params.detach().clone()
    dist.all_reduce(average)
    average.div_(world_size)
    squared = (params.detach() - average).pow(2).sum()
    distances = torch.stack([squared, squared.sqrt()]).double()
    dist.all_reduce(distances)
    return average, float(distances[0]) / world_size, float(distances[1]) / world_size


def gather_rows(values: Sequence[float], rank: int, world_size: int, device: torch.device) -> torch.Tensor:
    """A (world_size, len(values)) table holding every agent's values, known to every agent."""
    table = torch.zeros(world_size, len(values), dtype=torch.float64, device=device)
    table[rank] = torch.tensor(list(values), dtype=torch.float64, device=device)
    dist.all_reduce(table)
    return table.cpu()
