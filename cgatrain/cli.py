"""The `cgatrain` command: compose the config once, validate it, then run the agents.

Without a launcher, Hydra composes the config (also for `-m` sweeps) and `cgatrain` spawns the
agents itself. Under torchrun or srun every process is one agent: each composes the same config
with Hydra's compose API (no per-rank output directory) and rank 0 alone writes shared files.
"""

from __future__ import annotations

import difflib
import logging
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from cgatrain.comm.launch_env import LaunchEnv, detect_launch_env
from cgatrain.compose import compose_config, config_dir, hydra_version_base, register_resolvers

FAILED_JOBS: list[str] = []

# Hydra 1.3 merges the plugin's schema into configs/hydra/launcher/submitit_slurm.yaml and warns that this
# matching by name is deprecated; the file sets every key itself, so Hydra 1.4 (no matching) runs it the same.
warnings.filterwarnings("ignore", message=r"\s*'hydra/launcher/submitit_slurm' is validated against ConfigStore schema", category=UserWarning)


def _to_container(cfg: DictConfig) -> dict[str, Any]:
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def _record_failure(run_dir: Path, message: str, cfg: dict[str, Any], config_refused: bool = False) -> None:
    from cgatrain import lifecycle_cli
    from cgatrain.reporting import append_log
    from cgatrain.reporting.schema import load_summary, write_summary
    from cgatrain.resume import saved_run_dir
    from cgatrain.train.lifecycle import last_checkpoint

    FAILED_JOBS.append(str(run_dir))
    # A refused resume into the run's own directory, or a fresh start refused there: the earlier run's record stays.
    earlier = config_refused and (saved_run_dir(str(cfg["resume"])) == run_dir.resolve() if cfg.get("resume") else last_checkpoint(run_dir) is not None)
    if not earlier:
        lifecycle_cli.report_failed(run_dir, message, cfg)
        return
    saved = load_summary(run_dir)
    if saved is not None:  # with the refusal beside it
        saved.extra["refused"] = message
        write_summary(run_dir, saved)
    print(f"error: {message}\nrun files: {run_dir}", file=sys.stderr, flush=True)
    append_log(run_dir, f"error: {message}")


def _warn_capacity(cfg: dict[str, Any], run_dir: Path, local_agents: int) -> None:
    from cgatrain.capacity import check_capacity
    from cgatrain.reporting import append_log

    warning = check_capacity(local_agents, int(cfg["comm"].get("threads_per_agent", 1)))
    if warning:
        print(warning, file=sys.stderr, flush=True)
        append_log(run_dir, warning)


def run_job(cfg: DictConfig, run_dir: Path, sweep_group: str | None = None, overrides: list[str] | None = None) -> bool:
    """One experiment in this process: validate, spawn the agents, wait, report; False if it failed.

    Never raises, except SystemExit when a signal stopped the run: a sweep stops with it.
    """
    from cgatrain import lifecycle_cli
    from cgatrain.config import ConfigError, validate
    from cgatrain.launcher import AgentFailure, spawn_agents
    from cgatrain.reporting.wandb_run import name_the_run
    from cgatrain.train import lifecycle

    container = _to_container(cfg)
    name_the_run(container, run_dir, sweep_group, overrides or [])
    try:
        container = lifecycle_cli.prepare_resume(container, run_dir, overrides or [])
        if container is None:
            return True  # auto-resume found this job already completed (a requeued sweep)
        validate(container)
    except ConfigError as error:
        _record_failure(run_dir, str(error), container, config_refused=True)
        return False
    run_dir.mkdir(parents=True, exist_ok=True)
    lifecycle_cli.save_config(container, run_dir)  # atomic: a kill never leaves a torn config.yaml to resume from
    lifecycle_cli.keep_first_overrides(container, run_dir)
    _warn_capacity(container, run_dir, int(container["agents"]))
    lifecycle_cli.clear_records(run_dir, container)
    try:
        stopped_by = spawn_agents(container, run_dir)
    except AgentFailure as error:
        _record_failure(run_dir, f"run failed: {error}", container)
        return False
    from cgatrain.reporting.status_line import print_status

    ended = lifecycle_cli.final_status(run_dir) if stopped_by else None
    if ended:  # the signal came after the last step (final evaluation, checkpoint): the run's own record stands
        print_status(run_dir)
        requeue = stopped_by == lifecycle.REQUEUE_SIGNAL.name
        if requeue and sweep_group is None:
            return True  # a finished single run: exit 0, so a batch script does not requeue it for nothing
        print(f"{stopped_by} came after the run's last step: it {ended}; stopping here", file=sys.stderr, flush=True)
        raise SystemExit(lifecycle.exit_code(stopped_by))  # a sweep still stops: main() tables its jobs
    if stopped_by:
        code = lifecycle_cli.report_interrupted(run_dir, stopped_by, container)
        raise SystemExit(code)  # a sweep stops with it: main() tables its jobs and prints how to continue
    print_status(run_dir)
    return True


