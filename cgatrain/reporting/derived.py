"""Metrics computed from others, run filters and a choice of hyperparameter for `cgatrain report`.

- `--derive NAME=A-B`: a new metric, per epoch and at the end, from two record keys with one of
  `- + * /` (the CDSGD paper's generalization gap is agent_train_accuracy_mean-agent_test_accuracy_mean).
- `KEY@lastN` in `--metric`: the mean of KEY over a run's last N epochs (noisy curves);
  `KEY@first>=X` (or `<=`): the first epoch at which KEY reached X ("epochs to 90%"); a run that never
  did has no value, and `threshold_reached` tells it from one that never recorded KEY (tables count both).
- `--where KEY=V[,V...]`: keep the runs whose KEY (a Hydra choice or dotted config key) is one of the values.
- `--best KEY METRIC`: in every table row that differs only in KEY, keep the KEY value with the highest
  mean METRIC over seeds (`min:METRIC`: the lowest), as papers tune a step size per cell.
"""

from __future__ import annotations

import math
import operator
import re
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cgatrain.reporting.runs import Run, method_label
from cgatrain.reporting.schema import EpochRecord, metric_value

OPERATORS: dict[str, Callable[[float, float], float]] = {"-": operator.sub, "+": operator.add, "*": operator.mul, "/": operator.truediv}
DERIVE = re.compile(r"^(?P<name>[\w.]+)=(?P<left>[\w.]+)(?P<op>[-+*/])(?P<right>[\w.]+)$")
EPOCH_STATISTIC = re.compile(r"^(?P<key>[\w.]+)@(?:last(?P<last>\d+)|first(?P<cmp>>=|<=)(?P<level>[-+0-9.eE]+))$")


@dataclass(frozen=True)
class Derived:
    """NAME = LEFT op RIGHT, per epoch row and in the summary."""

    name: str
    left: str
    op: str
    right: str

    def value(self, record: Any) -> float | None:
        left, right = _number(metric_value(record, self.left)), _number(metric_value(record, self.right))
        if left is None or right is None or (self.op == "/" and right == 0):
            return None
        return OPERATORS[self.op](left, right)


def parse_derived(spec: str) -> Derived:
    """`gap=agent_train_accuracy_mean-agent_test_accuracy_mean` -> Derived; ValueError names the form."""
    match = DERIVE.match(spec.replace(" ", ""))
    if match is None:
        raise ValueError(f"--derive {spec!r}: expected NAME=KEY-KEY (or + * /), e.g. gap=agent_train_accuracy_mean-agent_test_accuracy_mean")
    return Derived(**match.groupdict())


def add_derived(runs: Sequence[Run], derived: Sequence[Derived]) -> None:
    """Write each derived metric into every epoch row and summary where both operands are numbers."""
    for run in runs:
        for item in derived:
            for row in run.metrics:
                if (value := item.value(row)) is not None:
                    row.extra[item.name] = value
            if run.summary is not None and (value := item.value(run.summary)) is not None:
                run.summary.extra[item.name] = value


def is_epoch_statistic(key: str) -> bool:
    return EPOCH_STATISTIC.match(key) is not None


def epoch_statistic(rows: Sequence[EpochRecord], key: str) -> float | None:
    """`KEY@last3`: mean of the last 3 epochs' values; `KEY@first>=0.9`: the first epoch reaching 0.9."""
    match = EPOCH_STATISTIC.match(key)
    if match is None:
        raise ValueError(f"{key!r} is not KEY@lastN or KEY@first>=X")
    name = match["key"]
    if match["last"] is not None:
        values = [v for row in rows[-int(match["last"]):] if (v := _number(metric_value(row, name))) is not None]
        return statistics.fmean(values) if values else None
    level = float(match["level"])
    reached = operator.ge if match["cmp"] == ">=" else operator.le
    return next((float(row.epoch) for row in rows if (v := _number(metric_value(row, name))) is not None and reached(v, level)), None)


def is_threshold(key: str) -> bool:
    """`KEY@first>=X` or `KEY@first<=X`: a statistic that a run may never reach."""
    match = EPOCH_STATISTIC.match(key)
    return match is not None and match["cmp"] is not None


def threshold_reached(rows: Sequence[EpochRecord], key: str) -> bool | None:
    """For `KEY@first>=X`: whether some epoch reached X; None when no epoch recorded KEY at all."""
    name = key.split("@")[0]
    if not any(_number(metric_value(row, name)) is not None for row in rows):
        return None
    return epoch_statistic(rows, key) is not None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _matches(value: Any, wanted: str) -> bool:
    if str(value) == wanted:
        return True
    try:
        return float(value) == float(wanted)
    except (TypeError, ValueError):
        return False


def parse_where(specs: Sequence[str]) -> list[tuple[str, list[str]]]:
    """`['algorithm=ngo', 'algorithm.p=1,0.75']` -> [(key, values)]; ValueError names the form."""
    parsed = []
    for spec in specs:
        key, sep, values = spec.partition("=")
        if not sep or not key or not values:
            raise ValueError(f"--where {spec!r}: expected KEY=VALUE or KEY=VALUE,VALUE, e.g. partition=iid")
        parsed.append((key, values.split(",")))
    return parsed


def where(runs: Sequence[Run], conditions: Sequence[tuple[str, list[str]]]) -> list[Run]:
    """The runs whose every condition's key holds one of its values."""
    return [run for run in runs if all(any(_matches(run.value(key), v) for v in values) for key, values in conditions)]


def keep_best(runs: Sequence[Run], by: Sequence[str], labels: Sequence[str], key: str, metric: str) -> list[Run]:
    """Per (by-values, label without KEY), the runs of the KEY value with the best mean METRIC.

    An option with runs that did not complete (diverged, failed) ranks below every option whose runs all did.
    """
    sign, metric = (-1.0, metric[4:]) if metric.startswith("min:") else (1.0, metric.removeprefix("max:"))
    rest = [label for label in labels if label != key] or ["algorithm"]
    buckets: dict[tuple[str, str], dict[str, list[Run]]] = {}
    for run in runs:
        bucket = (repr(tuple(run.value(k) for k in by)), method_label(run, rest))
        buckets.setdefault(bucket, {}).setdefault(repr(run.value(key)), []).append(run)
    kept: set[int] = set()
    for options in buckets.values():
        kept.update(id(run) for run in max(options.values(), key=lambda group: _score(group, metric, sign)))
    return [run for run in runs if id(run) in kept]


def _score(runs: Sequence[Run], metric: str, sign: float) -> tuple[int, float]:
    values = [v for run in runs if run.status == "completed" and (v := run.result(metric)) is not None]
    return (len(values) - len(runs), sign * statistics.fmean(values) if values else -math.inf)
