"""Options refused in the parent with a message naming the key: algorithms' options, lr schedules, runs
that would never communicate; and NGO's gamma_schedule=lr against its formula (gamma_t <= gamma)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import torch

from cgatrain.algorithms import get_algorithm
from cgatrain.algorithms.ngo import NGO
from cgatrain.comm.delayed import DelayedGossip
from cgatrain.train.schedule import check_schedule, learning_rate_at


def _ngo(gamma: float) -> NGO:
    """An NGO agent for _gamma and state round trips only (no process group)."""
    algorithm = NGO(SimpleNamespace(model=SimpleNamespace(params=torch.zeros(1))), {"gamma": gamma, "gamma_schedule": "lr"})
    algorithm.delay_line = DelayedGossip(None, "ngo_state", 0)
    return algorithm


WARMUP = {"name": "cosine", "warmup_epochs": 2, "warmup_start_factor": 0.01, "eta_min": 0.0}
RATES = [learning_rate_at(0.1, WARMUP, step, 6, 4) for step in range(24)]  # the walkthrough's run: 4 epochs x 6 steps


def test_ngo_gamma_schedule_lr_is_relative_to_the_peak_rate_and_never_above_gamma() -> None:
    """gamma_t = gamma * lr_t / max_{s <= t} lr_s: gamma through the warmup, then gamma * lr_t / optim.lr."""
    algorithm = _ngo(0.2)
    gammas = [algorithm._gamma(lr) for lr in RATES]
    expected = [0.2 * lr / max(RATES[: t + 1]) for t, lr in enumerate(RATES)]
    assert gammas == pytest.approx(expected, rel=1e-12)
    assert max(gammas) <= 0.2 + 1e-15
    assert gammas[:12] == pytest.approx([0.2] * 12)  # warmup: the rate rises, the consensus step stays gamma
    assert gammas[12:] == pytest.approx([0.2 * lr / 0.1 for lr in RATES[12:]])  # after it: relative to optim.lr


@pytest.mark.parametrize("saved_key", ["peak_lr", "initial_lr"], ids=["checkpoint", "checkpoint-before-peak_lr"])
def test_ngo_gamma_schedule_lr_resumes_to_the_same_gammas(saved_key: str) -> None:
    """Resumed mid-warmup: the same gamma_t as straight on, also from a checkpoint that saved the first step's rate."""
    straight_on = _ngo(0.2)
    straight = [straight_on._gamma(lr) for lr in RATES]
    first = _ngo(0.2)
    for lr in RATES[:5]:
        first._gamma(lr)
    state = first.state_dict()
    if saved_key == "initial_lr":  # what the old code saved: the first step's (warmup) rate
        state = {"initial_lr": torch.tensor(RATES[0], dtype=torch.float64), "dense_bytes_sent": state["dense_bytes_sent"]}
    resumed = _ngo(0.2)
    resumed.load_state_dict(state)
    assert [resumed._gamma(lr) for lr in RATES[5:]] == straight[5:]
    assert "initial_lr" not in resumed.state_dict()


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


# 2 epochs x 6 steps: the walkthrough's 12-step runs.
NEVER = [
    ("fedavg", {"local_steps": 13}, "algorithm=fedavg would never average: a round is 13 steps (algorithm.local_steps=13), longer than "
                                    "the run's 12 step(s) (train.epochs=2 x 6 steps per epoch)"),
    ("fedavg", {"local_epochs": 3}, "a round is 18 steps (algorithm.local_epochs=3 x 6 steps per epoch)"),
    ("local", {"average_every": 1000}, "algorithm=local would never average: algorithm.average_every=1000"),
    ("swarmsgd", {"local_steps": 1000}, "algorithm=swarmsgd would never average: algorithm.local_steps=1000"),
    ("ngo", {"delay": 100}, "algorithm=ngo would never exchange a trained state: algorithm.delay=100"),
    ("ngo", {"delay": 12}, "algorithm.delay=12"),
]


@pytest.mark.parametrize(("name", "hparams", "message"), NEVER, ids=[f"{n}-{k}" for n, h, _ in NEVER for k in h])
def test_runs_that_would_never_communicate_are_refused(name: str, hparams: dict[str, Any], message: str) -> None:
    algorithm = get_algorithm(name)
    with pytest.raises(ValueError) as error:
        algorithm.check_run_length(hparams, 12, 6)
    assert message in str(error.value)
    # On the agents too: such a run fails at its end instead of reporting `completed`.
    agent = algorithm(SimpleNamespace(steps_per_epoch=6), hparams)
    with pytest.raises(ValueError, match="would never"):
        agent.finish(12, 1)


@pytest.mark.parametrize(("name", "hparams"), [("fedavg", {"local_steps": 12}), ("fedavg", {"local_epochs": 2}), ("local", {"average_every": 12}),
                                               ("local", {}), ("swarmsgd", {"local_steps": 12}), ("ngo", {"delay": 11})])
def test_runs_that_communicate_once_pass(name: str, hparams: dict[str, Any]) -> None:
    get_algorithm(name).check_run_length(hparams, 12, 6)
