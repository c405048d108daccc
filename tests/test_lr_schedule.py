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
