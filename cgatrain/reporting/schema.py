"""The run records cgatrain writes and reads: one schema, versioned, defined only here.

A run directory holds `summary.json` (one `RunSummary`) and `metrics.jsonl` (one `EpochRecord` per
line). The trainer writes them through these classes; the CLI status line, `cgatrain report` and
the docs scripts read them through `load_summary` and `load_metrics`. Keys an algorithm adds to its
epoch rows (e.g. CGA's `qp_changed_fraction`) live in `EpochRecord.extra` and are written flat.

Version history: 1 (no `schema_version` key): `mb_sent_per_agent` in summary.json was rank 0's own
figure and `mb_sent_per_agent_mean` the mean. 2: every `mb_sent_per_agent` is the mean over agents,
with `_min`/`_max`; summary.json gains `per_agent`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

SCHEMA_VERSION = 2
METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"
CONFIG_FILE = "config.yaml"
LOG_FILE = "cgatrain.log"
# Hydra's record of the overrides a run started with; Hydra rewrites its overrides.yaml when the run is resumed in place.
FIRST_OVERRIDES_FILE = ".hydra/first_overrides.yaml"
# completed and diverged runs have results; failed ones carry `error`; interrupted ones stopped early.
STATUSES = ("completed", "diverged", "failed", "interrupted")

Record = TypeVar("Record", bound="_Flat")


def _finite(value: Any) -> Any:
    """NaN and Inf become None so that every record is strict JSON."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


class _Flat:
    """A dataclass written as one flat JSON object; unknown keys go to `extra` when it has one."""

    versioned = True  # top-level records carry schema_version; nested ones do not

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"schema_version": SCHEMA_VERSION} if self.versioned else {}
        for item in fields(self):  # type: ignore[arg-type]
            value = getattr(self, item.name)
            if item.name == "extra":
                out.update({k: _finite(v) for k, v in value.items()})
            elif item.name == "per_agent":
                out["per_agent"] = [agent.to_dict() for agent in value]
            else:
                out[item.name] = _finite(value)
        return out

    @classmethod
    def from_dict(cls: type[Record], raw: Mapping[str, Any]) -> Record:
        names = {item.name for item in fields(cls)}  # type: ignore[arg-type]
        known = {k: v for k, v in raw.items() if k in names and k not in ("extra", "per_agent")}
        record = cls(**known)
        if "extra" in names:
            record.extra.update({k: v for k, v in raw.items() if k not in names and k != "schema_version"})  # type: ignore[attr-defined]
        return record


@dataclass
class AgentResult(_Flat):
    """One agent at the end of a run (its last completed epoch)."""

    versioned = False

    rank: int
    test_accuracy: float | None = None  # its own model on the test set, as a fraction
    test_loss: float | None = None
    train_loss: float | None = None  # mean over its steps in the last epoch
    mb_sent: float = 0.0  # MB it sent in the algorithm's rounds, cumulative
    compute_seconds: float = 0.0  # cumulative time outside communication
    comm_seconds: float = 0.0  # cumulative time blocked in the algorithm's communication


@dataclass
class EpochRecord(_Flat):
    """One line of metrics.jsonl: the whole run after one epoch (means are over agents)."""

    epoch: int
    lr: float
    train_loss: float
    consensus_test_loss: float | None = None  # the averaged model x_bar
    consensus_test_accuracy: float | None = None
    agent_test_loss_mean: float | None = None  # each agent's own model
    agent_test_accuracy_min: float | None = None
    agent_test_accuracy_mean: float | None = None
    agent_test_accuracy_max: float | None = None
    consensus_distance: float | None = None  # 1/n sum_i ||x_i - x_bar||^2
    parameter_divergence: float | None = None  # 1/n sum_i ||x_i - x_bar||
    mb_sent_per_agent: float | None = None  # cumulative MB sent, mean over agents
    mb_sent_per_agent_min: float | None = None
    mb_sent_per_agent_max: float | None = None
    epoch_seconds: float | None = None
    compute_seconds_per_step: float | None = None
    comm_seconds_per_step: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # the algorithm's own metrics, and any other key


@dataclass
class RunSummary(_Flat):
    """summary.json: how a run ended and its final numbers."""

    status: str
    algorithm: str | None = None
    agents: int | None = None
    epochs_completed: int = 0
    consensus_test_accuracy: float | None = None
    consensus_test_loss: float | None = None
    agent_test_accuracy_mean: float | None = None
    agent_test_accuracy_min: float | None = None
    agent_test_accuracy_max: float | None = None
    final_train_loss: float | None = None
    consensus_distance: float | None = None
    parameter_divergence: float | None = None
    mb_sent_per_agent: float | None = None  # mean over agents, as in metrics.jsonl
    mb_sent_per_agent_min: float | None = None
    mb_sent_per_agent_max: float | None = None
    bytes_sent_per_step: float | None = None  # mean over agents
    bytes_sent_by_round: dict[str, int] = field(default_factory=dict)  # rank 0's bytes per named round
    compression_factor: float | None = None  # uncompressed bytes of the same rounds / bytes sent, all agents
    compressor: str | None = None  # the compressor it ran with, `auto` resolved (`topk (fraction=0.01)`); null: uncompressed
    wall_seconds: float | None = None
    seconds_per_epoch: float | None = None
    run_dir: str | None = None
    error: str | None = None
    per_agent: list[AgentResult] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> RunSummary:
        raw = _upgrade_summary(raw)
        summary = super().from_dict(raw)
        summary.per_agent = [AgentResult.from_dict(agent) for agent in raw.get("per_agent") or []]
        return summary


def _upgrade_summary(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Read a version-1 summary: its `mb_sent_per_agent` was rank 0's, `mb_sent_per_agent_mean` the mean."""
    raw = dict(raw)
    if int(raw.get("schema_version", 1)) < 2 and "mb_sent_per_agent_mean" in raw:
        raw["mb_sent_per_agent"] = raw.pop("mb_sent_per_agent_mean")
    raw.pop("schema_version", None)
    return raw


def write_json(path: Path, content: Mapping[str, Any]) -> None:
    """Write a JSON file atomically, NaN and Inf as null."""
    partial = path.with_suffix(f"{path.suffix}.{os.getpid()}.partial")  # agents that fail together may all write it
    partial.write_text(json.dumps({k: _finite(v) for k, v in content.items()}, indent=2) + "\n")
    partial.replace(path)


def write_summary(run_dir: Path, summary: RunSummary) -> None:
    write_json(run_dir / SUMMARY_FILE, summary.to_dict())


def load_summary(run_dir: Path) -> RunSummary | None:
    """The run's summary.json, or None when there is none (the run is still going or never started)."""
    path = Path(run_dir) / SUMMARY_FILE
    if not path.exists():
        return None
    return RunSummary.from_dict(json.loads(path.read_text()))


def load_metrics(run_dir: Path) -> list[EpochRecord]:
    """The run's metrics.jsonl rows, in order; a torn last line (a killed run) is skipped."""
    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(EpochRecord.from_dict(json.loads(line)))
        except (json.JSONDecodeError, TypeError):
            continue
    return rows


def metric_value(record: EpochRecord | RunSummary, key: str) -> Any:
    """A field or an extra key of a record, None when absent."""
    if key in {item.name for item in dataclasses.fields(record)}:
        return getattr(record, key)
    return record.extra.get(key)
