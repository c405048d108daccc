"""Learning-rate schedules, stepped once per epoch as in the CGA paper's 0.981 decay."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

SCHEDULES = ("constant", "exponential", "step")


def check_schedule(cfg: Mapping[str, Any]) -> None:
    """Reject an unknown schedule or a nonsensical factor before any process starts."""
    name = cfg.get("name", "constant")
    if name not in SCHEDULES:
        raise ValueError(f"optim.schedule.name must be one of {SCHEDULES}, not {name!r}")
    gamma = float(cfg.get("gamma", 1.0))
    if not 0.0 < gamma <= 1.0 and name != "constant":
        raise ValueError(f"optim.schedule.gamma must lie in (0, 1], got {gamma}")
    if name == "step" and not cfg.get("milestones") and int(cfg.get("step_size") or 0) < 1:
        raise ValueError("optim.schedule.name=step needs step_size >= 1 or a list of milestones")


def learning_rate(base_lr: float, cfg: Mapping[str, Any], epoch: int) -> float:
    """The learning rate for 0-based `epoch`: constant, lr * gamma**epoch, or step decay."""
    name = cfg.get("name", "constant")
    gamma = float(cfg.get("gamma", 1.0))
    if name == "exponential":
        return base_lr * gamma**epoch
    if name == "step":
        milestones = cfg.get("milestones")
        decays = sum(epoch >= m for m in milestones) if milestones else epoch // int(cfg["step_size"])
        return base_lr * gamma**decays
    return base_lr
