"""Config validation in the parent: every bad value fails with a clear message before any process starts."""

from __future__ import annotations

from typing import Any

import pytest
from omegaconf import OmegaConf

from cgatrain.compose import compose_config
from cgatrain.config import ConfigError, validate


def composed(*overrides: str) -> dict[str, Any]:
    """The resolved config `cgatrain OVERRIDES...` would validate."""
    return OmegaConf.to_container(compose_config(list(overrides)), resolve=True)  # type: ignore[return-value]


def test_default_and_example_configs_are_valid() -> None:
    assert "ring" in validate(composed())
    validate(composed("algorithm=dpsgd", "topology=complete", "agents=8", "partition=iid", "optim.lr=0.05", "train.epochs=3"))
    validate(composed("algorithm=centralized", "topology=star"))
    validate(composed("algorithm=local", "topology=time_varying_example"))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["algorithm.name=nope"], "unknown algorithm 'nope'"),
        (["optim.lr=-0.1"], "optim.lr must be >= 0"),
        (["agents=0"], "agents must be an integer >= 1"),
        (["agents=2000"], "more agents than the partition can serve"),
        (["algorithm=dpsgd", "topology=ring", "topology.weights=metropolis_hastings", "+topology.bogus=1"], "bogus"),
        (["topology=custom_example", "agents=4", "algorithm=dpsgd"], "doubly"),
        (["algorithm=dpmsgd", "algorithm.momentum=1.5"], "momentum"),
        (["optim.lr=abc"], "optim.lr must be a number, got 'abc'"),
        (["algorithm=dpmsgd", "algorithm.momentum=abc"], "algorithm.momentum must be a number in [0, 1), got 'abc'"),
        (["algorithm=dpsgd", "+algorithm.momentum=0.9"], "no option(s) ['momentum']"),
        (["optim.schedule.name=polynomial"], "optim.schedule.name"),
        (["comm.backend=mpi"], "comm.backend"),
        (["logger.wandb.mode=sometimes"], "logger.wandb.mode"),
        (["resume=/nonexistent/run"], "resume=/nonexistent/run"),
        (["algorithm=cga", "topology=directed_ring"], "needs an undirected topology"),
        (["algorithm=dpsgd", "compressor=sign"], "sends uncompressed messages"),
        (["algorithm=cga", "algorithm.qp_scope=layers"], "algorithm.qp_scope"),
        (["train.steps_per_epoch=-2"], "train.steps_per_epoch"),
        (["algorithm=scsp", "topology=directed_ring", "algorithm.gossip_eta=5"], "gossip_eta"),
        (["algorithm=scsp", "topology=directed_ring", "algorithm.gossip_every=-3"], "gossip_every"),
        (["seed=abc"], "seed must be an integer >= 0, got 'abc'"),
        (["same_init=maybe"], "same_init must be true or false, got 'maybe'"),
        (["train.log_every=0"], "train.log_every must be an integer >= 1, got 0"),
        (["model.activation=tanh"], "model=cnn with model.activation='tanh' on inputs (1, 8, 8): unknown activation 'tanh'"),
        (["model=resnet20", "model.norm=group", "model.groups=5"], "model.groups=5 does not divide 16 channels"),
        (["model=mlp", "model.hidden=abc"], "model=mlp with model.hidden='abc'"),
        (["model=resnet20", "model.norm=group", "model.groups=0"], "model.groups must be an integer >= 1, got 0"),  # was read as 2
        (["model=linear", "model.bias=x"], "model.bias must be true, false or null, got 'x'"),  # was read as true
        (["model=lenet5"], "lenet5 needs inputs of at least 16x16 pixels, got 8x8"),
        (["algorithm=ngo", "algorithm.p=abc"], "algorithm.p must be a number, got 'abc'"),
        (["algorithm=sparse_push", "topology=directed_ring", "compressor=qsgd", "compressor.bits=3"], "compressor.bits must be one of (1, 2, 4, 8), got 3"),
        (["algorithm=sparse_push", "topology=directed_ring", "compressor=topk", "compressor.fraction=1.5"], "compressor.fraction must be a number in (0, 1], got 1.5"),
        (["data.test_fraction=2"], "data.test_fraction must be in (0, 1), got 2.0"),
        (["partition=dirichlet", "partition.alpha=abc"], "partition.alpha must be a number, got 'abc'"),
        (["optim.schedule.name=cosine", "optim.schedule.eta_min=1.0"], "optim.schedule.eta_min=1.0 is above optim.lr=0.02"),
        (["algorithm=fedavg", "algorithm.local_steps=1000", "train.epochs=2"], "algorithm=fedavg would never average"),
        (["algorithm=local", "algorithm.average_every=1000", "train.epochs=2"], "would never average"),
        (["data=fake", "model=mlp", "train.eval_train=true", "data.in_memory=false"], "train.eval_train scores each agent's shard in memory"),
    ],
)
def test_bad_values_are_rejected(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[").replace("]", r"\]")):
        validate(composed(*overrides))


def test_a_directed_graph_for_an_algorithm_that_replies_is_refused_for_that_alone() -> None:
    with pytest.raises(ConfigError) as refused:
        validate(composed("agents=4", "topology=random", "topology.directed=true", "algorithm=cga"))
    # Not the advice on directed weights (weights=uniform), which would only lead to this refusal next.
    assert str(refused.value) == ("invalid config:\n  - algorithm 'cga' sends replies back along each edge, so it needs an "
                                  "undirected topology (topology.directed=true asks for a directed one)")


def test_disconnected_graph_is_rejected() -> None:
    cfg = composed("algorithm=dpsgd", "agents=4")
    cfg["topology"] = {"graph": "custom", "edges": [[0, 1], [2, 3]], "directed": False, "weights": "metropolis_hastings"}
    with pytest.raises(ConfigError, match="disconnected"):
        validate(cfg)


def test_non_stochastic_mixing_matrix_is_rejected() -> None:
    cfg = composed("algorithm=dpsgd", "agents=3")
    cfg["topology"] = {"graph": "custom", "edges": [[0, 1], [1, 2], [2, 0]], "directed": False,
                       "weights": [[0.5, 0.3, 0.3], [0.3, 0.5, 0.3], [0.3, 0.3, 0.5]]}
    with pytest.raises(ConfigError, match="stochastic"):
        validate(cfg)


def test_all_problems_are_reported_together() -> None:
    with pytest.raises(ConfigError) as error:
        validate(composed("optim.lr=-1", "algorithm.name=nope"))
    assert "optim.lr" in str(error.value) and "unknown algorithm" in str(error.value)
