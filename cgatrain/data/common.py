"""Shared data-layer types: the error class and the train/test split container."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
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


def _shape_text(shape: Any) -> str:
    return str(tuple(int(d) for d in shape))


def check_split(split: Any, name: str) -> DatasetSplit:
    """`split` if it is a DatasetSplit the agents can train on; else a DataError naming `data=name` and every bad field.

    Checked: the types, the feature dtype (float32, or uint8 images with `mean`/`std`) and per-sample shape
    (`input_shape`) of train and test, label dtype and shape (int64 class ids in [0, num_classes) for
    classification, float32 targets for regression, one per sample), `task`, `num_classes`, `mean`/`std`, `optimum`.
    """
    where = f"data={name}"
    if not isinstance(split, DatasetSplit):
        raise DataError(f"{where}: the loader returned a {type(split).__module__}.{type(split).__qualname__}, "
                        "not a cgatrain.data.common.DatasetSplit")
    problems: list[str] = []
    if split.task not in ("classification", "regression"):
        raise DataError(f"{where}: DatasetSplit.task must be 'classification' or 'regression', got {split.task!r}")
    classification = split.task == "classification"
    num_classes = split.num_classes
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)):
        problems.append(f"DatasetSplit.num_classes must be an integer, got {num_classes!r}")
        num_classes = None
    elif classification and num_classes < 1:
        problems.append(f"DatasetSplit.num_classes must be >= 1 for classification, got {num_classes}")
    elif not classification and num_classes != 0:
        problems.append(f"DatasetSplit.num_classes must be 0 for regression (one output), got {num_classes}")
    shape = split.input_shape
    if not isinstance(shape, (tuple, list)) or not shape or not all(
            isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 1 for d in shape):
        problems.append(f"DatasetSplit.input_shape must be a tuple of positive integers (one sample's shape), got {shape!r}")
        shape = None
    for part in ("train", "test"):
        x, y = getattr(split, f"{part}_x"), getattr(split, f"{part}_y")
        for field, value in ((f"{part}_x", x), (f"{part}_y", y)):
            if not isinstance(value, torch.Tensor):
                problems.append(f"DatasetSplit.{field} is a {type(value).__module__}.{type(value).__qualname__}, not a torch.Tensor"
                                + (" (torch.from_numpy converts it)" if isinstance(value, np.ndarray) else ""))
        if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
            continue
        if x.dtype == torch.uint8:
            if split.mean is None or split.std is None or x.dim() != 4:
                problems.append(f"DatasetSplit.{part}_x is uint8: only (N, C, H, W) images with `mean` and `std` may be; "
                                "give other features as float32")
        elif x.dtype != torch.float32:
            problems.append(f"DatasetSplit.{part}_x is {x.dtype}; features must be float32 ({part}_x.float()), "
                            "or uint8 images with `mean` and `std`")
        if x.dim() < 2 or len(x) == 0:
            problems.append(f"DatasetSplit.{part}_x has shape {_shape_text(x.shape)}; it must hold N >= 1 samples, (N, *input_shape)")
        elif shape is not None and tuple(x.shape[1:]) != tuple(int(d) for d in shape):
            problems.append(f"DatasetSplit.{part}_x holds samples of shape {_shape_text(x.shape[1:])}, "
                            f"but input_shape is {_shape_text(shape)}")
        if y.dim() != 1 or len(y) != len(x):
            problems.append(f"DatasetSplit.{part}_y has shape {_shape_text(y.shape)}; it must hold one "
                            f"{'label' if classification else 'target'} per sample of {part}_x, ({len(x)},)")
        if classification and y.dtype != torch.int64:
            problems.append(f"DatasetSplit.{part}_y is {y.dtype}; class labels must be int64 ({part}_y.long())")
        elif classification and num_classes is not None and y.numel():
            low, high = int(y.min()), int(y.max())
            if low < 0 or high >= num_classes:
                problems.append(f"DatasetSplit.{part}_y holds label {low if low < 0 else high}, outside [0, num_classes={num_classes})")
        elif not classification and y.dtype != torch.float32:
            problems.append(f"DatasetSplit.{part}_y is {y.dtype}; regression targets must be float32 ({part}_y.float())")
    for field in ("mean", "std"):
        value = getattr(split, field)
        if value is None:
            continue
        channels = int(shape[0]) if shape is not None else None
        if not isinstance(value, (tuple, list)) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value) \
                or (channels is not None and len(value) != channels):
            problems.append(f"DatasetSplit.{field} must be a tuple of one number per channel ({channels}), got {value!r}")
        elif field == "std" and any(v <= 0 for v in value):
            problems.append(f"DatasetSplit.std must be > 0 for every channel, got {value!r}")
    if (split.mean is None) != (split.std is None):
        problems.append("DatasetSplit.mean and DatasetSplit.std go together: set both or neither")
    if split.optimum is not None and not isinstance(split.optimum, torch.Tensor):
        problems.append(f"DatasetSplit.optimum must be a tensor or None, got a {type(split.optimum).__qualname__}")
    if problems:
        raise DataError(f"{where}: " + "; ".join(problems))
    return split
