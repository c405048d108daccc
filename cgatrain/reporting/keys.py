"""Checks of the keys named on a `cgatrain report` command line against the runs it reads.

A key that no run has (`--by optim.lrr`, `--metric no_such_metric`, `--plot no_such`) is refused
before anything is written, naming the key and the nearest keys the runs do have. Config keys are
the runs' Hydra choices, resolved config keys and override keys; metric keys are the run-record
schema's fields plus every other key the runs' summaries and metrics rows hold (see schema.py).
A `--by` key that only some runs have is fine: the others group under None; so are the default `--by`
keys (data, topology, partition), which every cgatrain run has.
"""

from __future__ import annotations

import argparse
import difflib
from collections.abc import Iterable, Sequence
from dataclasses import fields

from cgatrain.reporting import derived
from cgatrain.reporting.runs import DEFAULT_BY, Run
from cgatrain.reporting.schema import EpochRecord, RunSummary

# Schema fields that are not numbers to tabulate.
NOT_METRICS = {"extra", "per_agent", "run_dir", "error", "status", "algorithm", "bytes_sent_by_round"}
# Run.result computes these from the epoch rows.
COMPUTED = ("train_seconds_per_epoch", "compute_seconds_per_step", "comm_seconds_per_step")
PER_AGENT_PLOT = "per_agent_accuracy"


def config_keys(runs: Iterable[Run]) -> set[str]:
    """Every key Run.value can answer for some run: Hydra choices, dotted config keys, group names, overrides."""
    keys: set[str] = set()
    for run in runs:
        keys.update(run.choices, run.config, run.overrides)
        keys.update(key.rsplit(".", 1)[0] for key in run.config if key.endswith((".name", ".graph")))
    return keys


def _extras(runs: Iterable[Run]) -> Iterable[tuple[str, object]]:
    for run in runs:
        if run.summary is not None:
            yield from run.summary.extra.items()
        for row in run.metrics:
            yield from row.extra.items()


def metric_keys(runs: Sequence[Run]) -> set[str]:
    """The schema's numeric fields, the computed timings and every scalar extra key a run recorded."""
    schema = {item.name for record in (EpochRecord, RunSummary) for item in fields(record)} - NOT_METRICS
    return schema | set(COMPUTED) | {key for key, value in _extras(runs) if not isinstance(value, list)}


def step_metric_keys(runs: Sequence[Run]) -> set[str]:
    """The list-valued keys of the runs' metrics.jsonl rows (per-step metrics)."""
    return {key for key, value in _extras(runs) if isinstance(value, list)}


def _unknown(option: str, key: str, what: str, known: Iterable[str], hint: str = "") -> str:
    """'--by optim.lrr: no run has config key optim.lrr (did you mean optim.lr?)'."""
    known = sorted(known)
    close = difflib.get_close_matches(key, known, n=3, cutoff=0.6)
    if close:
        hint = hint or f"did you mean {' or '.join(close)}?"
    elif not hint:
        hint = f"known: {', '.join(known)}" if known else "the runs have none"
    return f"{option} {key}: no run has {what} {key} ({hint})"


def problems(args: argparse.Namespace, runs: Sequence[Run]) -> list[str]:
    """One line per key of the command line that no run has; empty when every key is known."""
    configs, metrics, steps = config_keys(runs), metric_keys(runs), step_metric_keys(runs)
    found: list[str] = []
    configs_hint = "" if configs else f"none of the {len(runs)} runs has a config.yaml"

    def config(option: str, key: str) -> None:
        if key not in configs:
            found.append(_unknown(option, key, "config key", configs, configs_hint))

    def metric(option: str, key: str, names: set[str]) -> None:
        base = key.split("@")[0] if derived.is_epoch_statistic(key) else key
        if base in names:
            return
        hint = f"a per-step metric: use --step-metric {base}" if base in steps else ""
        found.append(_unknown(option, key, "metric", names, hint))

    for key in args.by:
        if key not in DEFAULT_BY:  # the default grouping stays valid for records that lack it (hand-written, older)
            config("--by", key)
    for key in args.label or []:
        config("--label", key)
    for key, _ in derived.parse_where(args.where):
        config("--where", key)
    names = set(metrics)
    for spec in args.derive:
        item = derived.parse_derived(spec)
        for operand in (item.left, item.right):
            metric(f"--derive {spec}:", operand, names)
        names.add(item.name)  # later derivations and --metric may use it
    for key in args.metric:
        metric("--metric", key, names)
    if args.best is not None:
        config("--best", args.best[0])
        metric("--best", args.best[1].removeprefix("min:").removeprefix("max:"), names)
    for key in args.step_metric:
        if key not in steps:
            hint = "" if steps else "no run recorded a list-valued metric; consensus_distance_by_step comes with train.consensus_every=k"
            found.append(_unknown("--step-metric", key, "per-step metric", steps, hint))
    found += _plot_problems(args, names, steps)
    return found


def _plot_problems(args: argparse.Namespace, metrics: set[str], steps: set[str]) -> list[str]:
    """--plot names: the default curves, --metric and --step-metric keys, per_agent_accuracy."""
    from cgatrain.reporting.plots import CURVES

    drawable = {*CURVES, *(m for m in args.metric if not derived.is_epoch_statistic(m)), *args.step_metric, PER_AGENT_PLOT}
    found = []
    for name in args.plot or []:
        if name in drawable:
            continue
        if name in steps:
            hint = f"add --step-metric {name}"
        elif name in metrics:
            hint = f"add --metric {name}"
        else:
            hint = ""
        found.append(_unknown("--plot", name, "plot", drawable, hint).replace(f"no run has plot {name}", f"no plot named {name}"))
    return found
