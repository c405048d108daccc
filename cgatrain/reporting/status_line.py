"""The line that ends a run in the console and in its cgatrain.log: how it ended, its scores, its files."""

from __future__ import annotations

import math
from pathlib import Path

from cgatrain.reporting import append_log
from cgatrain.reporting.schema import RunSummary, load_summary

RUN_FILES = ("summary.json", "metrics.jsonl", "config.yaml", "cgatrain.log", "checkpoints/")


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"


def status_text(summary: RunSummary, run_dir: Path) -> str:
    """'status: completed after 20 epochs | scores | MB sent | seconds' and the run's files that exist."""
    mb_sent = f"MB sent/agent (mean) {summary.mb_sent_per_agent or 0:.2f}"
    if summary.mb_sent_per_agent_min is not None and summary.mb_sent_per_agent_min != summary.mb_sent_per_agent_max:
        mb_sent += f" (min {summary.mb_sent_per_agent_min:.2f}, max {summary.mb_sent_per_agent_max:.2f})"
    epochs = summary.epochs_completed
    when = f"in epoch {epochs + 1}" if summary.status == "diverged" else f"after {epochs} epoch{'' if epochs == 1 else 's'}"
    files = [name for name in RUN_FILES if (run_dir / name).exists()]
    scores = (f"averaged-model test acc {_percent(summary.consensus_test_accuracy)} | agents' acc mean "
              f"{_percent(summary.agent_test_accuracy_mean)} min {_percent(summary.agent_test_accuracy_min)}")
    if summary.consensus_test_accuracy is None and summary.consensus_test_loss is not None:  # regression: losses, no accuracy
        scores = f"averaged-model test loss {summary.consensus_test_loss:.4g} | final train loss {summary.final_train_loss or math.nan:.4g}"
    return (f"\nstatus: {summary.status} {when} | {scores} | {mb_sent} | "
            f"{summary.wall_seconds or 0:.1f} s\nrun files: {run_dir} ({', '.join(files)})")


def print_status(run_dir: Path) -> None:
    """Print the run's status line and append it to its cgatrain.log (nothing when it has no summary.json)."""
    summary = load_summary(run_dir)
    if summary is None:
        return
    text = status_text(summary, run_dir)
    print(text, flush=True)
    append_log(run_dir, text)
