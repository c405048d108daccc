"""The `cgatrain` command's side of a run's lifecycle: resume preparation before spawn, and the
report after a signal stopped the run or an agent failed (summary.json with status `interrupted` or
`failed`, the last checkpoint, a one-line resume hint)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cgatrain import resume
from cgatrain.train import lifecycle

if TYPE_CHECKING:
    from cgatrain.reporting.schema import RunSummary


def prepare_resume(cfg: dict[str, Any], run_dir: Path, overrides: list[str], world_size: int | None = None,
                   quiet: bool = False) -> dict[str, Any] | None:
    """Resolve `resume=auto`, then take the resumed run's saved config; ConfigError on refused overrides.

    Returns None when auto-resume finds this run already completed (nothing to do). `quiet`: print
    nothing (the agents of a torchrun or srun world other than rank 0).
    """
    from cgatrain.config import ConfigError

    try:
        if resume.resolve_auto(cfg, run_dir, overrides):
            if not quiet:
                print(f"{run_dir} already holds a completed run; nothing to resume", flush=True)
            return None
        if not cfg.get("resume") and lifecycle.last_checkpoint(run_dir) is not None:
            # A fresh run there would prune its own new checkpoints as older than the earlier run's, and mix their metrics.
            raise ValueError(f"the run directory {run_dir} holds an earlier run's checkpoint: continue it with resume=auto, "
                             "or start afresh in another directory (hydra.run.dir, or hydra.sweep.dir for a sweep)")
        if cfg.get("resume") and world_size is not None and not any(resume.override_key(o) == "agents" for o in overrides):
            overrides = [*overrides, f"agents={world_size}"]  # the launcher's world size is given, like an override
        merged = resume.apply_saved_config(cfg, overrides)
    except (ValueError, OSError) as error:
        raise ConfigError(f"invalid config:\n  - {error}") from None
    if cfg.get("resume") and not quiet:
        print(f"resuming {cfg['resume']} with its saved config" + (" (resume_override=true)" if cfg.get("resume_override") else ""), flush=True)
    return merged


def save_config(cfg: dict[str, Any], run_dir: Path) -> None:
    """Write config.yaml atomically: other ranks of a requeued job may be reading the old one."""
    from omegaconf import OmegaConf

    run_dir.mkdir(parents=True, exist_ok=True)
    partial = run_dir / "config.yaml.partial"
    OmegaConf.save(OmegaConf.create(cfg), partial)
    os.replace(partial, run_dir / "config.yaml")


def keep_first_overrides(cfg: dict[str, Any], run_dir: Path) -> None:
    """On a fresh start, keep Hydra's record of the overrides: reports label the run by them after resumes in place."""
    from cgatrain.reporting.schema import FIRST_OVERRIDES_FILE

    hydra_record, first = run_dir / ".hydra" / "overrides.yaml", run_dir / FIRST_OVERRIDES_FILE
    if not cfg.get("resume") and hydra_record.exists():
        first.write_text(hydra_record.read_text())


def clear_records(run_dir: Path, cfg: dict[str, Any]) -> None:
    """An earlier attempt's summary.json must not pass for this one's; a fresh start's metrics.jsonl starts empty.

    (A resume rewrites metrics.jsonl itself with the rows up to its checkpoint.)
    """
    (run_dir / "summary.json").unlink(missing_ok=True)
    if not cfg.get("resume"):
        (run_dir / "metrics.jsonl").unlink(missing_ok=True)


