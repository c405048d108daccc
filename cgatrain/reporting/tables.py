"""Markdown and CSV tables of grouped runs, in the papers' shapes.

Accuracy (the CGA paper's Table 3 and the Sparse-Push paper's Table 4): averaged-model and agents'
test accuracy, mean ± sample std over seeds, "Diverges" where every seed diverged. Communication and
time (the Sparse-Push paper's Table 2): MB sent per agent, bytes per step, compression factor,
seconds per epoch and per step.

A std shows to the same last digit as its mean (`2.311 ± 0.000`, `1.23e-03 ± 0.05e-03`). A
threshold column (`KEY@first>=X`) averages the seeds that reached X and says `(k/n reached)` when
some did not, `not reached (0/n)` when none did; the CSVs add `<key>_reached` columns.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cgatrain.reporting import derived
from cgatrain.reporting.runs import Group, Run

THRESHOLD_NOTE = (" A KEY@first>=X column is the first epoch reaching X, averaged over the seeds that reached it;"
                  " \"(k/n reached)\" counts them when some did not, \"not reached (0/n)\" when none did.")


@dataclass(frozen=True)
class Column:
    """A number in a table: its record key, header, scale and decimals."""

    key: str
    header: str
    scale: float = 1.0
    decimals: int = 4
    style: str = "f"  # "e" for numbers spanning orders of magnitude


ACCURACY = (
    Column("consensus_test_accuracy", "Averaged-model acc (%)", 100.0, 2),
    Column("agent_test_accuracy_mean", "Agents' acc mean (%)", 100.0, 2),
    Column("agent_test_accuracy_min", "Min agent acc (%)", 100.0, 2),
    Column("final_train_loss", "Final train loss", 1.0, 4, "g"),
    Column("consensus_distance", "Consensus distance", 1.0, 2, "e"),
)
COMMUNICATION = (
    Column("mb_sent_per_agent", "MB sent / agent", 1.0, 2),
    Column("bytes_sent_per_step", "kB / step / agent", 1e-3, 2),
    Column("compression_factor", "Compression factor", 1.0, 1),
    Column("train_seconds_per_epoch", "Train s / epoch", 1.0, 2),
    Column("compute_seconds_per_step", "Compute ms / step", 1e3, 1),
    Column("comm_seconds_per_step", "Comm ms / step", 1e3, 1),
)


def mean_std_text(mean: float, std: float | None, spec: str) -> str:
    """`mean ± std` with the std rounded to the mean's last shown digit (in the mean's power of ten, if any)."""
    text = format(mean, spec)
    if std is None:
        return text
    mantissa, _, exponent = text.lower().partition("e")
    decimals = len(mantissa.partition(".")[2])
    if not exponent:
        return f"{text} ± {std:.{decimals}f}"
    return f"{text} ± {std / 10.0 ** int(exponent):.{decimals}f}e{exponent}"


def reach_counts(group: Group, key: str) -> tuple[int, int] | None:
    """For a `KEY@first>=X` key: (completed runs that reached X, completed runs that recorded KEY); else None."""
    if not derived.is_threshold(key):
        return None
    flags = [flag for run in group.finished() if (flag := derived.threshold_reached(run.metrics, key)) is not None]
    return (sum(flags), len(flags)) if flags else None


def _spec(column: Column) -> str:
    # "#" keeps a "g" number's trailing zeros, so that 2.000 shows its precision as 2.311 does
    return f"{'#' if column.style == 'g' else ''}.{column.decimals}{column.style}"


def _cell(group: Group, column: Column) -> str:
    mean, std, _ = group.stats(column.key)
    reach = reach_counts(group, column.key)
    if reach is not None and reach[0] == 0:
        return f"not reached (0/{reach[1]})"
    if mean is None:
        statuses = {run.status for run in group.runs}
        if "diverged" in statuses:
            return "Diverges"
        return "failed" if "failed" in statuses else "-"
    text = mean_std_text(mean * column.scale, None if std is None else std * column.scale, _spec(column))
    return text if reach is None or reach[0] == reach[1] else f"{text} ({reach[0]}/{reach[1]} reached)"


def markdown_table(groups: Sequence[Group], by: Sequence[str], columns: Sequence[Column]) -> str:
    """One row per group: the grouping values, the method, n seeds, the columns, the statuses."""
    headers = [*by, "Method", "n", *(column.header for column in columns), "Status"]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(["---"] * (len(by) + 1) + ["---:"] * (len(columns) + 1) + ["---"]) + "|"]
    for group in groups:
        cells = [*(str(v) for v in group.by_values), group.label, str(len(group.finished())), *(_cell(group, c) for c in columns), group.status()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _group_stats(column: Column) -> tuple[str, ...]:
    return ("mean", "std", "reached", "recorded") if derived.is_threshold(column.key) else ("mean", "std")


def _group_numbers(group: Group, column: Column) -> list[str]:
    """Unscaled mean and std; for a threshold column also how many completed runs reached it and recorded its key."""
    mean, std, _ = group.stats(column.key)
    numbers = ["" if mean is None else repr(mean), "" if std is None else repr(std)]
    if derived.is_threshold(column.key):
        reach = reach_counts(group, column.key)
        numbers += ["", ""] if reach is None else [str(reach[0]), str(reach[1])]
    return numbers


def write_group_csv(path: Path, groups: Sequence[Group], by: Sequence[str], columns: Sequence[Column]) -> None:
    """Aggregated numbers, unscaled: <key>_mean, <key>_std per column (and <key>_reached, <key>_recorded for KEY@first)."""
    with open(path, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow([*by, "method", "n", "runs", *(f"{c.key}_{stat}" for c in columns for stat in _group_stats(c)), "status"])
        for group in groups:
            numbers = [number for column in columns for number in _group_numbers(group, column)]
            writer.writerow([*group.by_values, group.label, len(group.finished()), len(group.runs), *numbers, group.status()])


def write_run_csv(path: Path, groups: Sequence[Group], by: Sequence[str], columns: Sequence[Column]) -> None:
    """One row per run, unscaled, with its directory, seed, status and error; KEY@first columns add <key>_reached."""
    names = [name for c in columns for name in ((c.key, f"{c.key}_reached") if derived.is_threshold(c.key) else (c.key,))]
    with open(path, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["run_dir", *by, "method", "seed", "status", "epochs_completed", *names, "error"])
        for group in groups:
            for run in group.runs:
                values = [value for c in columns for value in _run_values(run, c)]
                summary = run.summary
                writer.writerow([str(run.path), *group.by_values, group.label, run.seed, run.status,
                                 summary.epochs_completed if summary else "", *values, (summary.error or "") if summary else ""])


def _run_values(run: Run, column: Column) -> list[str]:
    """A run's unscaled value; for a threshold column also true, false or empty (its key never recorded)."""
    value = run.result(column.key)
    values = ["" if value is None else repr(value)]
    if derived.is_threshold(column.key):
        reached = derived.threshold_reached(run.metrics, column.key)
        values.append("" if reached is None else str(reached).lower())
    return values


