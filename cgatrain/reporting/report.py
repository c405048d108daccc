"""`cgatrain report`: tables and plots from the run records of a sweep or of several runs.

    cgatrain report SWEEP_OR_RUN_DIR [...] [--by KEY ...] [--label KEY ...] [--metric KEY ...] [--out DIR]
        [--derive NAME=A-B ...] [--where KEY=V ...] [--best KEY METRIC] [--step-metric KEY ...] [--plot NAME ...]

Reads every run under all the given directories as one table (several sweeps merge into one report).
Writes DIR/report.md (Markdown tables, also printed), DIR/summary.csv (one row per method and
grouping values, mean and std over seeds), DIR/runs.csv (one row per run) and DIR/plots/*.png.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cgatrain.reporting import derived, keys, plots, step_plots
from cgatrain.reporting.runs import (
    DEFAULT_BY,
    Group,
    Run,
    find_runs,
    group_runs,
    label_keys,
)
from cgatrain.reporting.tables import (
    ACCURACY,
    COMMUNICATION,
    Column,
    report_markdown,
    write_group_csv,
    write_run_csv,
)

PLOT_HINT = 'plots skipped: matplotlib is not installed; pip install -e ".[plot]" (or pip install "cgatrain[plot]") to get them'


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="cgatrain report",
        description="Tables (Markdown, CSV) and PNG plots from the summary.json and metrics.jsonl of a sweep or of run directories.",
    )
    parser.add_argument("paths", nargs="+", type=Path, help="a multirun sweep directory, a run directory, or a folder of them")
    parser.add_argument("--by", nargs="+", default=list(DEFAULT_BY), metavar="KEY",
                        help="grouping keys: Hydra groups (topology, partition, data, experiment) or dotted config keys "
                             "(optim.lr, topology.graph); one plot panel per value of those that vary (default: %(default)s)")
    parser.add_argument("--label", nargs="+", default=None, metavar="KEY",
                        help="keys that name a method (default: algorithm and every other override that differs between runs, except seed)")
    parser.add_argument("--metric", nargs="+", default=[], metavar="KEY",
                        help="more record keys to tabulate and plot per epoch, e.g. qp_changed_fraction parameter_divergence; "
                             "KEY@last3 (mean of the last 3 epochs) and KEY@first>=0.9 (first epoch reaching 0.9) tabulate only")
    parser.add_argument("--derive", nargs="+", default=[], metavar="NAME=A-B",
                        help="new metrics from two record keys with - + * /, per epoch and final, "
                             "e.g. gap=agent_train_accuracy_mean-agent_test_accuracy_mean (then name it in --metric)")
    parser.add_argument("--where", nargs="+", default=[], metavar="KEY=V[,V]",
                        help="keep only the runs whose KEY has one of the values, e.g. partition=iid algorithm=cdsgd,cdmsgd")
    parser.add_argument("--best", nargs=2, default=None, metavar=("KEY", "METRIC"),
                        help="per table row, keep only the KEY value (e.g. algorithm.gamma) with the highest mean METRIC "
                             "(min:METRIC: lowest); an option whose runs did not all complete ranks last")
    parser.add_argument("--step-metric", nargs="+", default=[], metavar="KEY",
                        help="list-valued per-step metrics of metrics.jsonl to plot against the step, e.g. consensus_distance_by_step")
    parser.add_argument("--plot", nargs="+", default=None, metavar="NAME",
                        help="draw only these plots (metric keys, step metrics, per_agent_accuracy); default: all")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: FIRST_PATH/report)")
    parser.add_argument("--no-plots", action="store_true", help="write the tables only")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    """Run the report command; returns the exit status."""
    args = parse_args(argv)
    missing = [str(path) for path in args.paths if not path.is_dir()]
    if missing:
        print(f"error: not a directory: {', '.join(missing)}", file=sys.stderr)
        return 2
    try:
        runs, groups, by = _select(args)
    except ValueError as error:
        print("\n".join(f"error: {line}" for line in str(error).splitlines()), file=sys.stderr)
        return 2
    out = args.out or args.paths[0] / "report"
    out.mkdir(parents=True, exist_ok=True)
    extra = [_column(key, args.derive) for key in args.metric]
    columns = [*ACCURACY, *COMMUNICATION, *extra]
    write_group_csv(out / "summary.csv", groups, by, columns)
    write_run_csv(out / "runs.csv", groups, by, columns)
    written: list[Path] = []
    if not args.no_plots:
        if plots.matplotlib_available():
            written = _plot(groups, by, args, out / "plots")
        else:
            print(PLOT_HINT, file=sys.stderr)
    markdown = report_markdown(args.paths, runs, groups, by, extra, written)
    (out / "report.md").write_text(markdown)
    print(markdown)
    print(f"report files: {out} (report.md, summary.csv, runs.csv{', plots/' if written else ''})")
    return 0


def _select(args: argparse.Namespace) -> tuple[list[Run], list[Group], list[str]]:
    """The runs under the paths with derived metrics, filtered and tuned; their groups; the by-keys."""
    derived_metrics = [derived.parse_derived(spec) for spec in args.derive]
    conditions = derived.parse_where(args.where)
    found = find_runs(args.paths)
    if unknown := keys.problems(args, found):
        raise ValueError("\n".join(unknown))
    runs = derived.where(found, conditions)
    if not runs:
        what = f" matching --where {' '.join(args.where)} ({len(found)} runs in all)" if found else " (holding summary.json or config.yaml)"
        raise ValueError(f"no run directories{what} under {', '.join(map(str, args.paths))}")
    derived.add_derived(runs, derived_metrics)
    by = list(args.by)
    labels = args.label or label_keys(runs, by)
    if args.best is not None:
        key, metric = args.best
        labels = labels if key in labels else [*labels, key]
        runs = derived.keep_best(runs, by, labels, key, metric)
    groups = group_runs(runs, by, labels)
    if args.label:
        _warn_merged(groups, [key for key in label_keys(runs, by) if key not in labels])
    return runs, groups, by


def _warn_merged(groups: list[Group], hidden: list[str]) -> None:
    """Say so when a row averages runs that differ in a key --label left out (they would pass for seeds)."""
    for group in groups:
        for key in hidden:
            values = sorted({str(run.value(key)) if key == "algorithm" else str(run.overrides.get(key)) for run in group.runs})
            if len(values) > 1:
                print(f"warning: row {group.label!r} averages runs that differ in {key} ({', '.join(values)}) as if they were "
                      f"seeds; add --label {key} to tell them apart", file=sys.stderr)


def _percent_unit(key: str, derive: list[str]) -> str | None:
    """'%' for an accuracy, 'pp' for a difference of accuracies (a derived metric), else None."""
    base = key.split("@")[0]
    source = next((spec.split("=", 1)[1] for spec in derive if spec.split("=", 1)[0] == base), None)
    if source is None:
        return "%" if "accuracy" in base else None
    operands = derived.parse_derived(f"{base}={source}")
    if "accuracy" in operands.left and "accuracy" in operands.right and operands.op in "+-":
        return "pp" if operands.op == "-" else "%"
    return None


def _column(key: str, derive: list[str]) -> Column:
    """A table column for a --metric key: accuracies (and differences of them) in percent."""
    unit = _percent_unit(key, derive)
    if "@first" in key:
        return Column(key, key, 1.0, 1)
    if unit is not None:
        return Column(key, f"{key} ({unit})", 100.0, 2)
    return Column(key, key, 1.0, 4)


def _curve_style(key: str, derive: list[str]) -> tuple[str, str, float, bool] | None:
    """How plots.plot_curves draws a --metric key it does not know: accuracies in percent."""
    unit = _percent_unit(key, derive)
    return None if key in plots.CURVES or unit is None else (key.replace("_", " "), f"{key} ({unit})", 100.0, False)


def _plot(groups: list[Group], by: list[str], args: argparse.Namespace, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    wanted = set(args.plot) if args.plot else None
    curves = [*plots.CURVES, *(m for m in args.metric if m not in plots.CURVES and not derived.is_epoch_statistic(m))]
    drawn: dict[str, Path | None] = {}
    for key in curves:
        if wanted is None or key in wanted:
            drawn[key] = plots.plot_curves(groups, by, key, folder / f"{key}.png", _curve_style(key, args.derive))
    for key in args.step_metric:
        if wanted is None or key in wanted:
            drawn[key] = step_plots.plot_steps(groups, by, key, folder / f"{key}.png")
    if wanted is None or keys.PER_AGENT_PLOT in wanted:
        drawn[keys.PER_AGENT_PLOT] = plots.plot_agent_accuracy(groups, by, folder / f"{keys.PER_AGENT_PLOT}.png")
    for name in sorted((wanted or set()) - {key for key, path in drawn.items() if path is not None}):
        print(f"plot {name} not drawn: none of the selected runs recorded it", file=sys.stderr)
    return [path for path in drawn.values() if path is not None]
