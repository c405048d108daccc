"""Shared runner of the paper-table scripts: one `cgatrain` run per table cell, then the table.

Each script lists its cells (a row label, a column label, the overrides); this module runs them one after
another as a user would (`python -m cgatrain ...`), skips cells whose algorithm this checkout lacks, and
writes results.json and table.md (the consensus model's test accuracy per cell) into the output folder.

Common flags: --data-root (where the data sets are, default data/), --out (default
reproductions/out/<script>), --agents (replace the paper's agent counts, e.g. on a small machine),
--epochs, --smoke (a few steps of every method of the table, each once: for tests and first tries),
--dry-run (print the commands only, ready to paste); anything after `--` is passed to every run as extra
overrides (`-- data=fake` tries a script without the data sets; `-- resume=auto` continues an interrupted
table: finished cells are not run again).

Before the first run, the first cell of each data set is composed and validated in-process (a missing
data set or a bad override ends the script with status 2 in seconds, before any run). A cell that fails
has its error printed at once and listed under the table.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shlex
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cgatrain.reporting.schema import load_summary

SMOKE_MAX_CELLS = 10  # above this, --smoke runs each method once on one data set/model only
SMOKE = ["train.epochs=1", "train.steps_per_epoch=2", "train.batch_size=4", "train.progress_bar=false", "checkpoint.enabled=false", "comm.timeout_s=60"]


@dataclass
class Cell:
    """One run of a table: where its number goes and the overrides that produce it."""

    row: str
    column: str
    overrides: list[str]
    group: str = ""  # the part of the table the cell belongs to (a model, a table): a label only
    agents: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def algorithm(self) -> str | None:
        chosen = [o.split("=", 1)[1] for o in self.overrides if o.startswith("algorithm=")]
        return chosen[-1] if chosen else None

    @property
    def method(self) -> tuple[str, ...]:
        """The algorithm and compression overrides: what tells the table's methods apart."""
        return tuple(o for o in self.overrides if o.lstrip("~+").split("=", 1)[0].split(".")[0] in ("algorithm", "compressor"))

    @property
    def data_choice(self) -> tuple[str, ...]:
        """The experiment/data overrides: which data set and model the cell trains."""
        return tuple(o for o in self.overrides if o.startswith(("experiment=", "data=")))


def parse_args(description: str, argv: Sequence[str] | None) -> tuple[argparse.Namespace, list[str]]:
    """The common flags; returns (flags, extra overrides after `--`)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data-root", default="data", help="folder holding the data sets in torchvision's layout")
    parser.add_argument("--out", default=None, help="output folder (default reproductions/out/<script>)")
    parser.add_argument("--agents", type=int, nargs="*", default=None, help="agent counts to run instead of the paper's")
    parser.add_argument("--epochs", type=int, default=None, help="epochs instead of the experiment file's")
    parser.add_argument("--smoke", action="store_true", help="a few steps of every method of the table, each once")
    parser.add_argument("--dry-run", action="store_true", help="print the commands without running them")
    return parser.parse_args(argv), extra


def _registered_algorithms() -> set[str]:
    from cgatrain.algorithms import ALGORITHMS

    return set(ALGORITHMS)


def smoke_cells(cells: list[Cell]) -> list[Cell]:
    """One cell per (data set/model, method), the first (smallest agent count/topology) of each; over
    SMOKE_MAX_CELLS, one per method, each on a data set/model no earlier pick covers where one is left."""
    per_setting: dict[tuple, Cell] = {}
    for cell in cells:
        per_setting.setdefault((cell.data_choice, cell.method), cell)
    if len(per_setting) <= SMOKE_MAX_CELLS:
        return list(per_setting.values())
    per_method: dict[tuple[str, ...], list[Cell]] = {}
    for cell in cells:
        per_method.setdefault(cell.method, []).append(cell)
    covered: set[tuple[str, ...]] = set()
    chosen: list[Cell] = []
    for group in per_method.values():
        cell = next((c for c in group if c.data_choice not in covered), group[0])
        covered.add(cell.data_choice)
        chosen.append(cell)
    return sorted(chosen, key=lambda c: next(i for i, other in enumerate(cells) if other is c))


def _select(cells: list[Cell], args: argparse.Namespace) -> list[Cell]:
    known = _registered_algorithms()
    chosen: list[Cell] = []
    missing = sorted({c.algorithm for c in cells if c.algorithm is not None and c.algorithm not in known})
    if missing:
        print(f"skipped: the cells of {', '.join(missing)} (not algorithms of this checkout)")
    for cell in cells:
        if cell.algorithm in missing:
            continue
        chosen.append(cell)
    if args.smoke:
        chosen = smoke_cells(chosen)
    if args.agents:
        # the paper's agent counts replaced by the requested ones; other settings kept, duplicates dropped
        expanded: dict[tuple[str, str], Cell] = {}
        for cell in chosen:
            for count in [None] if cell.agents is None else args.agents:
                row = cell.row if count is None else cell.row.replace(f"{cell.agents} agents", f"{count} agents")
                column = cell.column if count is None else cell.column.replace(f"({cell.agents})", f"({count})")
                expanded.setdefault((row, column), Cell(row, column, cell.overrides, cell.group, count))
        chosen = list(expanded.values())
    return chosen


@functools.cache
def _data_takes_root(data_choice: tuple[str, ...]) -> bool:
    """Whether the data config these experiment/data overrides compose has a `root` (`data=fake` has none)."""
    from cgatrain.compose import compose_config

    try:
        return "root" in compose_config(list(data_choice)).get("data", {})
    except Exception:  # a bad experiment/data choice: the precheck (or the run) names it
        return True


def _overrides(cell: Cell, args: argparse.Namespace, extra: list[str], run_dir: Path, data_root: str) -> list[str]:
    data_choice = tuple(o for o in [*cell.overrides, *extra] if o.startswith(("experiment=", "data=")))
    root = [f"data.root={data_root}"] if _data_takes_root(data_choice) else []
    overrides = [*cell.overrides, *root, f"hydra.run.dir={run_dir}"]
    if cell.agents is not None:
        overrides.append(f"agents={cell.agents}")
    if args.epochs is not None:
        overrides.append(f"train.epochs={args.epochs}")
    return overrides + (SMOKE if args.smoke else []) + extra


def _print_commands(jobs_overrides: list[list[str]]) -> int:
    try:
        for overrides in jobs_overrides:
            print(shlex.join([sys.executable, "-m", "cgatrain", *overrides]), flush=True)
    except BrokenPipeError:  # `--dry-run | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes at exit
    return 0


def precheck(jobs: list[tuple[str, list[str]]]) -> list[str]:
    """The problems of the first (name, overrides) job of each data set (`experiment=`/`data=` choice), as `cgatrain` would refuse them."""
    from cgatrain.precheck import check_job

    firsts: dict[tuple[str, ...], tuple[str, list[str]]] = {}
    for name, overrides in jobs:
        firsts.setdefault(tuple(o for o in overrides if o.startswith(("experiment=", "data="))), (name, overrides))
    return [f"{name}: {problem}" for name, overrides in firsts.values() for problem in check_job(overrides)]


def _error(summary: dict, stderr: str) -> str:
    """Why a cell failed: its summary's error, else the last lines the run wrote to stderr."""
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    return str(summary.get("error") or "\n".join(lines[-5:]) or "no output")


