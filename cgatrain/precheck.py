"""Check a whole `cgatrain` command line in the parent, before Hydra creates a run dir or starts a job.

A single run and every point of a `-m` sweep are composed and validated first: a typo in the last
point of a long sweep fails the command at once, naming the job and the config key, and nothing runs.
Runs that resume (`resume=...`) are checked against their saved config when their turn comes.
"""

from __future__ import annotations

import difflib
import functools
import itertools
import re
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


def config_groups() -> set[str]:
    """The config groups of configs/ (algorithm, topology, data, ...)."""
    from cgatrain.compose import config_dir

    return {path.name for path in Path(config_dir()).iterdir() if path.is_dir()}


def expand_sweep(overrides: list[str]) -> list[list[str]] | None:
    """Each job's overrides, as Hydra's basic sweeper numbers them; None when a value is a glob()."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import Glob

    choices: list[list[str]] = []
    for override in OverridesParser.create().parse_overrides(overrides):
        if not override.is_sweep_override():
            choices.append([override.input_line])
        elif isinstance(override.value(), Glob):
            return None  # the group's options are Hydra's to list
        else:
            key = override.get_key_element()
            choices.append([f"{key}={value}" for value in override.sweep_string_iterator()])
    return [list(job) for job in itertools.product(*choices)]


def _new_keys(full: Mapping[str, Any], reference: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(dotted key, the keys beside it that exist) for each key of `full` that `reference` lacks."""
    for key, value in full.items():
        if key not in reference:
            yield f"{prefix}{key}", reference
        elif isinstance(value, Mapping) and isinstance(reference[key], Mapping):
            yield from _new_keys(value, reference[key], f"{prefix}{key}.")


def unknown_keys(overrides: list[str], composed: DictConfig | None = None) -> list[str]:
    """A problem for each key the overrides add (`+train.epoch=2`) that no config file defines."""
    from omegaconf import OmegaConf

    from cgatrain.compose import compose_config

    full = OmegaConf.to_container(compose_config(overrides) if composed is None else composed, resolve=False)
    reference = _reference(tuple(_selections(overrides)))
    return [_unknown(key, beside) for key, beside in _new_keys(full, reference) if key.split(".")[0] not in SELF_CHECKED]  # type: ignore[arg-type]


def _selections(overrides: list[str]) -> list[str]:
    """The overrides that pick config files (group options, experiments, Hydra's launcher), not values."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    groups = config_groups()
    return [o.input_line for o in OverridesParser.create().parse_overrides(overrides)
            if o.key_or_group.split("/")[0] in groups or o.key_or_group.startswith("hydra")]


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


def _missing_key(overrides: list[str], key: str) -> str:
    """Hydra's 'Could not override KEY' (a key no config file defines), with the keys that do exist."""
    from omegaconf import OmegaConf

    from cgatrain.compose import compose_config

    node = OmegaConf.to_container(compose_config([o for o in overrides if not o.lstrip("+~").startswith(key + "=")]), resolve=False)
    for part in key.split(".")[:-1]:
        node = node.get(part) if isinstance(node, dict) else None  # type: ignore[assignment]
    return _unknown(key, node if isinstance(node, dict) else {})


def key_problems(overrides: list[str], composed: DictConfig | None = None) -> list[str]:
    """The overrides' unknown keys, and Hydra's refusal to compose them (a missing group option...) as a problem."""
    try:
        return unknown_keys(overrides, composed)
    except Exception as error:  # Hydra's own refusals say what is wrong; a missing key gets ours, with the keys that exist
        missing = re.match(r"Could not override '([\w.]+)'", str(error))
        return [_missing_key(overrides, missing.group(1)) if missing else str(error).strip()]


def check_job(overrides: list[str]) -> list[str]:
    """Every problem of one job's overrides (empty when it may start)."""
    from omegaconf import OmegaConf, open_dict

    from cgatrain.compose import compose_config
    from cgatrain.config import ConfigError, validate

    try:
        composed = compose_config(overrides, return_hydra_config=True)
    except Exception:  # Hydra refuses it: key_problems says why
        return key_problems(overrides)
    target = str(OmegaConf.select(composed, "hydra.launcher._target_", default=""))
    with open_dict(composed):
        del composed["hydra"]
    problems = key_problems(overrides, composed)
    try:
        cfg = OmegaConf.to_container(composed, resolve=True)
    except Exception as error:  # an interpolation that cannot resolve
        return [*problems, str(error).strip()]
    if cfg.get("resume"):  # type: ignore[union-attr]
        return problems  # checked against the saved config when the job starts
    try:
        # A Slurm job runs on other nodes: their GPUs and data are checked there, when it starts.
        validate(cfg, on_this_machine="Slurm" not in target)  # type: ignore[arg-type]
    except ConfigError as error:
        problems += str(error).split("\n  - ")[1:]
    return problems


def check_command(argv: list[str]) -> int | None:
    """Validate the run or every sweep job of `cgatrain ARGV`; print the problems and return 2, else None."""
    flags = [arg for arg in argv if arg.startswith("-")]
    if any(flag not in RUN_FLAGS for flag in flags):
        return None
    overrides = [arg for arg in argv if not arg.startswith("-")]
    jobs = expand_sweep(overrides) if any(flag in ("-m", "--multirun") for flag in flags) else [overrides]
    if jobs is None:
        return None
    failures = [(number, job, check_job(job)) for number, job in enumerate(jobs)]
    failures = [failure for failure in failures if failure[2]]
    if not failures:
        return None
    if len(jobs) == 1:
        print("error: invalid config:\n  - " + "\n  - ".join(failures[0][2]), file=sys.stderr)
    else:
        print(f"error: {len(failures)} of {len(jobs)} sweep jobs have an invalid config; no job was started:", file=sys.stderr)
        for number, job, problems in failures:
            print(f"  job {number} ({' '.join(job)}):\n    - " + "\n    - ".join(problems), file=sys.stderr)
    return 2