def _hydra_main() -> None:
    import hydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from cgatrain.registry import export_plugins, plugin_modules

    plugins = plugin_modules()  # a user's script registered them here; submitit jobs import them again

    @hydra.main(config_path=config_dir(), config_name="config", **hydra_version_base())
    def task(cfg: DictConfig) -> None:
        export_plugins(plugins)
        logging.captureWarnings(True)  # Python warnings reach the console and the run's cgatrain.log
        hydra_cfg = HydraConfig.get()
        # The whole sweep path names the wandb group: a bare time or "main" would collide across sweeps.
        group = str(hydra_cfg.sweep.dir)[-128:] if hydra_cfg.mode == RunMode.MULTIRUN else None
        env = detect_launch_env()
        if env is not None:  # a job of hydra/launcher=submitit_slurm: srun started one task per agent
            code = _run_as_agent(env, cfg, Path(hydra_cfg.runtime.output_dir), True, group, list(hydra_cfg.overrides.task),
                                 record_refusal=True)
            if code not in (0, 1, 2):  # a signal stopped it: the sweep stops too (1 and 2 are in the job's summary.json)
                raise RuntimeError(f"agent {env.rank} of {Path(hydra_cfg.runtime.output_dir)} ended with exit code {code}")
            return
        # A failed job's summary.json says so; the sweep's summary reads it, whichever process ran the job.
        run_job(cfg, Path(hydra_cfg.runtime.output_dir), group, list(hydra_cfg.overrides.task))

    task()


def _run_under_launcher(env: LaunchEnv, argv: list[str]) -> int:
    """torchrun/srun: this process is agent `env.rank`; compose, validate and train."""
    from cgatrain.precheck import config_dir_overrides, key_problems

    argv, search_path = config_dir_overrides(argv)  # --config-dir works here too, as hydra.searchpath
    argv = [*search_path, *argv]
    if any(arg.startswith("-") for arg in argv):
        return _refuse(env, "Hydra flags (-m, --cfg, ...) are not available under torchrun/srun; pass key=value overrides "
                            "(and --config-dir DIR) only")
    problems = key_problems(argv)
    if problems:
        return _refuse(env, "invalid config:\n  - " + "\n  - ".join(problems))
    cfg = compose_config(argv, return_hydra_config=True)
    run_dir = Path(str(cfg.hydra.run.dir))
    with open_dict(cfg):
        del cfg["hydra"]
    return _run_as_agent(env, cfg, run_dir, any(arg.startswith("agents=") for arg in argv), None, argv)


def _refuse(env: LaunchEnv, message: str) -> int:
    """Every agent refuses a bad config; rank 0 says why, the others wait so that it can before torchrun stops them."""
    if env.rank == 0:
        print(f"error: {message}", file=sys.stderr, flush=True)
    else:
        time.sleep(3)
    return 2


def _run_as_agent(env: LaunchEnv, cfg: DictConfig, run_dir: Path, agents_given: bool,
                  sweep_group: str | None = None, overrides: list[str] | None = None, record_refusal: bool = False) -> int:
    """This process is agent `env.rank` of a launcher's world (torchrun, srun, a submitit Slurm job).

    Returns the exit status: 1 after a failure, whose summary.json says so; 2 for a refused config,
    recorded in summary.json only with `record_refusal` (a sweep's job, which its table reads).
    """
    from cgatrain import lifecycle_cli
    from cgatrain.comm.rendezvous import RendezvousError
    from cgatrain.config import ConfigError, validate
    from cgatrain.launcher import error_line, run_agent
    from cgatrain.reporting.wandb_run import name_the_run

    with open_dict(cfg):
        if cfg.agents != env.world_size:
            if agents_given:
                return _refuse(env, f"agents={cfg.agents} but the launcher started {env.world_size} processes")
            cfg.agents = env.world_size
    container = _to_container(cfg)
    name_the_run(container, run_dir, sweep_group, overrides or [])
    try:
        container = lifecycle_cli.prepare_resume(container, run_dir, overrides or [], env.world_size, quiet=env.rank != 0)
        if container is None:
            return 0
        validate(container, local_agents=env.local_world_size)
    except ConfigError as error:
        if record_refusal and env.rank == 0:
            _record_failure(run_dir, str(error), container, config_refused=True)
            return 2
        return _refuse(env, str(error))
    if env.rank == 0:
        lifecycle_cli.clear_records(run_dir, container)
        lifecycle_cli.save_config(container, run_dir)
        lifecycle_cli.keep_first_overrides(container, run_dir)  # a no-op without Hydra's .hydra record (torchrun)
        _warn_capacity(container, run_dir, env.local_world_size)
    if env.launcher == "slurm":
        os.environ.setdefault("MASTER_ADDR", str(env.master_addr))
        os.environ.setdefault("MASTER_PORT", str(env.master_port))
    try:
        status = run_agent(container, run_dir, env.rank, env.world_size, env.local_rank, env.local_world_size)
    except RendezvousError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except Exception as error:  # run_agent printed the traceback; no parent here writes the record, so this agent does
        lifecycle_cli.report_failed(run_dir, f"run failed: agent {env.rank} failed: {error_line(error)}", container)
        return 1
    if status == "interrupted":
        return lifecycle_cli.report_interrupted(run_dir, None, container, quiet=env.rank != 0)
    if env.rank == 0:
        from cgatrain.reporting.status_line import print_status

        print_status(run_dir)
    return 0


