"""What rank 0 shows and writes: console table, progress bar, metrics.jsonl, summary.json, wandb."""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tqdm import tqdm

from cgatrain.reporting.schema import (
    LOG_FILE,
    METRICS_FILE,
    SUMMARY_FILE,
    RunSummary,
    write_json,
)

__all__ = ["LOG_FILE", "METRICS_FILE", "SUMMARY_FILE", "Reporter", "append_log", "write_json"]

# (metric key, column title, width, format spec) of the per-epoch console table.
COLUMNS = (
    ("epoch", "epoch", 5, "d"),
    ("train_loss", "train loss", 10, ".4f"),
    ("consensus_test_loss", "avg-model loss", 14, ".4f"),
    ("consensus_test_accuracy", "avg-model acc", 13, ".2%"),
    ("agent_test_accuracy_min", "agent acc min", 13, ".2%"),
    ("agent_test_accuracy_mean", "mean", 7, ".2%"),
    ("agent_test_accuracy_max", "max", 7, ".2%"),
    ("consensus_distance", "consensus dist", 14, ".3e"),
    ("mb_sent_per_agent", "MB sent/agent", 13, ".3f"),  # mean over agents
    ("epoch_seconds", "sec", 6, ".1f"),
)


# (AgentResult field, column title, width, format spec) of the per-agent table that ends a run.
AGENT_COLUMNS = (
    ("rank", "agent", 5, "d"),
    ("test_accuracy", "test acc", 8, ".2%"),
    ("test_loss", "test loss", 9, ".4f"),
    ("train_loss", "train loss", 10, ".4f"),
    ("mb_sent", "MB sent", 8, ".2f"),
    ("compute_seconds", "compute s", 9, ".2f"),
    ("comm_seconds", "comm s", 6, ".2f"),
)


def _cell(value: Any, width: int, spec: str) -> str:
    """VALUE right-aligned in WIDTH; a fixed-point number too wide for it (a loss of 105842.8984) turns scientific."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-".rjust(width)
    text = format(value, f">{width}{spec}")
    if len(text) > width and spec.endswith("f"):
        return _scientific(value, width)
    return text


def _scientific(value: float, width: int) -> str:
    """VALUE in scientific notation with as many digits as fit WIDTH (at least one)."""
    for digits in range(max(width - 6, 0), 0, -1):
        if len(text := format(value, f">{width}.{digits}e")) <= width:
            return text
    return format(value, f">{width}.0e")


class Reporter:
    """Rank 0's outputs for one run; every method is a no-op on other ranks."""

    def __init__(self, run_dir: Path, enabled: bool, cfg: Mapping[str, Any], progress_bar: bool = True) -> None:
        self.run_dir = run_dir
        self.enabled = enabled
        # The bar (on stderr) draws with carriage returns, which garble redirected output (nohup, Slurm .out files).
        self.show_bar = progress_bar and enabled and sys.stderr.isatty()
        self.bar: tqdm | None = None
        self.wandb_run = None
        if enabled:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self.wandb_run = _start_wandb(cfg, run_dir)

    def print(self, text: str) -> None:
        """Show a line on the console and keep it in the run's cgatrain.log."""
        if self.enabled:
            tqdm.write(text, file=sys.stdout)
            sys.stdout.flush()
            append_log(self.run_dir, text)

    def start_epoch(self, epoch: int, epochs: int, steps: int) -> None:
        if self.show_bar:
            self.bar = tqdm(total=steps, desc=f"epoch {epoch + 1}/{epochs}", leave=False, dynamic_ncols=True, file=sys.stderr)

    def advance(self, steps: int = 1, loss: float | None = None) -> None:
        if self.bar is not None:
            self.bar.update(steps)
            if loss is not None:
                self.bar.set_postfix(loss=f"{loss:.4f}")

    def end_epoch(self, record: Mapping[str, Any], header: bool) -> None:
        """Close the bar, print a table row, append the record to metrics.jsonl and wandb."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if not self.enabled:
            return
        if header:
            self.print("  ".join(title.rjust(width) for _, title, width, _ in COLUMNS))
        self.print("  ".join(_cell(record.get(key), width, spec) for key, _, width, spec in COLUMNS))
        self.append_metrics(record)
        if self.wandb_run is not None:
            self.wandb_run.log({k: v for k, v in record.items() if isinstance(v, (int, float))}, step=int(record["epoch"]))

    def append_metrics(self, record: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        with open(self.run_dir / METRICS_FILE, "a") as stream:
            stream.write(json.dumps(_jsonable(record)) + "\n")

    def write_metrics(self, records: list[Mapping[str, Any]]) -> None:
        """Replace metrics.jsonl atomically with exactly these rows."""
        if not self.enabled:
            return
        partial = self.run_dir / (METRICS_FILE + ".partial")
        partial.write_text("".join(json.dumps(_jsonable(record)) + "\n" for record in records))
        os.replace(partial, self.run_dir / METRICS_FILE)

    def finish(self, summary: RunSummary) -> None:
        """Print the per-agent table, write summary.json atomically and close wandb."""
        if not self.enabled:
            return
        if summary.per_agent:
            self.print(per_agent_table(summary))
        record = summary.to_dict()
        write_json(self.run_dir / SUMMARY_FILE, record)
        if self.wandb_run is not None:
            flat = {k: v for k, v in record.items() if isinstance(v, (int, float, str))}
            flat.update({f"agent_{agent['rank']}/{k}": v for agent in record["per_agent"] for k, v in agent.items() if k != "rank"})
            self.wandb_run.summary.update(flat)
            self.wandb_run.finish(exit_code=0 if summary.status == "completed" else 1)


def _jsonable(record: Mapping[str, Any]) -> dict[str, Any]:
    """NaN and Inf become null so that every line is strict JSON."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}


def append_log(run_dir: Path, text: str) -> None:
    """Append lines to the run's cgatrain.log (what the console showed, warnings, errors)."""
    with open(Path(run_dir) / LOG_FILE, "a") as stream:
        stream.write(text.rstrip("\n") + "\n")


def per_agent_table(summary: RunSummary) -> str:
    """One row per agent: its own test accuracy and loss, train loss, MB sent, compute and comm seconds.

    Numbers too wide for their column turn scientific; a column still widens to its widest cell, so rows stay aligned.
    """
    rows = [[title for _, title, _, _ in AGENT_COLUMNS]]
    rows += [[_cell(getattr(agent, key), width, spec) for key, _, width, spec in AGENT_COLUMNS] for agent in summary.per_agent]
    widths = [max(len(row[i]) for row in rows) for i in range(len(AGENT_COLUMNS))]
    return "\n".join("  ".join(cell.rjust(width) for cell, width in zip(row, widths)) for row in rows)


def _start_wandb(cfg: Mapping[str, Any], run_dir: Path) -> Any:  # a wandb Run; wandb is optional
    """One wandb run per experiment, from rank 0; imported only when enabled."""
    settings = cfg.get("logger", {}).get("wandb", {})
    mode = settings.get("mode", "disabled")
    if mode == "disabled":
        return None
    try:
        import wandb
    except ImportError as error:
        raise RuntimeError("logger.wandb.mode is not 'disabled' but wandb is not installed: pip install 'cgatrain[wandb]'") from error
    return wandb.init(
        project=settings.get("project", "cgatrain"),
        entity=settings.get("entity"),
        group=settings.get("group"),
        tags=list(settings.get("tags") or []),
        name=settings.get("name") or run_dir.name,
        mode=mode,
        dir=str(run_dir),
        config=dict(cfg),
    )
