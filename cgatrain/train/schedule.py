"""Learning-rate schedules: per epoch (the CGA paper's 0.981 decay, step decay at milestones) or per
step (cosine), each optionally with a linear warmup over `warmup_epochs` (fractional epochs allowed),
as CIFAR ResNet recipes use. Warmup ramps per step from `warmup_start_factor` times the schedule's rate
up to that rate; see `learning_rate_at` for where each schedule counts its epochs from."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

SCHEDULES = ("constant", "exponential", "step", "cosine")


def check_schedule(cfg: Mapping[str, Any]) -> None:
    """Reject an unknown schedule or a nonsensical factor before any process starts."""
    name = cfg.get("name", "constant")
    if name not in SCHEDULES:
        raise ValueError(f"optim.schedule.name must be one of {SCHEDULES}, not {name!r}")
    gamma = float(cfg.get("gamma", 1.0))
    if not 0.0 < gamma <= 1.0 and name not in ("constant", "cosine"):
        raise ValueError(f"optim.schedule.gamma must lie in (0, 1], got {gamma}")
    if name == "step" and not cfg.get("milestones") and int(cfg.get("step_size") or 0) < 1:
        raise ValueError("optim.schedule.name=step needs step_size >= 1 or a list of milestones")
    if not float(cfg.get("warmup_epochs") or 0.0) >= 0.0:
        raise ValueError(f"optim.schedule.warmup_epochs must be >= 0, got {cfg.get('warmup_epochs')}")
    if not 0.0 <= float(cfg.get("warmup_start_factor", 0.1)) <= 1.0:
        raise ValueError(f"optim.schedule.warmup_start_factor must lie in [0, 1], got {cfg.get('warmup_start_factor')}")
    if not float(cfg.get("eta_min") or 0.0) >= 0.0:
        raise ValueError(f"optim.schedule.eta_min must be >= 0, got {cfg.get('eta_min')}")


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


def learning_rate_at(base_lr: float, cfg: Mapping[str, Any], step: int, steps_per_epoch: int, total_epochs: int) -> float:
    """The learning rate for global 0-based `step`: the schedule's rate, scaled by the warmup while it lasts.

    Warmup scales whatever the schedule gives at that step, so every schedule goes on where the warmup
    ends: cosine anneals over the epochs after the warmup; exponential and step decay count epochs from
    the start of the run, as recipes pairing them with warmup do (Goyal et al. 2017).
    """
    progress = step / steps_per_epoch  # in epochs, fractional
    warmup = float(cfg.get("warmup_epochs") or 0.0)
    if cfg.get("name", "constant") == "cosine":
        eta_min = float(cfg.get("eta_min") or 0.0)
        span = max(total_epochs - warmup, 1e-12)
        after_warmup = max(progress - warmup, 0.0)
        scheduled = eta_min + (base_lr - eta_min) * 0.5 * (1.0 + math.cos(math.pi * min(after_warmup / span, 1.0)))
    else:
        scheduled = learning_rate(base_lr, cfg, step // steps_per_epoch)
    if progress < warmup:
        start = float(cfg.get("warmup_start_factor", 0.1))
        ramp = min(1.0, (step + 1) / (warmup * steps_per_epoch))
        return scheduled * (start + (1.0 - start) * ramp)
    return scheduled