def _versions() -> str:
    """cgatrain's version and those of what it runs on, without importing them."""
    from importlib.metadata import PackageNotFoundError, version

    from cgatrain import __version__

    def of(package: str) -> str:
        try:
            return version(package)
        except PackageNotFoundError:
            return "not installed"

    return f"cgatrain {__version__} (python {sys.version.split()[0]}, torch {of('torch')}, hydra-core {of('hydra-core')}, omegaconf {of('omegaconf')})"


def main() -> None:
    """Entry point of the `cgatrain` command and of `python -m cgatrain`."""
    if sys.argv[1:2] == ["report"]:
        from cgatrain.reporting.report import main as report_main

        sys.exit(report_main(sys.argv[2:]))
    if sys.argv[1:2] == ["--version"]:
        print(_versions())
        sys.exit(0)
    if sys.argv[1:] and "=" not in sys.argv[1] and not sys.argv[1].startswith(("-", "~", "+")):
        # Hydra would say "missing EQUAL" about a mistyped subcommand
        hint = " (did you mean `cgatrain report`?)" if difflib.get_close_matches(sys.argv[1], ["report"], n=1) else ""
        print(f"error: unknown command {sys.argv[1]!r}{hint}; cgatrain takes key=value overrides (cgatrain --help) "
              "or `cgatrain report PATH...`", file=sys.stderr)
        sys.exit(2)
    register_resolvers()
    from cgatrain.resume import force_saved_keys
    from cgatrain.train.lifecycle import name_the_command

    name_the_command(sys.argv[0])  # resume hints name `python run.py` when a user's script registered plugins

    sys.argv[1:] = force_saved_keys(sys.argv[1:])  # a resumed run's own options compose over today's defaults
    env = detect_launch_env()
    try:
        if env is not None:
            sys.exit(_run_under_launcher(env, sys.argv[1:]))
        from cgatrain.precheck import check_command, is_multirun

        refused = check_command(sys.argv[1:])
        if refused is not None:
            sys.exit(refused)
        _hydra_main()
    except SystemExit as stop:
        sweep = sys.modules.get("cgatrain.reporting.sweep")
        if stop.code not in (0, 2, None) and sweep is not None:
            note = ("the sweep's launcher stopped before every job returned (the error above); jobs still running, if any, "
                    "show as 'no summary':" if stop.code == 1 else "the sweep was stopped; its jobs so far:")
            stopped = sweep.summarize_unfinished(note)
            if stopped is not None:
                print(sweep.continuation(stopped, sys.argv), file=sys.stderr)
        raise
    except KeyboardInterrupt:  # Ctrl-C before any agent started, or while submitit jobs ran
        sweep = sys.modules.get("cgatrain.reporting.sweep")
        started = getattr(sweep, "OPEN_SWEEPS", [])
        if started:  # the jobs stopped with their checkpoints (each says so in its log)
            print(f"sweep interrupted; {sweep.continuation(started[-1][0], sys.argv)}", file=sys.stderr)
        else:
            print("interrupted before the run started", file=sys.stderr)
        sys.exit(130)
    failed = FAILED_JOBS
    if is_multirun(sys.argv[1:]):  # a single run already printed its error
        from cgatrain.reporting.sweep import FAILED_JOB_DIRS

        # The jobs run here, and those the summary found (a relative sweep dir names them relatively).
        failed = list(dict.fromkeys(str(Path(job).resolve()) for job in [*FAILED_JOBS, *FAILED_JOB_DIRS]))
        if failed:
            print(f"{len(failed)} of the sweep's jobs failed: {', '.join(failed)}", file=sys.stderr)
    if failed:
        sys.exit(1)


# Submitit jobs unpickle the task function without calling main(): the resolvers must exist on import.
register_resolvers()
