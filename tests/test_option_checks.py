"""Options refused in the parent with a message naming the key."""

from __future__ import annotations

from typing import Any

import pytest

from cgatrain.algorithms import get_algorithm


@pytest.mark.parametrize(("name", "hparams", "message"), [
    ("scsp", {"gossip_steps": 2.5}, "algorithm.gossip_steps (push-sum steps per gossip phase) must be an integer >= 0, got 2.5"),
    ("scsp", {"gossip_every": 2.5}, "algorithm.gossip_every (training steps between gossip phases) must be an integer >= 1 or null, got 2.5"),
    ("scsp", {"gossip_eta": "abc"}, "algorithm.gossip_eta must be a number or null, got 'abc'"),
    ("scsp", {"eta": "abc"}, "algorithm.eta must be a number, got 'abc'"),
    ("sparse_push", {"eta": None}, "algorithm.eta must be a number, got None"),
    ("sparse_push", {"eta": "abc"}, "algorithm.eta must be a number, got 'abc'"),
    ("sgp", {"nesterov": "maybe"}, "algorithm.nesterov must be true or false, got 'maybe'"),
    ("cdmsgd", {"nesterov": "maybe"}, "algorithm.nesterov must be true or false, got 'maybe'"),
    ("cga", {"dual_margin": "abc"}, "algorithm.dual_margin must be a number, got 'abc'"),
    ("cga", {"ridge": "abc"}, "algorithm.ridge must be a number or null, got 'abc'"),
    ("compcga", {"scale_by_mixing": "maybe"}, "algorithm.scale_by_mixing must be true or false, got 'maybe'"),
])
def test_bad_algorithm_options_are_refused_naming_the_key(name: str, hparams: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as error:
        get_algorithm(name).check_hyperparameters(hparams)
    assert message in str(error.value)


@pytest.mark.parametrize("name", ["scsp", "sparse_push", "sgp", "cdmsgd", "cga", "compcga", "fedavg", "local", "swarmsgd", "ngo"])
def test_default_options_pass(name: str) -> None:
    algorithm = get_algorithm(name)
    algorithm.check_hyperparameters(dict(algorithm.hyperparameters))
