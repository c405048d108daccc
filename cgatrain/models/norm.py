"""Normalization layers chosen by `model.norm`: none, batch (BatchNorm2d) or group (GroupNorm)."""

from __future__ import annotations

from torch import nn

NORMS = ("none", "batch", "group")
BUFFER_MODES = ("local", "average")  # model.buffers: see cgatrain.algorithms.buffers


def check_buffer_mode(mode: str) -> None:
    """Reject anything but local or average (in the parent)."""
    if mode not in BUFFER_MODES:
        raise ValueError(f"model.buffers must be one of {BUFFER_MODES}, not {mode!r}")


def make_norm(kind: str, channels: int, groups: int = 2) -> nn.Module:
    """A fresh normalization layer over `channels` feature maps (Identity for `none`)."""
    if kind == "none":
        return nn.Identity()
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        if channels % groups:
            raise ValueError(f"model.groups={groups} does not divide {channels} channels")
        return nn.GroupNorm(groups, channels)
    raise ValueError(f"model.norm must be one of {NORMS}, not {kind!r}")
