"""Options refused in the parent with a message naming the key."""

from __future__ import annotations

from typing import Any

import pytest

from cgatrain.algorithms import get_algorithm
from cgatrain.train.schedule import check_schedule


@pytest.mark.parametrize(("schedule", "message"), [
    ({"name": "step", "gamma": 0.1, "milestones": 1}, "optim.schedule.milestones must be null or a list of epochs"),
    ({"name": "step", "gamma": 0.1, "milestones": ["a"]}, "optim.schedule.milestones must be null or a list of epochs"),
    ({"name": "step", "gamma": 0.1, "milestones": [2, -1]}, "optim.schedule.milestones must be null or a list of epochs"),
    ({"name": "step", "gamma": 0.1, "milestones": [1.5]}, "optim.schedule.milestones must be null or a list of epochs"),
    ({"name": "step", "gamma": 0.1, "step_size": 1.5}, "optim.schedule.step_size (epochs between decays) must be an integer >= 1 or null, got 1.5"),
    ({"name": "step", "gamma": 0.1, "step_size": 0}, "optim.schedule.step_size"),
    ({"name": "step", "gamma": 0.1}, "optim.schedule.name=step needs optim.schedule.step_size"),
    ({"name": "step", "gamma": 0.1, "step_size": 2, "milestones": [3]}, "not both"),
    ({"name": "exponential", "gamma": "abc"}, "optim.schedule.gamma must be a number, got 'abc'"),
    ({"name": "cosine", "eta_min": "abc"}, "optim.schedule.eta_min must be a number or null, got 'abc'"),
    ({"name": "cosine", "warmup_epochs": "abc"}, "optim.schedule.warmup_epochs must be a number or null, got 'abc'"),
    ({"name": "cosine", "warmup_start_factor": "abc"}, "optim.schedule.warmup_start_factor must be a number, got 'abc'"),
    ({"name": "cosine", "eta_min": 0.5}, "optim.schedule.eta_min=0.5 is above optim.lr=0.1"),
])
def test_bad_schedule_options_are_refused_naming_the_key(schedule: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as error:
        check_schedule(schedule, 0.1)
    assert message in str(error.value)


def test_good_schedules_pass() -> None:
    for schedule in ({"name": "step", "gamma": 0.1, "milestones": [100, 150], "step_size": None}, {"name": "step", "gamma": 0.5, "step_size": 30},
                     {"name": "cosine", "eta_min": 0.1, "warmup_epochs": 0.5}, {"name": "exponential", "gamma": 0.981, "eta_min": 0.0},
                     {"name": "cosine", "gamma": None, "eta_min": None, "warmup_epochs": None}):
        check_schedule(schedule, 0.1)


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
