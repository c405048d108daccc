"""The end of a `-m` sweep: one line per job (status, scores, the overrides that vary), whatever ran the jobs.

Hydra calls `SweepSummary.on_multirun_end` in the command's own process once every job has returned,
also when submitit ran the jobs as processes or Slurm jobs of their own; the jobs' `summary.json`
files are the only record read, so every launcher's sweep that runs to its end gives the same table
and exit status. A stopped sweep gets instead the command that continues it (`continuation`).
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from hydra.experimental.callback import Callback

from cgatrain.reporting.schema import RunSummary, load_summary
from cgatrain.train.lifecycle import program

# The directories of the last sweep's failed jobs: the command exits non-zero when there are any.
FAILED_JOB_DIRS: list[str] = []
# The sweep Hydra started and has not summarized yet: (dir, subdir template, task overrides). A Ctrl-C
# meanwhile stops a sweep, not a start-up.
OPEN_SWEEPS: list[tuple[Path, str, list[str] | None]] = []
JOB_NUMBER_SUBDIR = "${hydra.job.num}"
AGENTS_MEAN = "agents' mean"  # column title: the mean of the agents' own test accuracies


@dataclass
class Job:
    """One sweep job as its directory records it."""

    number: int
    directory: Path
    overrides: list[str]
    summary: RunSummary | None  # None: the job died before writing summary.json

    @property
    def status(self) -> str:
        if self.summary is None:
            return "no summary"
        return "refused" if self.refusal else self.summary.status

    @property
    def refusal(self) -> str | None:
        """Why this command refused to resume the job (its earlier record is kept), None when it did not."""
        return self.summary.extra.get("refused") if self.summary is not None else None

    @property
    def failed(self) -> bool:
        return self.summary is None or self.summary.status == "failed" or self.refusal is not None


def find_jobs(sweep_dir: Path, subdir: str, planned: list[list[str]] | None) -> list[Job]:
    """This sweep's jobs, numbered as Hydra numbered them: sweep_dir/N under the default subdir; under another
    subdir, the job folder whose recorded overrides are job N's; without a plan (another sweeper), every job found."""
    if planned is not None and subdir == JOB_NUMBER_SUBDIR:
        return [_read_job(number, sweep_dir / str(number), job) for number, job in enumerate(planned)]
    found = sorted({marker.parent.parent for marker in sweep_dir.glob("**/.hydra/overrides.yaml")},
                   key=lambda path: [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in path.parts])
    if planned is None:
        return read_jobs(found)
    by_overrides = {tuple(_overrides(directory)): directory for directory in found}  # an earlier sweep's folders drop out
    if not any(tuple(job) in by_overrides for job in planned):
        return read_jobs(found)  # overrides recorded in another form: every job found rather than none
    return [_read_job(number, by_overrides.get(tuple(job), sweep_dir / "(not started)"), job) for number, job in enumerate(planned)]


def read_jobs(directories: Sequence[Path]) -> list[Job]:
    """Each directory's overrides (.hydra/overrides.yaml) and summary, numbered in order."""
    return [_read_job(number, directory, None) for number, directory in enumerate(directories)]


def _read_job(number: int, directory: Path, planned: list[str] | None) -> Job:
    """One job; a job that never made its folder shows the overrides it was planned with."""
    recorded = _overrides(directory)
    return Job(number, directory, recorded or list(planned or []), load_summary(directory))


def _overrides(directory: Path) -> list[str]:
    path = directory / ".hydra" / "overrides.yaml"
    return [str(item) for item in yaml.safe_load(path.read_text()) or []] if path.exists() else []


def format_jobs(sweep_dir: Path, jobs: Sequence[Job]) -> str:
    """A table of the jobs, with the overrides that differ between them, and where the full report comes from."""
    counts: dict[str, int] = {}
    for job in jobs:
        counts[job.status] = counts.get(job.status, 0) + 1
    shared = set.intersection(*(set(job.overrides) for job in jobs)) if len(jobs) > 1 else set()
    lines = [f"sweep of {len(jobs)} job{'' if len(jobs) == 1 else 's'} in {sweep_dir}: "
             + ", ".join(f"{count} {status}" for status, count in counts.items()),
             f"{'job':>4}  {'status':<11}{'epochs':>6}  {'avg-model acc':>13}  {AGENTS_MEAN:>12}  {'avg-model loss':>14}  overrides"]
    for job in jobs:
        summary = job.summary or RunSummary(status=job.status)
        swept = " ".join(item.removeprefix("++") for item in job.overrides if item not in shared)
        lines.append(f"{job.number:>4}  {job.status:<11}{summary.epochs_completed:>6}  {_percent(summary.consensus_test_accuracy):>13}  "
                     f"{_percent(summary.agent_test_accuracy_mean):>12}  {_number(summary.consensus_test_loss):>14}  {swept}")
    lines.append(f"tables and plots of the sweep: cgatrain report {sweep_dir}")
    return "\n".join(lines)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}" if abs(value) < 1e5 else f"{value:.3e}"  # keeps the columns