def run_table(name: str, title: str, cells: list[Cell], argv: Sequence[str] | None = None) -> int:
    """Run a table's cells; write results.json and table.md; exit status 1 if any run failed, 2 if none could start."""
    args, extra = parse_args(title, argv)
    out = Path(args.out or Path("reproductions") / "out" / name).resolve()
    data_root = str(Path(args.data_root).resolve())
    jobs = [(cell, out / f"{index:03d}") for index, cell in enumerate(_select(cells, args))]
    jobs_overrides = [_overrides(cell, args, extra, run_dir, data_root) for cell, run_dir in jobs]
    if args.agents and any(cell.agents is not None for cell in cells):
        title += f" (agents: {', '.join(map(str, args.agents))})"
    if args.dry_run:
        return _print_commands(jobs_overrides)
    if problems := precheck([(f"{cell.row} / {cell.column}", overrides) for (cell, _), overrides in zip(jobs, jobs_overrides)]):
        print("error: the table's runs cannot start; no run was made:\n  - " + "\n  - ".join(problems), file=sys.stderr)
        return 2
    results = []
    for (cell, run_dir), overrides in zip(jobs, jobs_overrides):
        command = [sys.executable, "-m", "cgatrain", *overrides]
        print("+ " + shlex.join(command), flush=True)
        completed = subprocess.run(command, check=False, capture_output=True, text=True)
        record = load_summary(run_dir)  # the run record's one schema, as `cgatrain report` reads it
        summary = record.to_dict() if record is not None else {"status": "failed"}
        if completed.returncode != 0:
            summary["error"] = _error(summary, completed.stderr)
            print(f"  failed ({cell.row} / {cell.column}): {summary['error']}", file=sys.stderr, flush=True)
        results.append({"row": cell.row, "column": cell.column, "overrides": overrides, "returncode": completed.returncode, "summary": summary})
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    table = format_table(title, results)
    (out / "table.md").write_text(table)
    print(table)
    return 0 if all(r["returncode"] == 0 for r in results) else 1


def format_table(title: str, results: list[dict]) -> str:
    """Markdown: one row per row label, one column per column label, the consensus test accuracy in each cell."""
    rows = list(dict.fromkeys(r["row"] for r in results))
    columns = list(dict.fromkeys(r["column"] for r in results))
    cell = {(r["row"], r["column"]): r["summary"] for r in results}

    def text(summary: dict | None) -> str:
        if summary is None:
            return ""
        accuracy = summary.get("consensus_test_accuracy")
        return f"{accuracy:.2%}" if summary.get("status") == "completed" and accuracy is not None else summary.get("status", "?")

    lines = [f"## {title}", "", "| | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    lines += [f"| {row} | " + " | ".join(text(cell.get((row, column))) for column in columns) + " |" for row in rows]
    failed = [r for r in results if r.get("returncode", 0) != 0]
    if failed:
        lines += ["", f"Failed cells ({len(failed)}):"]
        lines += [f"- {r['row']} / {r['column']}: " + str(r["summary"].get("error") or "no output").replace("\n", " | ") for r in failed]
    return "\n".join(lines) + "\n"
