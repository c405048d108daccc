"""Check a whole `cgatrain` command line in the parent, before Hydra creates a run dir or starts a job.

A single run and every point of a `-m` sweep are composed and validated first: a typo in the last
point of a long sweep fails the command at once, naming the job and the config key, and nothing runs.
A run that resumes (`resume=PATH`, or `resume=auto` where its directory holds a checkpoint) is checked
against its saved config and checkpoint here too, before Hydra writes into that directory.
"""

from __future__ import annotations

import difflib
import functools
import itertools
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from omegaconf import DictConfig

# Sections whose component refuses unknown options itself, naming what it takes.
SELF_CHECKED = ("algorithm", "compressor", "topology", "hydra")
# Hydra's flags that change what the command does (help, print the config, another config...): no check.
RUN_FLAGS = ("-m", "--multirun", "-r", "--run")
# Hydra's flag that adds a folder of config files (a topology, a preset) to the search path: checked with it.
CONFIG_DIR_FLAGS = ("--config-dir", "-cd")


def expand_sweep(overrides: list[str]) -> list[list[str]] | None:
    """Each job's overrides, written and numbered as Hydra's basic sweeper writes them (`false` -> `False`,
    `1e9` -> `1000000000.0`, a repeated key's last value); None when a value is a glob() or not a list."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import Glob

    choices: dict[str, list[str]] = {}
    for override in OverridesParser.create().parse_overrides(overrides):
        key = override.get_key_element()
        if not override.is_sweep_override():
            choices[key] = [f"{key}={override.get_value_element_as_str()}"]
        elif isinstance(override.value(), Glob) or not override.is_discrete_sweep():
            return None  # the group's options, or a range Hydra's own message explains
        else:
            choices[key] = [f"{key}={value}" for value in override.sweep_string_iterator()]
    return [list(job) for job in itertools.product(*choices.values())]


def _new_keys(full: Mapping[str, Any], reference: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(dotted key, the keys beside it that exist) for each key of `full` that `reference` lacks."""
    for key, value in full.items():
        if key not in reference:
            yield f"{prefix}{key}", reference
        elif isinstance(value, Mapping) and isinstance(reference[key], Mapping):
            yield from _new_keys(value, reference[key], f"{prefix}{key}.")


def unknown_keys(overrides: list[str], composed: DictConfig | None = None) -> list[str]:
    """A problem for each key the overrides set or add (`train.epoch=2`, `+train.epoch=2`) that no config file defines."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    from cgatrain.compose import compose_config, config_groups
    from cgatrain.resume import merge_saved, saved_config

    groups, parsed = config_groups(), OverridesParser.create().parse_overrides(overrides)
    reference = _reference(tuple(o.input_line for o in parsed if _selects(o.key_or_group, groups)))
    saved, composed_from = saved_config(overrides), reference
    if saved is not None:  # a resumed run's keys are those of its own choices (its sparse_push, not today's cga)
        reference = merge_saved(reference, saved)
    # Keys set without `+`: Hydra refuses them one at a time ("Could not override"); name them all, with what exists.
    plain = [o.key_or_group for o in parsed if not (o.is_add() or o.is_force_add() or o.is_delete() or _selects(o.key_or_group, groups))]
    problems = [_unknown(key, beside) for key, beside in (_missing(reference, key) for key in plain) if key]
    if problems:
        return problems
    forced = {o.key_or_group for o in parsed if o.is_force_add()}  # `++`: a resumed run's own keys (resume.force_saved_keys)
    full = OmegaConf.to_container(compose_config(overrides) if composed is None else composed, resolve=False)
    # Keys today's defaults put in the composed config (model.activation of the default cnn) are not new.
    return [_unknown(key, beside) for key, beside in _new_keys(full, reference)  # type: ignore[arg-type]
            if key.split(".")[0] not in SELF_CHECKED and key not in forced and _missing(composed_from, key)[0]]


def _missing(reference: Mapping[str, Any], key: str) -> tuple[str, Mapping[str, Any]]:
    """(key, the keys beside it) when a dotted key is absent from a mapping along its path, else ('', {})."""
    node: Any = reference
    for part in key.split("."):
        if not isinstance(node, Mapping):
            return "", {}  # a list or a value: Hydra says what is wrong with it
        if part not in node:
            return key, node
        node = node[part]
    return "", {}


def _selects(key_or_group: str, groups: set[str]) -> bool:
    """True for an override that picks config files (a group option, an experiment) or sets Hydra's own config."""
    return key_or_group.split("/")[0] in groups or key_or_group.startswith("hydra")


