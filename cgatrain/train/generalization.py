"""Training-set accuracy for the generalization gap (`train.eval_train`), without moving any data.

Each agent holds only its own shard, so a model's accuracy on the whole training set (the union of
the shards) is assembled from counts: every agent's model visits every agent in turn (a broadcast of
its parameters and buffers, reporting traffic only), each scores it on its own shard, and one
all-reduce of the correct counts gives every model's accuracy on the union.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.distributed as dist

from cgatrain.algorithms.objective import FlatModel
from cgatrain.train import metrics


@torch.no_grad()
def train_accuracy_scores(model: FlatModel, average: torch.Tensor, average_buffers: torch.Tensor, shard: tuple, rank: int,
                          world_size: int, loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> dict[str, float]:
    """Mean over agents of each model's accuracy on its own shard and on the union; the averaged model on the union."""
    inputs, targets = shard
    size = len(targets)
    # counts[j]: shard-correct of agent j's model; counts[n]: of the averaged model; counts[n + 1]: shard size.
    counts = torch.zeros(world_size + 2, dtype=torch.float64, device=model.params.device)
    own_params, own_buffers = model.params.clone(), model.buffers.clone()
    with model.holding(own_params, own_buffers):  # each broadcast overwrites the own model; it comes back after
        for owner in range(world_size):
            if owner == rank:  # the owner sends its own model, not the one it last received
                model.params.copy_(own_params)
                model.buffers.copy_(own_buffers)
            dist.broadcast(model.params, src=owner)
            if model.buffers.numel():
                dist.broadcast(model.buffers, src=owner)
            counts[owner] = metrics.evaluate(model.module, inputs, targets, loss_fn, True)[1] * size
    own_shard_correct = float(counts[rank])
    with model.holding(average, average_buffers):
        counts[world_size] = metrics.evaluate(model.module, inputs, targets, loss_fn, True)[1] * size
    counts[world_size + 1] = size
    shard_accuracy = metrics.gather_rows([own_shard_correct / max(size, 1)], rank, world_size, model.params.device)
    dist.all_reduce(counts)
    total = max(float(counts[world_size + 1]), 1.0)
    return {
        "agent_shard_train_accuracy_mean": float(shard_accuracy[:, 0].mean()),
        "agent_train_accuracy_mean": float(counts[:world_size].mean()) / total,
        "consensus_train_accuracy": float(counts[world_size]) / total,
    }