def report_markdown(roots: Sequence[Path], runs: Sequence[Run], groups: Sequence[Group], by: Sequence[str], extra: Sequence[Column], plots: Sequence[Path]) -> str:
    """The whole report.md: what was read, the accuracy table, the communication table, the plots."""
    epochs = sorted({run.summary.epochs_completed for run in runs if run.summary and run.status == "completed"})
    agents = sorted({run.config.get("agents") for run in runs if run.config.get("agents") is not None})
    # A run that failed before writing config.yaml (a resumed job refused at its start) has no seed to show.
    seeds = sorted({run.seed for run in runs if run.seed is not None}, key=lambda seed: (not isinstance(seed, int), seed if isinstance(seed, int) else 0, str(seed)))
    without_config = sum(1 for run in runs if not run.config)
    no_config = f"; {without_config} run{'s' if without_config > 1 else ''} without config.yaml" if without_config else ""
    parts = [
        f"# cgatrain report: {', '.join(str(r) for r in roots)}",
        "",
        (
            f"{len(runs)} runs ({', '.join(f'{n} {s}' for s, n in _count(run.status for run in runs).items())}); "
            f"agents {', '.join(map(str, agents)) or '-'}; epochs completed {', '.join(map(str, epochs)) or '-'}; seeds {', '.join(map(str, seeds)) or '-'}{no_config}. "
            "Final values, mean ± sample std over the completed seeds (n); a method whose every seed diverged reads "
            "\"Diverges\", as in the CGA paper. MB sent is the mean over agents."
            + (THRESHOLD_NOTE if any(derived.is_threshold(column.key) for column in extra) else "")
        ),
        "",
        "## Accuracy",
        "",
        markdown_table(groups, by, ACCURACY),
        "",
        "## Communication and time",
        "",
        markdown_table(groups, by, COMMUNICATION),
    ]
    if extra:
        parts += ["", "## Other metrics", "", markdown_table(groups, by, extra)]
    if plots:
        parts += ["", "## Plots", ""] + [f"![{plot.stem}](plots/{plot.name})" for plot in plots]
    return "\n".join(parts) + "\n"


def _count(statuses: Iterable[str]) -> dict[str, int]:
    return dict(Counter(statuses))
