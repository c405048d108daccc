"""Per-step curves of list-valued metrics (`cgatrain report --step-metric KEY`).

A run that records a metric more often than once per epoch writes it into each metrics.jsonl row as a
list: `[[step, value], ...]` (e.g. `consensus_distance_by_step` with `train.consensus_every=k`), or a
plain list of values, one per step of that epoch. The figure has one panel per value of the varying
grouping keys and one line per method: the mean over seeds at each step, shaded from the lowest to
the highest seed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cgatrain.reporting import plots
from cgatrain.reporting.runs import Group, Run
from cgatrain.reporting.schema import metric_value

# metric key -> (figure title, y-axis label)
TITLES: dict[str, tuple[str, str]] = {
    "consensus_distance_by_step": ("Consensus distance (synchronization index) per step", r"$\frac{1}{n}\sum_i \|x_i - \bar{x}\|^2$"),
}


def step_series(run: Run, key: str) -> list[tuple[int, float]]:
    """(step, value) pairs of a list-valued metric over all epochs, non-finite values dropped."""
    points: list[tuple[int, float]] = []
    step = 0
    for row in run.metrics:
        values = metric_value(row, key)
        if not isinstance(values, list):
            continue
        for item in values:
            if isinstance(item, (list, tuple)) and len(item) == 2:
                step, value = int(item[0]), item[1]
            else:
                step, value = step + 1, item
            if isinstance(value, (int, float)) and math.isfinite(value):
                points.append((step, float(value)))
    return points


def _seed_band(group: Group, key: str) -> tuple[list[int], list[float], list[float], list[float]]:
    by_step: dict[int, list[float]] = {}
    for run in group.runs:
        for step, value in step_series(run, key):
            by_step.setdefault(step, []).append(value)
    steps = sorted(by_step)
    means = [sum(by_step[s]) / len(by_step[s]) for s in steps]
    return steps, means, [min(by_step[s]) for s in steps], [max(by_step[s]) for s in steps]


def plot_steps(groups: Sequence[Group], by: Sequence[str], key: str, path: Path) -> Path | None:
    """One figure for one list-valued metric; None when no run recorded it."""
    if not any(step_series(run, key) for g in groups for run in g.runs):
        return None
    title, ylabel = TITLES.get(key, (f"{key} per step", key))
    keys, varying = plots._panels(groups, by)
    figure, axes = plots._figure(len(keys))
    styles = plots.line_styles(groups)
    for ax, panel in zip(axes, keys):
        for group in (g for g in groups if tuple(g.by_values[i] for i in varying) == panel):
            _draw(ax, group, key, *styles[group.label])
        ax.set_title(plots._panel_title(panel, varying, by, groups), fontsize=10)
        ax.set_xlabel("step")
        ax.xaxis.set_major_locator(plots._integer_ticks())
        ax.set_ylabel(ylabel)
        _log_when_spread(ax)
        ax.grid(alpha=0.3)
    seeds = max(len(g.runs) for g in groups)
    return plots._finish(figure, axes, path, title + ("\n(mean over seeds, band: lowest to highest seed)" if seeds > 1 else ""))


def _draw(ax: Any, group: Group, key: str, color: str, linestyle: str) -> None:
    steps, means, low, high = _seed_band(group, key)
    if not steps:
        return
    ax.plot(steps, means, color=color, linestyle=linestyle, linewidth=1.2, label=group.label)
    if len(group.runs) > 1:
        ax.fill_between(steps, low, high, color=color, alpha=0.15, linewidth=0)


def _log_when_spread(ax: Any) -> None:
    """A log axis when the positive values span orders of magnitude (consensus decays exponentially)."""
    values = [y for line in ax.get_lines() for y in line.get_ydata() if y > 0]
    if values and max(values) / min(values) > plots.LOG_SCALE_RANGE:
        ax.set_yscale("log")