def _checkpointed_epochs(run_dir: Path) -> int:
    """Complete epochs in the last complete checkpoint (what a resume starts from), 0 without one."""
    try:
        return int(json.loads((run_dir / "checkpoints" / "latest.json").read_text())["epoch"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def final_status(run_dir: Path) -> str | None:
    """"completed" or "diverged" when the agents wrote that before a stop signal reached them, else None."""
    from cgatrain.reporting.schema import load_summary

    try:
        summary = load_summary(run_dir)  # None when the agents were killed before writing one
    except (OSError, ValueError):
        return None
    return summary.status if summary is not None and summary.status in ("completed", "diverged") else None


def _epochs(count: int) -> str:
    return f"{count} complete epoch{'' if count == 1 else 's'}"


def report_interrupted(run_dir: Path, stopped_by: str | None, cfg: dict[str, Any], quiet: bool = False) -> int:
    """Make sure summary.json says `interrupted`, print one line on how to resume; return the exit status."""
    from cgatrain.reporting.schema import load_summary, write_summary

    try:
        summary = load_summary(run_dir)
    except (OSError, ValueError):
        summary = None
    stopped_by = stopped_by or lifecycle.current().agreed or (summary.extra.get("stopped_by") if summary else None)
    killed = (summary is None or summary.status != "interrupted") and not quiet
    if killed:  # the agents were killed before they could write it (grace period over, or a second Ctrl-C)
        summary = _checkpointed_summary(run_dir, cfg, "interrupted")
        summary.extra.update(lifecycle.interrupted_fields(stopped_by, run_dir))
        run_dir.mkdir(parents=True, exist_ok=True)
        write_summary(run_dir, summary)
    if not quiet:
        what = "checkpointed for requeue" if stopped_by == lifecycle.REQUEUE_SIGNAL.name else "interrupted"
        how = " (its agents were killed before the stop's own checkpoint)" if killed else ""
        print(f"{what} by {stopped_by}{how} after {_epochs(summary.epochs_completed) if summary else '? complete epochs'}; "
              f"{lifecycle.resume_hint(run_dir)}", file=sys.stderr, flush=True)
    return lifecycle.exit_code(stopped_by or "SIGTERM")


def _checkpointed_summary(run_dir: Path, cfg: dict[str, Any], status: str) -> RunSummary:
    """The parent's record of a run its agents could not finish: the epochs the last checkpoint holds, that epoch's metrics."""
    from dataclasses import fields

    from cgatrain.reporting.schema import EpochRecord, RunSummary, load_metrics

    epochs = _checkpointed_epochs(run_dir)
    summary = RunSummary(status=status, algorithm=cfg.get("algorithm", {}).get("name"), agents=cfg.get("agents"),
                         run_dir=str(run_dir), epochs_completed=epochs)
    rows = [row for row in load_metrics(run_dir) if row.epoch == epochs]
    if rows:  # the scores both records name alike (accuracies, losses, consensus, MB sent)
        shared = {f.name for f in fields(RunSummary)} - {"extra"}
        for name in (f.name for f in fields(EpochRecord) if f.name in shared):
            setattr(summary, name, getattr(rows[-1], name))
        summary.final_train_loss = rows[-1].train_loss
    return summary


def report_failed(run_dir: Path, message: str, cfg: dict[str, Any]) -> None:
    """Write summary.json `failed` with the error, the epochs checkpointed and how to resume; print both.

    Under torchrun or srun every agent that saw the failure calls this (no parent process): each writes
    the same record but for its own view of the error, atomically, so one of them stands.
    """
    from cgatrain.reporting import append_log
    from cgatrain.reporting.schema import write_summary

    summary = _checkpointed_summary(run_dir, cfg, "failed")
    summary.error = message
    saved, hint = lifecycle.last_checkpoint(run_dir), lifecycle.resume_hint(run_dir)
    if saved is not None:  # nothing is lost: a resume goes on from the last complete checkpoint
        summary.extra.update({"checkpoint": str(saved), "resume": hint})
    run_dir.mkdir(parents=True, exist_ok=True)
    write_summary(run_dir, summary)
    where = f"after {_epochs(summary.epochs_completed)}; {hint}" if saved else f"run files: {run_dir}"
    print(f"error: {message}\n{where}", file=sys.stderr, flush=True)
    append_log(run_dir, f"error: {message}")
