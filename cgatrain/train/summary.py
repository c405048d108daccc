"""The run's summary.json record, built from the last epoch's row and every agent's final numbers."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from cgatrain.reporting.schema import AgentResult, EpochRecord, RunSummary

# Columns of the table every agent contributes after each epoch (Trainer._epoch_metrics, gather_rows).
AGENT_COLUMNS = ("train_loss", "test_loss", "test_accuracy", "bytes_sent", "dense_bytes_sent", "compute_seconds", "comm_seconds")


def run_summary(status: str, algorithm: str, world_size: int, history: Sequence[Mapping[str, Any]], start_epoch: int,
                steps_per_epoch: int, table: torch.Tensor | None, bytes_by_round: Mapping[str, int], seconds: float,
                run_dir: Path, steps_done: int | None = None) -> RunSummary:
    """How the run ended: the last epoch's figures, bytes per round and step, compression, time, each agent.

    `steps_done`: the steps the table's bytes cover when it was gathered mid-epoch (a divergence, a stop); by default
    every step of the epochs completed.
    """
    last = EpochRecord.from_dict(history[-1]) if history else EpochRecord(epoch=start_epoch, lr=0.0, train_loss=math.nan)
    steps_done = max(steps_done if steps_done is not None else last.epoch * steps_per_epoch, 1)
    resumed_rows = sum(1 for record in history if record["epoch"] <= start_epoch)  # epochs an earlier run trained
    sent, dense = (float(table[:, 3].sum()), float(table[:, 4].sum())) if table is not None else (0.0, 0.0)
    return RunSummary(
        status=status,
        algorithm=algorithm,
        agents=world_size,
        epochs_completed=int(last.epoch),
        consensus_test_accuracy=last.consensus_test_accuracy,
        consensus_test_loss=last.consensus_test_loss,
        agent_test_accuracy_mean=last.agent_test_accuracy_mean,
        agent_test_accuracy_min=last.agent_test_accuracy_min,
        agent_test_accuracy_max=last.agent_test_accuracy_max,
        final_train_loss=last.train_loss if history else None,
        consensus_distance=last.consensus_distance,
        parameter_divergence=last.parameter_divergence,
        # From the agents' last table: after a divergence it holds what was sent up to the step that stopped the run.
        mb_sent_per_agent=float(table[:, 3].mean()) / 1e6 if table is not None else last.mb_sent_per_agent,
        mb_sent_per_agent_min=float(table[:, 3].min()) / 1e6 if table is not None else last.mb_sent_per_agent_min,
        mb_sent_per_agent_max=float(table[:, 3].max()) / 1e6 if table is not None else last.mb_sent_per_agent_max,
        bytes_sent_by_round=dict(bytes_by_round),
        bytes_sent_per_step=float(table[:, 3].mean()) / steps_done if table is not None else None,
        compression_factor=_compression_factor(sent, dense),
        wall_seconds=seconds,
        seconds_per_epoch=seconds / max(len(history) - resumed_rows, 1),
        run_dir=str(run_dir),
        per_agent=per_agent_results(table),
    )


def _compression_factor(sent: float, dense: float) -> float | None:
    """Uncompressed over sent bytes; 1.0 for algorithms that never compress (they leave `dense_bytes_sent` at 0)."""
    if sent <= 0:
        return None
    return dense / sent if dense > 0 else 1.0


def per_agent_results(table: torch.Tensor | None) -> list[AgentResult]:
    """Rows of the gathered end-of-epoch table (AGENT_COLUMNS) as per-agent results."""
    if table is None:
        return []
    return [
        AgentResult(rank=rank, train_loss=float(row[0]), test_loss=float(row[1]), test_accuracy=float(row[2]) if math.isfinite(row[2]) else None,
                    mb_sent=float(row[3]) / 1e6, compute_seconds=float(row[5]), comm_seconds=float(row[6]))
        for rank, row in enumerate(table.tolist())
    ]
