"""Shared data-layer types: the error class and the train/test split container."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch


class DataError(ValueError):
    """Raised for every dataset/partition configuration or feasibility problem."""


@contextlib.contextmanager
def options_of(section: str) -> Iterator[None]:
    """DataErrors raised inside name their option by its config key: `option 'alpha'` -> `partition.alpha`."""
    try:
        yield
    except DataError as error:
        raise DataError(re.sub(r"option '(\w+)'", rf"{section}.\1", str(error))) from error


@dataclass(frozen=True)
class DatasetSplit:
    """A loaded dataset: train and test tensors plus the metadata models need.

    Images are float32 ``(N, C, H, W)`` already normalized, or uint8 ``(N, C, H, W)`` with the
    per-channel ``mean``/``std`` (of pixels in [0, 1]) the agent normalizes with; vectors float32 ``(N, D)``. Labels are
    int64 class ids for classification and float32 ``(N,)`` targets for regression.
    ``optimum`` is only set for regression: the least-squares solution on the
    train set (the weights a bias-free linear model should converge to).
    """

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    input_shape: tuple[int, ...]
    task: str
    optimum: torch.Tensor | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None


def int_option(cfg: Mapping[str, Any], key: str, default: int | None, minimum: int | None = None) -> int | None:
    """Read an integer option from ``cfg`` (missing or null -> ``default``); DataError on bad values."""
    value = cfg.get(key)
    if value is None:
        return default
    # bool is an int subclass; a YAML `true` here is almost surely a typo
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise DataError(f"option {key!r} must be an integer, got {value!r}")
    try:
        parsed = int(value)
    except ValueError as exc:
        raise DataError(f"option {key!r} must be an integer, got {value!r}") from exc
    if isinstance(value, float) and parsed != value:
        raise DataError(f"option {key!r} must be an integer, got {value!r}")
    if minimum is not None and parsed < minimum:
        raise DataError(f"option {key!r} must be >= {minimum}, got {parsed}")
    return parsed


def float_option(cfg: Mapping[str, Any], key: str, default: float) -> float:
    """Read a float option from ``cfg``, raising DataError on non-numeric values."""
    value = cfg.get(key, default)
    if value is None:
        return default
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise DataError(f"option {key!r} must be a number, got {value!r}") from exc


def bool_option(cfg: Mapping[str, Any], key: str, default: bool) -> bool:
    """Read a boolean option from ``cfg``; only real booleans are accepted."""
    value = cfg.get(key, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise DataError(f"option {key!r} must be true or false, got {value!r}")
    return value
