"""Markdown and CSV tables of grouped runs, in the papers' shapes.

Accuracy (the CGA paper's Table 3 and the Sparse-Push paper's Table 4): averaged-model and agents'
test accuracy, mean ± sample std over seeds, "Diverges" where every seed diverged. Communication and
time (the Sparse-Push paper's Table 2): MB sent per agent, bytes per step, compression factor,
seconds per epoch and per step.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cgatrain.reporting.runs import Group, Run


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


def _cell(group: Group, column: Column) -> str:
    mean, std, count = group.stats(column.key)
    if count == 0:
        statuses = {run.status for run in group.runs}
        if "diverged" in statuses:
            return "Diverges"
        return "failed" if "failed" in statuses else "-"
    spec = f".{column.decimals}{column.style}"
    text = format(mean * column.scale, spec)
    return text if std is None else f"{text} ± {format(std * column.scale, spec)}"


def markdown_table(groups: Sequence[Group], by: Sequence[str], columns: Sequence[Column]) -> str:
    """One row per group: the grouping values, the method, n seeds, the columns, the statuses."""
    headers = [*by, "Method", "n", *(column.header for column in columns), "Status"]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(["---"] * (len(by) + 1) + ["---:"] * (len(columns) + 1) + ["---"]) + "|"]
    for group in groups:
        cells = [*(str(v) for v in group.by_values), group.label, str(len(group.finished())), *(_cell(group, c) for c in columns), group.status()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_group_csv(path: Path, groups: Sequence[Group], by: Sequence[str], columns: Sequence[Column]) -> None:
    """Aggregated numbers, unscaled: <key>_mean, <key>_std per column."""
    with open(path, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow([*by, "method", "n", "runs", *(f"{c.key}_{stat}" for c in columns for stat in ("mean", "std")), "status"])
        for group in groups:
            numbers = []
            for column in columns:
                mean, std, _ = group.stats(column.key)
                numbers += ["" if mean is None else repr(mean), "" if std is None else repr(std)]
            writer.writerow([*group.by_values, group.label, len(group.finished()), len(group.runs), *numbers, group.status()])


def write_run_csv(path: Path, groups: Sequence[Group], by: Sequence[str], columns: Sequence[Column]) -> None:
    """One row per run, unscaled, with its directory, seed, status and error."""
    with open(path, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["run_dir", *by, "method", "seed", "status", "epochs_completed", *(c.key for c in columns), "error"])
        for group in groups:
            for run in group.runs:
                values = ["" if (v := run.result(c.key)) is None else repr(v) for c in columns]
                summary = run.summary
                writer.writerow([str(run.path), *group.by_values, group.label, run.seed, run.status,
                                 summary.epochs_completed if summary else "", *values, (summary.error or "") if summary else ""])


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
