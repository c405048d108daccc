"""Per-step learning-rate schedules: linear warmup, then step decay or cosine."""

from __future__ import annotations

import itertools
import math

import pytest

from cgatrain.train.schedule import check_schedule, learning_rate, learning_rate_at


def test_without_warmup_per_step_equals_the_per_epoch_schedules() -> None:
    for cfg in ({"name": "exponential", "gamma": 0.981}, {"name": "step", "gamma": 0.1, "milestones": [2, 3]}, {"name": "constant"}):
        for step in range(50):
            assert learning_rate_at(0.1, cfg, step, 10, 5) == learning_rate(0.1, cfg, step // 10)


def test_linear_warmup_then_step_decay_per_step() -> None:
    cfg = {"name": "step", "gamma": 0.1, "milestones": [3], "warmup_epochs": 1, "warmup_start_factor": 0.0}
    ramp = [learning_rate_at(0.4, cfg, step, 4, 5) for step in range(4)]
    assert ramp == pytest.approx([0.1, 0.2, 0.3, 0.4])
    assert learning_rate_at(0.4, cfg, 4, 4, 5) == pytest.approx(0.4)
    assert learning_rate_at(0.4, cfg, 12, 4, 5) == pytest.approx(0.04)


def test_cosine_decays_per_step_to_eta_min_after_warmup() -> None:
    cfg = {"name": "cosine", "warmup_epochs": 0.5, "eta_min": 0.01}
    assert learning_rate_at(1.0, cfg, 0, 10, 10) == pytest.approx(0.1 + 0.9 * 0.2)
    assert learning_rate_at(1.0, cfg, 5, 10, 10) == pytest.approx(1.0)
    middle = learning_rate_at(1.0, cfg, 5 + 95 // 2, 10, 10)
    assert middle == pytest.approx(0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * 47 / 95)))
    values = [learning_rate_at(1.0, cfg, step, 10, 10) for step in range(5, 100)]
    assert all(a > b for a, b in itertools.pairwise(values)) and values[-1] > 0.01
    assert learning_rate_at(1.0, cfg, 100, 10, 10) == pytest.approx(0.01)


def test_bad_schedule_options_fail_early() -> None:
    check_schedule({"name": "cosine", "warmup_epochs": 2})
    for bad in ({"name": "cosine", "warmup_epochs": -1}, {"name": "cosine", "warmup_start_factor": 2}, {"name": "linear"}):
        with pytest.raises(ValueError, match="optim.schedule"):
            check_schedule(bad)


@pytest.mark.parametrize("schedule", [
    {"name": "exponential", "gamma": 0.5},
    {"name": "step", "gamma": 0.1, "milestones": [2, 4]},
    {"name": "step", "gamma": 0.5, "step_size": 1},
    {"name": "cosine", "eta_min": 0.001},
    {"name": "constant"},
])
def test_every_schedule_goes_on_where_its_warmup_ends(schedule: dict) -> None:
    """Warmup scales the schedule's own rate: no jump at its end, and never above the schedule."""
    cfg, steps, epochs = {**schedule, "warmup_epochs": 3, "warmup_start_factor": 0.1}, 10, 6
    with_warmup = [learning_rate_at(0.1, cfg, step, steps, epochs) for step in range(steps * epochs)]
    # The schedule alone: exponential and step count epochs from the start; cosine anneals after the warmup.
    alone = {**schedule, "warmup_epochs": 3, "warmup_start_factor": 1.0} if schedule["name"] == "cosine" else schedule
    plain = [learning_rate_at(0.1, alone, step, steps, epochs) for step in range(steps * epochs)]
    assert with_warmup[29] == pytest.approx(plain[29]) and with_warmup[30:] == plain[30:]
    assert all(w <= p + 1e-15 for w, p in zip(with_warmup, plain)) and with_warmup[0] == pytest.approx(0.1 * plain[0] + 0.9 * plain[0] / 30)
    if schedule["name"] == "exponential":
        assert with_warmup[29] == pytest.approx(0.1 * 0.5**2) and with_warmup[30] == pytest.approx(0.1 * 0.5**3)  # decays by gamma, not 8x
