"""Learning-rate schedules: per epoch (the CGA paper's 0.981 decay, step decay at milestones) or per
step (cosine), each optionally with a linear warmup over `warmup_epochs` (fractional epochs allowed),
as CIFAR ResNet recipes use. Warmup ramps per step from `warmup_start_factor` times the schedule's rate
up to that rate; see `learning_rate_at` for where each schedule counts its epochs from."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from cgatrain.option_checks import integer, number

SCHEDULES = ("constant", "exponential", "step", "cosine")


def check_schedule(cfg: Mapping[str, Any], base_lr: float | None = None) -> None:
    """Reject an unknown schedule or a nonsensical option before any process starts; each refusal names its key.

    `base_lr` is `optim.lr`: a cosine schedule's `eta_min` above it would anneal upwards.
    """
    name = cfg.get("name", "constant")
    if name not in SCHEDULES:
        raise ValueError(f"optim.schedule.name must be one of {SCHEDULES}, not {name!r}")
    if name in ("exponential", "step"):
        gamma = number(cfg.get("gamma", 1.0), "optim.schedule.gamma")
        if not 0.0 < gamma <= 1.0:
            raise ValueError(f"optim.schedule.gamma must lie in (0, 1], got {gamma}")
    milestones = cfg.get("milestones")
    if milestones is not None and (not isinstance(milestones, list | tuple)
                                   or any(isinstance(m, bool) or not isinstance(m, int) or m < 0 for m in milestones)):
        raise ValueError(f"optim.schedule.milestones must be null or a list of epochs (integers >= 0), e.g. [100, 150], got {milestones!r}")
    step_size = integer(cfg.get("step_size"), "optim.schedule.step_size", 1, allow_none=True, meaning=" (epochs between decays)")
    if name == "step" and not milestones and step_size is None:
        raise ValueError("optim.schedule.name=step needs optim.schedule.step_size (an integer >= 1) or optim.schedule.milestones (a list of epochs)")
    if name == "step" and milestones and step_size is not None:
        raise ValueError(f"optim.schedule.name=step takes optim.schedule.step_size or optim.schedule.milestones, not both "
                         f"(step_size={step_size}, milestones={list(milestones)})")
    warmup = number(cfg.get("warmup_epochs"), "optim.schedule.warmup_epochs", allow_none=True)
    if warmup is not None and not warmup >= 0.0:
        raise ValueError(f"optim.schedule.warmup_epochs must be >= 0, got {warmup}")
    start = number(cfg.get("warmup_start_factor", 0.1), "optim.schedule.warmup_start_factor")
    if not 0.0 <= start <= 1.0:
        raise ValueError(f"optim.schedule.warmup_start_factor must lie in [0, 1], got {start}")
    eta_min = number(cfg.get("eta_min"), "optim.schedule.eta_min", allow_none=True) or 0.0
    if not eta_min >= 0.0:
        raise ValueError(f"optim.schedule.eta_min must be >= 0, got {eta_min}")
    if name == "cosine" and base_lr is not None and eta_min > base_lr:
        raise ValueError(f"optim.schedule.eta_min={eta_min} is above optim.lr={base_lr}: the cosine schedule would anneal "
                         "upwards; eta_min is the rate it decays to")


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
