"""Training accuracy on the union of the shards (`train.eval_train`) against one process holding all of them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from multiproc import run_agents
from torch import nn

from cgatrain.algorithms import FlatModel
from cgatrain.train.generalization import train_accuracy_scores

AGENTS = 3


def _model(rank: int) -> nn.Module:
    torch.manual_seed(100 + rank)
    return nn.Sequential(nn.Linear(4, 3))


def _shard(rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(rank)
    return torch.randn(10 + 5 * rank, 4, generator=generator), torch.randint(0, 3, (10 + 5 * rank,), generator=generator)


def _accuracy(module: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> float:
    with torch.no_grad():
        return float((module(inputs).argmax(dim=1) == targets).double().mean())


def _agent(rank: int, world_size: int) -> tuple[dict[str, float], torch.Tensor]:
    model = FlatModel(_model(rank))
    own = model.params.clone()
    average = torch.stack([FlatModel(_model(r)).params for r in range(world_size)]).mean(dim=0)
    scores = train_accuracy_scores(model, average, model.buffers.clone(), _shard(rank), rank, world_size, nn.CrossEntropyLoss())
    assert torch.equal(model.params, own)  # the agent's own model is back in place
    return scores, model.params


@pytest.mark.multiproc
@pytest.mark.timeout(120)
def test_train_accuracy_on_the_union_of_shards_matches_one_process(tmp_path: Path) -> None:
    results = run_agents(_agent, AGENTS, tmp_path)
    models = [_model(r) for r in range(AGENTS)]
    shards = [_shard(r) for r in range(AGENTS)]
    union = torch.cat([x for x, _ in shards]), torch.cat([y for _, y in shards])
    average = FlatModel(_model(0))
    average.params.copy_(torch.stack([FlatModel(_model(r)).params for r in range(AGENTS)]).mean(dim=0))
    expected = {
        "agent_shard_train_accuracy_mean": sum(_accuracy(models[r], *shards[r]) for r in range(AGENTS)) / AGENTS,
        "agent_train_accuracy_mean": sum(_accuracy(m, *union) for m in models) / AGENTS,
        "consensus_train_accuracy": _accuracy(average.module, *union),
    }
    for scores, _ in results:
        for key, value in expected.items():
            assert scores[key] == pytest.approx(value, abs=1e-12), key
    assert len({round(scores["agent_train_accuracy_mean"], 12) for scores, _ in results}) == 1
