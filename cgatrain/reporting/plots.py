"""PNG plots of grouped runs (needs matplotlib: `pip install -e ".[plot]"`).

Per-epoch curves: one figure per metric, one panel per value of the varying grouping keys, one line
per method (mean over seeds, shaded between the lowest and highest seed); a diverged run's line ends
in a cross. Per-agent accuracy at the end: grouped bars, one bar per method for every agent.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cgatrain.reporting.runs import Group
from cgatrain.reporting.schema import metric_value

# metric key -> (figure title, y-axis label, scale, log scale when the values span orders of magnitude)
CURVES: dict[str, tuple[str, str, float, bool]] = {
    "train_loss": ("Training loss (mean over agents)", "train loss", 1.0, True),
    "consensus_test_accuracy": ("Test accuracy of the averaged model", "test accuracy (%)", 100.0, False),
    "agent_test_accuracy_mean": ("Test accuracy of the agents' own models (mean)", "test accuracy (%)", 100.0, False),
    "agent_train_accuracy_mean": ("Training-set accuracy of the agents' own models (mean)", "train accuracy (%)", 100.0, False),
    "consensus_distance": ("Consensus distance 1/n Σ‖x_i − x̄‖²", "consensus distance", 1.0, True),
}


LOG_SCALE_RANGE = 20.0
LINE_STYLES = ("-", "--", ":", "-.")  # after the 10 colours, the next methods get the next line style  # a "log" metric gets a log axis only when its values span more than this factor


def matplotlib_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def line_styles(groups: Sequence[Group]) -> dict[str, tuple[str, str]]:
    """(colour, line style) per method label, distinct for up to 40 methods."""
    labels = dict.fromkeys(g.label for g in groups)
    return {label: (f"C{i % 10}", LINE_STYLES[(i // 10) % len(LINE_STYLES)]) for i, label in enumerate(labels)}


def _integer_ticks() -> Any:
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(integer=True)


def _panels(groups: Sequence[Group], by: Sequence[str]) -> tuple[list[tuple[Any, ...]], list[int]]:
    """The distinct panel keys (values of the by-keys that vary) and which by-positions vary."""
    varying = [i for i in range(len(by)) if len({g.by_values[i] for g in groups}) > 1]
    keys: list[tuple[Any, ...]] = []
    for group in groups:
        key = tuple(group.by_values[i] for i in varying)
        if key not in keys:
            keys.append(key)
    return keys, varying


def _panel_title(key: tuple[Any, ...], varying: list[int], by: Sequence[str], groups: Sequence[Group] = ()) -> str:
    """The varying by-values of a panel; with a single panel, the by-values all its runs share."""
    if not varying and groups:
        return ", ".join(f"{name}={value}" for name, value in zip(by, groups[0].by_values) if value is not None) or "all runs"
    return ", ".join(f"{by[i]}={value}" for i, value in zip(varying, key)) or "all runs"


def _figure(count: int) -> tuple[Any, list[Any]]:
    plt = _pyplot()
    columns = min(count, 3)
    rows = math.ceil(count / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(5.2 * columns, 3.8 * rows + 0.9), squeeze=False)
    flat = [ax for row in axes for ax in row]
    for ax in flat[count:]:
        ax.set_visible(False)
    return figure, flat[:count]


def _finish(figure: Any, axes: list[Any], path: Path, title: str) -> Path:
    handles, labels = {}, []
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            if label not in handles:
                handles[label] = handle
                labels.append(label)
    figure.suptitle(title, fontsize=12)
    longest = max((len(label) for label in labels), default=1)
    # as many legend columns as fit the figure's width (about 9 characters per inch at fontsize 9)
    ncol = max(1, min(len(labels), 4, int(figure.get_figwidth() * 9 / (longest + 6))))
    figure.legend([handles[label] for label in labels], labels, loc="lower center", ncol=ncol, fontsize=9, frameon=False,
                  title="method", title_fontsize=9)
    legend_rows = math.ceil(len(labels) / ncol) + 1
    rows = math.ceil(len(axes) / 3)
    figure.tight_layout(rect=(0, (0.05 * legend_rows + 0.02) / rows, 1, 1 - 0.05 / rows))
    figure.savefig(path, dpi=110)
    _pyplot().close(figure)
    return path


def plot_curves(groups: Sequence[Group], by: Sequence[str], key: str, path: Path,
                style: tuple[str, str, float, bool] | None = None) -> Path | None:
    """One figure for one per-epoch metric (style: title, y label, scale, log as in CURVES); None when no run recorded it."""
    title, ylabel, scale, log = style or CURVES.get(key, (key, key, 1.0, False))
    if not any(metric_value(row, key) is not None for g in groups for run in g.runs for row in run.metrics):
        return None
    keys, varying = _panels(groups, by)
    figure, axes = _figure(len(keys))
    styles = line_styles(groups)
    for ax, panel in zip(axes, keys):
        for group in (g for g in groups if tuple(g.by_values[i] for i in varying) == panel):
            _draw_group(ax, group, key, scale, styles[group.label])
        ax.set_title(_panel_title(panel, varying, by, groups), fontsize=10)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(_integer_ticks())
        ax.set_ylabel(ylabel)
        low, high = ax.dataLim.y0, ax.dataLim.y1
        if log and ax.has_data() and low > 0 and high / low > LOG_SCALE_RANGE:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    return _finish(figure, axes, path, title)


def _draw_group(ax: Any, group: Group, key: str, scale: float, style: tuple[str, str]) -> None:
    color, linestyle = style
    by_epoch: dict[int, list[float]] = {}
    for run in group.runs:
        for row in run.metrics:
            value = metric_value(row, key)
            if value is not None and math.isfinite(value) and (value > 0 or key not in ("train_loss", "consensus_distance")):
                by_epoch.setdefault(row.epoch, []).append(value * scale)
    if not by_epoch:
        return
    epochs = sorted(by_epoch)
    means = [sum(by_epoch[e]) / len(by_epoch[e]) for e in epochs]
    diverged = any(run.status == "diverged" for run in group.runs)
    ax.plot(epochs, means, marker="o" if len(epochs) < 12 else None, markersize=4, color=color, linestyle=linestyle, label=group.label + (" (diverged)" if diverged else ""))
    if len(group.runs) > 1:
        ax.fill_between(epochs, [min(by_epoch[e]) for e in epochs], [max(by_epoch[e]) for e in epochs], color=color, alpha=0.15, linewidth=0)
    for run in group.runs:
        if run.status == "diverged" and run.metrics:
            last = run.metrics[-1]
            value = metric_value(last, key)
            if value is not None:
                ax.plot([last.epoch], [value * scale], marker="x", markersize=9, color=color, linestyle="none")


def plot_agent_accuracy(groups: Sequence[Group], by: Sequence[str], path: Path) -> Path | None:
    """Grouped bars: each agent's own final test accuracy (mean over seeds), one colour per method."""
    if not any(run.summary and run.summary.per_agent for g in groups for run in g.runs):
        return None
    keys, varying = _panels(groups, by)
    figure, axes = _figure(len(keys))
    labels = list(dict.fromkeys(g.label for g in groups))
    width = 0.8 / max(len(labels), 1)
    for ax, panel in zip(axes, keys):
        for group in (g for g in groups if tuple(g.by_values[i] for i in varying) == panel):
            per_rank: dict[int, list[float]] = {}
            for run in group.finished():
                for agent in run.summary.per_agent if run.summary else []:
                    if agent.test_accuracy is not None:
                        per_rank.setdefault(agent.rank, []).append(agent.test_accuracy * 100)
            if not per_rank:
                continue
            ranks = sorted(per_rank)
            offset = (labels.index(group.label) - (len(labels) - 1) / 2) * width
            ax.bar([r + offset for r in ranks], [sum(per_rank[r]) / len(per_rank[r]) for r in ranks], width,
                   color=f"C{labels.index(group.label) % 10}", label=group.label)
            ax.set_xticks(ranks)
        ax.set_title(_panel_title(panel, varying, by, groups), fontsize=10)
        ax.set_xlabel("agent (rank)")
        ax.set_ylabel("own test accuracy (%)")
        ax.set_ylim(0, 100)
        ax.grid(axis="y", alpha=0.3)
    return _finish(figure, axes, path, "Each agent's own test accuracy at the end (mean over seeds)")
