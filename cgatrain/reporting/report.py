"""`cgatrain report`: tables and plots from the run records of a sweep or of several runs.

    cgatrain report SWEEP_OR_RUN_DIR [...] [--by KEY ...] [--label KEY ...] [--metric KEY ...] [--out DIR]

Writes DIR/report.md (Markdown tables, also printed), DIR/summary.csv (one row per method and
grouping values, mean and std over seeds), DIR/runs.csv (one row per run) and DIR/plots/*.png.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cgatrain.reporting import plots
from cgatrain.reporting.runs import DEFAULT_BY, find_runs, group_runs, label_keys
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
                        help="more record keys to tabulate and plot per epoch, e.g. qp_changed_fraction parameter_divergence")
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
    runs = find_runs(args.paths)
    if not runs:
        print(f"error: no run directories (holding summary.json or config.yaml) under {', '.join(map(str, args.paths))}", file=sys.stderr)
        return 2
    by = list(args.by)
    groups = group_runs(runs, by, args.label or label_keys(runs, by))
    out = args.out or args.paths[0] / "report"
    out.mkdir(parents=True, exist_ok=True)
    extra = [Column(key, key, 1.0, 4) for key in args.metric]
    columns = [*ACCURACY, *COMMUNICATION, *extra]
    write_group_csv(out / "summary.csv", groups, by, columns)
    write_run_csv(out / "runs.csv", groups, by, columns)
    written: list[Path] = []
    if not args.no_plots:
        if plots.matplotlib_available():
            written = _plot(groups, by, args.metric, out / "plots")
        else:
            print(PLOT_HINT, file=sys.stderr)
    markdown = report_markdown(args.paths, runs, groups, by, extra, written)
    (out / "report.md").write_text(markdown)
    print(markdown)
    print(f"report files: {out} (report.md, summary.csv, runs.csv{', plots/' if written else ''})")
    return 0


def _plot(groups: list, by: list[str], metrics: list[str], folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for key in [*plots.CURVES, *(m for m in metrics if m not in plots.CURVES)]:
        path = plots.plot_curves(groups, by, key, folder / f"{key}.png")
        if path is not None:
            written.append(path)
    path = plots.plot_agent_accuracy(groups, by, folder / "per_agent_accuracy.png")
    return [*written, path] if path is not None else written
