"""Type checks of one config option, each refusal naming its key (`algorithm.eta must be a number, got 'abc'`).

Used by the parent's checks (`Algorithm.check_hyperparameters`, `check_schedule`) before any process
starts, so that a value the agents would read with `float()`, `int()` or `bool()` is refused, never
converted (a string 'maybe' is true, 2.5 truncates to 2, 'abc' fails in every agent).
"""

from __future__ import annotations

from typing import Any


def number(value: Any, key: str, *, allow_none: bool = False) -> float | None:
    """`value` as a float when it is an int or float (not a bool); else a ValueError naming `key`."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{key} must be a number{' or null' if allow_none else ''}, got {value!r}")
    return float(value)


def integer(value: Any, key: str, minimum: int, *, allow_none: bool = False, meaning: str = "") -> int | None:
    """`value` when it is an integer >= `minimum` (not a bool, not 2.5); else a ValueError naming `key`.

    `meaning` is said after the key, e.g. " (steps between gossip phases)".
    """
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{key}{meaning} must be an integer >= {minimum}{' or null' if allow_none else ''}, got {value!r}")
    return value


def flag(value: Any, key: str) -> bool:
    """`value` when it is true or false; a string such as 'maybe' (true to `bool()`) is a ValueError naming `key`."""
    if not isinstance(value, bool):
        raise ValueError(f"{key} must be true or false, got {value!r}")
    return value


def run_length(total_steps: int, steps_per_epoch: int) -> str:
    """'12 steps (train.epochs=2 x 6 steps per epoch)', for refusals of options longer than the run."""
    epochs = total_steps // max(steps_per_epoch, 1)
    return f"{total_steps} step(s) (train.epochs={epochs} x {steps_per_epoch} steps per epoch)"
