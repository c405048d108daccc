"""Finding run directories under a sweep and grouping them into table rows and plot panels.

A run is any directory holding `summary.json` or `config.yaml` (a multirun job, a single run, a
torchrun/srun run). A key such as `topology` or `optim.lr` is looked up first among the Hydra
choices the run was composed with (`topology` -> `ring`, `experiment` -> `sp_top10`), then in its
resolved config (`optim.lr` -> 0.02).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from cgatrain.reporting.schema import (
    CONFIG_FILE,
    FIRST_OVERRIDES_FILE,
    SUMMARY_FILE,
    EpochRecord,
    RunSummary,
    load_metrics,
    load_summary,
    metric_value,
)

SKIPPED_FOLDERS = {".hydra", ".submitit", "checkpoints", "wandb", "report"}
# Keys that never tell two methods apart: seeds are averaged over, the rest is bookkeeping.
NOT_A_LABEL = ("seed", "resume", "hydra", "logger", "checkpoint", "train.progress_bar", "comm.timeout_s", "slurm")
DEFAULT_BY = ("data", "topology", "partition")


@dataclass
class Run:
    """One run directory: its config, Hydra choices and overrides, summary and metrics."""

    path: Path
    config: dict[str, Any]
    choices: dict[str, Any]
    overrides: dict[str, str]
    summary: RunSummary | None
    metrics: list[EpochRecord] = field(default_factory=list)

    @property
    def status(self) -> str:
        return self.summary.status if self.summary is not None else "running"

    @property
    def seed(self) -> Any:
        return self.config.get("seed")

    def value(self, key: str) -> Any:
        """A Hydra choice, else a dotted config key (a group's `name` or `graph`), else None."""
        if key in self.choices:
            return self.choices[key]
        for name in (key, f"{key}.name", f"{key}.graph"):  # runs without Hydra's record (torchrun, srun)
            if name in self.config:
                return self.config[name]
        return None

    def result(self, key: str) -> float | None:
        """A final number: the summary's, else the last epoch's, else a mean over epochs for timings.

        `KEY@last3` and `KEY@first>=0.9` are statistics over the epochs (see reporting/derived.py).
        """
        if "@" in key:
            # imported here: derived.py builds on this module
            from cgatrain.reporting.derived import epoch_statistic

            return epoch_statistic(self.metrics, key)
        if key == "train_seconds_per_epoch":
            return _mean([row.epoch_seconds for row in self.metrics])
        if key in ("comm_seconds_per_step", "compute_seconds_per_step"):
            return _mean([metric_value(row, key) for row in self.metrics])
        value = metric_value(self.summary, key) if self.summary is not None else None
        if value is None and self.metrics:
            value = metric_value(self.metrics[-1], key)
        return _number(value)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _mean(values: Iterable[Any]) -> float | None:
    numbers = [n for n in (_number(v) for v in values) if n is not None]
    return statistics.fmean(numbers) if numbers else None


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _natural(path: Path) -> list[tuple[int, int, str]]:
    """multirun/2 before multirun/10."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in path.parts]


def _read_yaml(path: Path) -> Any:
    return OmegaConf.to_container(OmegaConf.load(path), resolve=False) if path.exists() else None


def load_run(path: Path) -> Run:
    """Read one run directory."""
    config = _flatten(_read_yaml(path / CONFIG_FILE) or {})
    hydra = _read_yaml(path / ".hydra" / "hydra.yaml") or {}
    choices = {k: v for k, v in ((hydra.get("hydra") or {}).get("runtime", {}).get("choices") or {}).items() if not k.startswith("hydra")}
    origin = [load_run(folder) for folder in _resumed_from(path, config)]
    if origin:  # Hydra recorded the resume command's choices (today's defaults): the run's own are its origin's,
        # for each group whose section it kept (resume_override may have changed one)
        own = _saved_choices(choices, config)
        choices = {group: choice if _section(origin[0].config, group) == _section(config, group) else own.get(group, choice)
                   for group, choice in origin[0].choices.items()}
    elif config.get("resume"):  # resumed in place: the origin's record was overwritten, config.yaml tells
        choices = _saved_choices(choices, config)
    summary = load_summary(path)
    if not choices and "algorithm.name" in config:
        choices = {"algorithm": config["algorithm.name"]}
    elif not choices and summary is not None and summary.algorithm:  # failed before writing config.yaml
        choices = {"algorithm": summary.algorithm}
    overrides: dict[str, str] = dict(origin[0].overrides) if origin else {}  # a resumed run keeps those it started with
    started_with = [] if origin else _read_yaml(path / FIRST_OVERRIDES_FILE) or []  # resumed in place: what it started with
    for item in [*started_with, *(_read_yaml(path / ".hydra" / "overrides.yaml") or [])]:
        key, _, value = str(item).lstrip("+~").partition("=")
        overrides[key] = value
    return Run(path, config, choices, overrides, summary, load_metrics(path))


def _resumed_from(path: Path, config: Mapping[str, Any]) -> list[Path]:
    """The run directory this run resumed, when it is another one that still exists."""
    from cgatrain.resume import saved_run_dir

    origin = saved_run_dir(str(config["resume"])) if config.get("resume") else None
    return [origin] if origin is not None and origin != path.resolve() else []


def _section(config: Mapping[str, Any], group: str) -> dict[str, Any]:
    """The flattened keys of one section."""
    return {key: value for key, value in config.items() if key.startswith(group + ".")}


def _saved_choices(choices: Mapping[str, Any], config: Mapping[str, Any]) -> dict[str, Any]:
    """A resumed run's choices: Hydra recorded the resume command's (today's defaults), config.yaml the run's own."""
    kept = {}
    for group, choice in choices.items():
        saved = [config[key] for key in (f"{group}.name", f"{group}.graph") if key in config]
        if f"{group}.schedule" in config:
            saved = saved or ["schedule"]  # a time-varying topology without a name
        kept[group] = choice if not saved or choice in saved else saved[0]
    return kept


def find_runs(roots: Sequence[Path]) -> list[Run]:
    """Every run directory under the given folders (or the folders themselves), in path order."""
    found: set[Path] = set()
    for root in roots:
        for marker in [*root.rglob(SUMMARY_FILE), *root.rglob(CONFIG_FILE)]:
            if not SKIPPED_FOLDERS.intersection(marker.relative_to(root).parts[:-1]):
                found.add(marker.parent)
    return [load_run(path) for path in sorted(found, key=_natural)]


def varying_keys(runs: Sequence[Run], keys: Iterable[str]) -> list[str]:
    """The keys whose value differs between runs."""
    return [key for key in keys if len({repr(run.value(key)) for run in runs}) > 1]


def label_keys(runs: Sequence[Run], by: Sequence[str]) -> list[str]:
    """`algorithm`, then every override that differs between runs and is not a grouping key."""
    keys = sorted({key for run in runs for key in run.overrides})
    changing = [key for key in keys if len({run.overrides.get(key) for run in runs}) > 1]
    return ["algorithm", *(k for k in changing if k != "algorithm" and k not in by and not k.startswith(NOT_A_LABEL))]


def method_label(run: Run, keys: Sequence[str]) -> str:
    """`cga`, or `cga, algorithm.momentum=0.98` when a label key was overridden for this run."""
    head, *rest = keys
    parts = [str(run.value(head))]
    for key in rest:
        if key in run.overrides:
            parts.append(f"{key}={run.overrides[key]}")
    return ", ".join(parts)


@dataclass
class Group:
    """The runs of one table row: the same method and grouping values, over seeds."""

    by_values: tuple[Any, ...]
    label: str
    runs: list[Run]

    def finished(self) -> list[Run]:
        return [run for run in self.runs if run.status == "completed"]

    def stats(self, key: str) -> tuple[float | None, float | None, int]:
        """Mean, sample standard deviation (None for fewer than 2) and count over completed runs."""
        values = [v for v in (run.result(key) for run in self.finished()) if v is not None]
        if not values:
            return None, None, 0
        return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None, len(values)

    def status(self) -> str:
        """`2 completed`, `1 completed, 1 diverged (epoch 3)`, ..."""
        counts: dict[str, list[Run]] = {}
        for run in self.runs:
            counts.setdefault(run.status, []).append(run)
        parts = []
        for status, runs in counts.items():
            text = f"{len(runs)} {status}"
            if status == "diverged":
                text += f" (epoch {', '.join(str(r.summary.epochs_completed + 1) for r in runs if r.summary)})"
            parts.append(text)
        return ", ".join(parts)


def group_runs(runs: Sequence[Run], by: Sequence[str], labels: Sequence[str]) -> list[Group]:
    """Runs grouped by (by-values, method label), in a stable order: by-values, then first appearance."""
    groups: dict[tuple[tuple[Any, ...], str], Group] = {}
    for run in runs:
        by_values = tuple(run.value(key) for key in by)
        label = method_label(run, labels)
        groups.setdefault((by_values, label), Group(by_values, label, [])).runs.append(run)
    for group in groups.values():
        group.runs.sort(key=lambda run: (run.seed is None, str(run.seed)))
    # Grouping values in the order they first appear (the sweep's order), methods likewise.
    first: list[dict[str, int]] = [{} for _ in by]
    for group in groups.values():
        for position, value in enumerate(group.by_values):
            first[position].setdefault(repr(value), len(first[position]))
    return sorted(groups.values(), key=lambda g: tuple(first[i][repr(v)] for i, v in enumerate(g.by_values)))