def _planned(task_overrides: list[str] | None) -> list[list[str]] | None:
    """Each job's overrides as the basic sweeper numbers them (None for other sweepers, or syntax we cannot expand)."""
    from cgatrain.precheck import expand_sweep

    if task_overrides is None:
        return None
    try:
        return expand_sweep(task_overrides)
    except Exception:  # Hydra accepted the syntax as it ran the jobs; find them on disk instead
        return None


def summarize_sweep(sweep_dir: Path, subdir: str, task_overrides: list[str] | None, note: str = "") -> list[Job]:
    """Print the sweep's table (and its failed jobs on stderr); FAILED_JOB_DIRS becomes their directories.

    `task_overrides`: the command's overrides, which number the basic sweeper's jobs; None for other sweepers.
    """
    return report_jobs(sweep_dir, find_jobs(sweep_dir, subdir, _planned(task_overrides)), note)


def report_jobs(sweep_dir: Path, jobs: list[Job], note: str = "") -> list[Job]:
    """Print the jobs' table under `note`, and each failed job's reason on stderr; FAILED_JOB_DIRS becomes theirs."""
    if not jobs:
        return jobs
    print("\n" + (note + "\n" if note else "") + format_jobs(sweep_dir, jobs), flush=True)
    FAILED_JOB_DIRS[:] = [str(job.directory) for job in jobs if job.failed]
    for job in jobs:
        if not job.directory.exists():
            print(f"job {job.number} ({' '.join(job.overrides)}) has no folder: it never started", file=sys.stderr)
        elif job.summary is None:
            print(f"job {job.number} ({job.directory}) wrote no summary.json: it died before the end of its run "
                  "(its cgatrain.log, and under submitit the sweep's .submitit/ logs, say more)", file=sys.stderr)
        elif job.failed:
            error = " ".join(line.strip() for line in (job.refusal or job.summary.error or "see its cgatrain.log").splitlines())
            print(f"job {job.number} failed: {error if len(error) <= 300 else error[:299] + '…'}", file=sys.stderr)
    return jobs


def summarize_unfinished(note: str) -> Path | None:
    """After a sweep stopped early (a signal, or a launcher error: a submitit job killed, out of memory or time):
    the table of what the jobs' folders record now, under `note`; its sweep dir, None when no job had begun."""
    if not OPEN_SWEEPS:
        return None
    sweep_dir, subdir, task_overrides = OPEN_SWEEPS.pop()
    jobs = find_jobs(sweep_dir, subdir, _planned(task_overrides))
    if not any(job.directory.exists() for job in jobs):
        return None  # Hydra refused the sweep itself (its error says why): no job to show
    report_jobs(sweep_dir, jobs, note)
    return sweep_dir


class SweepSummary(Callback):
    """Hydra callback (configs/config.yaml, hydra.callbacks): the sweep's table once every job has returned."""

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        OPEN_SWEEPS.append(_sweep_of(config))

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        OPEN_SWEEPS.clear()
        summarize_sweep(*_sweep_of(config))


def _sweep_of(config: Any) -> tuple[Path, str, list[str] | None]:
    """The sweep dir, its subdir's template (not a job's value) and, for the basic sweeper, the task overrides."""
    from omegaconf import OmegaConf

    hydra = OmegaConf.to_container(config.hydra, resolve=False)
    basic = "BasicSweeper" in str(hydra.get("sweeper", {}).get("_target_", "BasicSweeper"))
    return (Path(str(config.hydra.sweep.dir)), str(hydra["sweep"].get("subdir", JOB_NUMBER_SUBDIR)),
            [str(item) for item in hydra["overrides"]["task"]] if basic else None)


def continuation(sweep_dir: Path, argv: Sequence[str]) -> str:
    """How to go on after `argv` stopped: the command again, resuming each job in place (finished jobs are
    skipped, stopped ones resume)."""
    args = list(argv[1:])
    if any(arg.split("=", 1)[1] not in ("auto", "null", "") for arg in args if arg.startswith("resume=")):
        # Its jobs start from other runs: resume=auto would start the jobs that had not begun from scratch.
        dirs = [arg for index, arg in enumerate(args) if arg.startswith(("--config-dir", "-cd"))
                or (index and args[index - 1] in ("--config-dir", "-cd"))]  # the user's config files stay needed
        return (f"to continue: `{shlex.join([*program(argv[0]), *dirs])} resume=JOB_DIR` for each stopped job under {sweep_dir}; start a job "
                "that had not begun alone, with its own resume= value (this whole command again would restart every job from its origin)")
    exclude = "hydra.job.config.override_dirname.exclude_keys="
    kept = [arg for arg in args if not arg.startswith(("resume=", "hydra.sweep.dir=", exclude))]
    added = ["resume=auto", f"hydra.sweep.dir={sweep_dir}"]
    if any(arg.startswith("hydra.sweep.subdir=") and "override_dirname" in arg for arg in args):
        # Folders named by the overrides: resume=auto must not rename them, or every job starts afresh elsewhere.
        keys = [key for arg in args if arg.startswith(exclude) for key in arg[len(exclude):].strip("[]").split(",") if key]
        added.append(f"{exclude}[{','.join(dict.fromkeys([*keys, 'resume']))}]")
    return "to continue the whole sweep: " + shlex.join([*program(argv[0]), *kept, *added])