@functools.lru_cache(maxsize=64)
def _reference(selections: tuple[str, ...]) -> dict[str, Any]:
    """Every key the chosen config files define (sweep jobs share it)."""
    from omegaconf import OmegaConf

    from cgatrain.compose import compose_config

    return OmegaConf.to_container(compose_config(list(selections)), resolve=False)  # type: ignore[return-value]


def _unknown(key: str, beside: Mapping[str, Any]) -> str:
    """'unknown config key train.epoch (did you mean train.epochs?); train takes: ...'."""
    section, _, leaf = key.rpartition(".")
    close = difflib.get_close_matches(leaf, [str(k) for k in beside], n=1)
    hint = f" (did you mean {section + '.' if section else ''}{close[0]}?)" if close else ""
    return f"unknown config key {key}{hint}; {section or 'the top level'} takes: {', '.join(sorted(str(k) for k in beside))}"


def key_problems(overrides: list[str], composed: DictConfig | None = None) -> list[str]:
    """The overrides' unknown keys, or Hydra's own refusal to compose them (a missing group option...)."""
    try:
        return unknown_keys(overrides, composed)
    except Exception as error:  # Hydra's message says what is wrong
        return [str(error).strip()]


def check_job(overrides: list[str], sweep: bool = False, number: int | None = None) -> list[str]:
    """Every problem of one job's overrides (empty when it may start); `sweep`: a job of a `-m` sweep, `number` its index."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf, open_dict

    from cgatrain.compose import compose_config
    from cgatrain.config import ConfigError, validate

    try:
        composed = compose_config(overrides, return_hydra_config=True)
    except Exception:  # Hydra refuses it: key_problems says why
        return key_problems(overrides)
    target = str(OmegaConf.select(composed, "hydra.launcher._target_", default=""))
    run_dir = _job_run_dir(composed, number if sweep else None)  # before set_config makes `hydra` read-only
    HydraConfig.instance().set_config(composed)  # ${hydra:...} resolves as in the job
    with open_dict(composed):
        del composed["hydra"]
    problems = key_problems(overrides, composed)
    try:
        cfg = OmegaConf.to_container(composed, resolve=True)
    except Exception:  # resolvable only where the job runs (${hydra:job.num}, ${oc.env:SLURM_TMPDIR}): checked there
        return problems
    # A sweep's Slurm job runs on other nodes: their GPUs and data are checked there, when it starts.
    on_this_machine = not (sweep and "Slurm" in target)
    if cfg.get("resume"):  # type: ignore[union-attr]
        return problems + _resume_problems(cfg, run_dir, overrides, on_this_machine)  # type: ignore[arg-type]
    try:
        validate(cfg, on_this_machine=on_this_machine)  # type: ignore[arg-type]
    except ConfigError as error:
        problems += str(error).split("\n  - ")[1:]
    return problems


def _job_run_dir(composed: DictConfig, number: int | None) -> Path | None:
    """The job's run directory as Hydra will name it (sweep job `number`); None where only the job can resolve it."""
    from omegaconf import open_dict

    try:
        if number is None:
            return Path(str(composed.hydra.run.dir))
        with open_dict(composed):
            composed.hydra.job.num = number
        return Path(str(composed.hydra.sweep.dir)) / str(composed.hydra.sweep.subdir)
    except Exception:  # e.g. ${oc.env:...} of the job's node
        return None


