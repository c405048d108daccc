"""Fully connected models: a ReLU MLP and a single linear layer."""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import nn


def flat_size(input_shape: tuple[int, ...]) -> int:
    """Number of features once a sample of ``input_shape`` is flattened."""
    size = math.prod(int(d) for d in input_shape)
    if size < 1:
        raise ValueError(f"input shape {input_shape} has no features")
    return size


def build_mlp(input_shape: tuple[int, ...], num_outputs: int, hidden: Sequence[int]) -> nn.Sequential:
    """Flatten, then Linear+ReLU per entry of ``hidden``, then a Linear output layer."""
    layers: list[nn.Module] = [nn.Flatten()]
    in_features = flat_size(input_shape)
    for width in hidden:
        if int(width) < 1:
            raise ValueError(f"mlp hidden widths must be >= 1, got {list(hidden)}")
        layers += [nn.Linear(in_features, int(width)), nn.ReLU()]
        in_features = int(width)
    layers.append(nn.Linear(in_features, num_outputs))
    return nn.Sequential(*layers)


def build_linear(input_shape: tuple[int, ...], num_outputs: int, bias: bool) -> nn.Sequential:
    """Flatten, then one Linear layer (``bias`` toggles its intercept)."""
    return nn.Sequential(nn.Flatten(), nn.Linear(flat_size(input_shape), num_outputs, bias=bias))