def _resume_problems(cfg: dict[str, Any], run_dir: Path | None, overrides: list[str], on_this_machine: bool) -> list[str]:
    """A resuming job checked as it will be when it starts: its saved config, the refused overrides, its checkpoint."""
    import copy

    from cgatrain import resume
    from cgatrain.config import ConfigError, validate

    if run_dir is None:
        return []
    cfg = copy.deepcopy(cfg)
    try:
        completed = resume.resolve_auto(cfg, run_dir, overrides)
        merged = resume.apply_saved_config(cfg, overrides)  # refused overrides are refused, also for a finished run
        if not completed:  # a finished run: the job says so and does nothing
            validate(merged, on_this_machine=on_this_machine)
    except ConfigError as error:
        return str(error).split("\n  - ")[1:]
    except (ValueError, OSError) as error:
        return [str(error)]
    return []


def is_multirun(argv: list[str]) -> bool:
    """`-m`, `--multirun` or `hydra.mode=MULTIRUN` on the command line."""
    return any(arg in ("-m", "--multirun", "hydra.mode=MULTIRUN") for arg in argv)


def config_dir_overrides(argv: list[str]) -> tuple[list[str], list[str]]:
    """(argv without `--config-dir DIR`/`-cd DIR`, the `hydra.searchpath` override that adds those dirs, if any)."""
    rest, dirs, args = [], [], iter(argv)
    for arg in args:
        flag, has_value, value = arg.partition("=")
        if flag in CONFIG_DIR_FLAGS:
            dirs.append(value if has_value else next(args, ""))
        else:
            rest.append(arg)
    if not dirs:
        return argv, []
    return rest, ["hydra.searchpath=[" + ",".join(f"file://{Path(d).expanduser().resolve()}" for d in dirs) + "]"]


def check_command(argv: list[str]) -> int | None:
    """Validate the run or every sweep job of `cgatrain ARGV`; print the problems and return 2, else None."""
    argv, search_path = config_dir_overrides(argv)
    folders = [entry.removeprefix("file://") for entry in search_path[0].partition("=")[2].strip("[]").split(",")] if search_path else []
    if missing := [folder for folder in folders if not Path(folder).is_dir()]:
        print(f"error: --config-dir {', '.join(missing)}: no such folder", file=sys.stderr)
        return 2
    if search_path and any(arg.startswith("hydra.searchpath=") for arg in argv):
        return None  # both: Hydra merges them; the job checks itself
    flags = [arg for arg in argv if arg.startswith("-")]
    if any(flag not in RUN_FLAGS for flag in flags):
        return None
    overrides = [arg for arg in argv if not arg.startswith("-")]
    if any(arg.startswith("hydra/sweeper=") for arg in overrides):
        return None  # another sweeper (Optuna, Ax...) draws its own jobs
    try:
        jobs = expand_sweep(overrides) if is_multirun(argv) else [overrides]
    except Exception:  # Hydra says what is wrong with the sweep syntax
        return None
    if jobs is None:
        return None
    failures = [(number, job, check_job([*search_path, *job], is_multirun(argv), number)) for number, job in enumerate(jobs)]
    failures = [failure for failure in failures if failure[2]]
    if not failures:
        return None
    if len(jobs) == 1:
        print("error: invalid config:\n  - " + "\n  - ".join(failures[0][2]), file=sys.stderr)
    else:
        print(f"error: {len(failures)} of {len(jobs)} sweep jobs have an invalid config; no job was started:", file=sys.stderr)
        for number, job, problems in failures:
            shown = " ".join(item.removeprefix("++") for item in job)  # `++` is resume.force_saved_keys', not the user's
            print(f"  job {number} ({shown}):\n    - " + "\n    - ".join(problems), file=sys.stderr)
    return 2
