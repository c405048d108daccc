"""Resuming a run from its own record: the saved config.yaml is the base, and command-line overrides
that would change the trajectory are refused (named one by one) unless `resume_override=true`.

`resume=auto` (and a Slurm or torchrun restart of a job) resumes from the run directory itself when
it holds a checkpoint, and starts fresh otherwise, so a requeued job needs no new arguments.
"""

from __future__ import annotations

import copy
import json
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

# Overrides that change how a run is watched, not where its parameters go.
HARMLESS = (
    "train.epochs",
    "train.progress_bar",
    "train.log_every",
    "train.eval_train",  # measurements only: evaluation in eval mode, no random draws, parameters untouched
    "train.consensus_every",
    "logger",
    "checkpoint",
    "comm.timeout_s",
    "comm.threads_per_agent",
    "comm.backend",
    "comm.staging",  # staged and direct wires give bit-identical rounds (tests/test_staging_distributed.py)
    # Where and how the same samples are read: streamed batches equal in-memory ones (tests/test_vision_data.py).
    "data.root",
    "data.path",
    "data.download",
    "data.in_memory",
    "data.memory_budget_mb",
    "data.workers",
    "resume",
    "resume_override",
    "hydra",
)
_ABSENT = object()


def override_key(override: str) -> str:
    """`topology=complete` -> topology, `+optim.x=1` -> optim.x, `model/cnn@m=...` -> model.cnn."""
    key = override.lstrip("+~").split("=", 1)[0].split("@", 1)[0]
    return key.replace("/", ".")


def is_harmless(key: str) -> bool:
    return any(key == allowed or key.startswith(allowed + ".") for allowed in HARMLESS)


def _get(tree: Mapping[str, Any], dotted: str) -> Any:
    node: Any = tree
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return _ABSENT
        node = node[part]
    return node


def _set(tree: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    node = tree
    for part in parents:
        node = node.setdefault(part, {})
    if value is _ABSENT:
        node.pop(last, None)
    else:
        node[last] = copy.deepcopy(value)


def merge_saved(defaults: Mapping[str, Any], saved: Mapping[str, Any]) -> dict[str, Any]:
    """The saved config over today's defaults: a chosen option (a config group's section, as `topology`, or a
    section with `name`) is taken whole, so today's default ring never leaks into a saved schedule."""
    from cgatrain.compose import config_groups

    whole = config_groups()
    merged = copy.deepcopy(dict(defaults))
    for key, value in saved.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping) and "name" not in value and key not in whole:
            merged[key] = merge_saved(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _show(value: Any) -> str:
    return "(unset)" if value is _ABSENT else json.dumps(value, default=str)[:80].strip('"')


def _differences(key: str, before: Any, given: Any) -> list[str]:
    """`key (saved X, given Y)` for each leaf that differs; a changed choice (`name`) is one entry.

    A `name` only one side has is a label added since (the Sparse-Push figure graphs got names), not a change.
    """
    if isinstance(before, Mapping) and isinstance(given, Mapping):
        if "name" in before and "name" in given and before["name"] != given["name"]:
            return [f"{key} (saved {_show(before['name'])}, given {_show(given['name'])})"]
        found: list[str] = []
        for sub in dict.fromkeys([*before, *given]):
            if sub != "name" or (sub in before and sub in given):
                found += _differences(f"{key}.{sub}", before.get(sub, _ABSENT), given.get(sub, _ABSENT))
        return found
    return [] if before == given else [f"{key} (saved {_show(before)}, given {_show(given)})"]


def _preset_changes(cfg: Mapping[str, Any], saved: Mapping[str, Any], overrides: list[str], preset: str) -> list[str]:
    """What a preset (experiment=...) would change in the saved run: of the keys the preset sets (the group choices
    composed with it against them composed without it), those whose saved value differs, except keys another
    override sets (checked, and blamed, on their own)."""
    from cgatrain.compose import compose_config, config_groups

    whole, given = config_groups(), [override_key(o) for o in overrides if override_key(o) != preset]
    groups = [o for o in overrides if "." not in override_key(o) and override_key(o) != preset and not o.startswith("~")]
    preset_line = next(o for o in overrides if override_key(o) == preset)
    without, with_preset = (OmegaConf.to_container(compose_config(lines), resolve=True) for lines in (groups, [*groups, preset_line]))
    changes = []
    for key in dict.fromkeys([*without, *with_preset]):  # type: ignore[list-item]
        set_here = _differences(key, without.get(key, _ABSENT), with_preset.get(key, _ABSENT))  # type: ignore[union-attr]
        if not set_here or key in ("resume", "resume_override"):
            continue
        # A chosen option (a config group's section) counts as a whole; elsewhere only the leaves the preset sets.
        for leaf in [key] if key in whole else [change.split(" ", 1)[0] for change in set_here]:
            changes += [c for c in _differences(leaf, _get(saved, leaf), _get(cfg, leaf)) if not is_harmless(c.split(" ", 1)[0])
                        and not any(_covers(other, c.split(" ", 1)[0]) for other in given)]
    return changes


def _covers(key: str, leaf: str) -> bool:
    """Whether an override of `key` sets `leaf` (the same key, or a section holding it)."""
    return leaf == key or leaf.startswith(key + ".")


def _moved_horizon(saved: Mapping[str, Any], merged: Mapping[str, Any]) -> list[str]:
    """A cosine schedule anneals over train.epochs after its warmup: changing them changes the rates of the epochs
    already run, unless all of those were warmup (then the run goes on as a fresh run of the new length would)."""
    schedule = _get(saved, "optim.schedule")
    before, given = _get(saved, "train.epochs"), _get(merged, "train.epochs")
    if not isinstance(schedule, Mapping) or schedule.get("name") != "cosine" or before == given:
        return []
    if _epochs_trained(str(merged.get("resume"))) <= float(schedule.get("warmup_epochs") or 0.0):
        return []
    return [f"train.epochs (saved {_show(before)}, given {_show(given)}) with optim.schedule.name=cosine, which anneals over "
            f"train.epochs: the epochs already run followed the {_show(before)}-epoch curve"]


def _epochs_trained(path: str) -> float:
    """Epochs the checkpoint at `path` has trained, a started epoch counted whole; inf when it cannot be read."""
    from cgatrain import checkpoint

    try:
        directory, epoch, _ = checkpoint.resolve_resume(path)
    except (OSError, ValueError):
        return math.inf
    return epoch + (1 if "_step_" in directory.name else 0)


def saved_run_dir(path: str | os.PathLike[str]) -> Path | None:
    """The run directory (holding config.yaml) of a resume path: the run, its checkpoints/ or an epoch folder."""
    candidate = Path(path).expanduser().resolve()
    for folder in (candidate, *list(candidate.parents)[:2]):
        if (folder / "config.yaml").exists():
            return folder
    return None


def force_saved_keys(overrides: list[str]) -> list[str]:
    """With `resume=PATH`, turn `key=value` into `++key=value` for each key the saved config holds.

    Today's defaults compose the command line, so an option of the resumed run's own choices
    (`algorithm.eta` of a sparse_push run, while the default algorithm is cga) would be refused as
    unknown; force-added, it reaches `apply_saved_config`, which refuses or applies it by name.
    """
    saved = saved_config(overrides)
    if saved is None:
        return overrides
    return [f"++{o}" if _is_plain_key(o) and _get(saved, override_key(o)) is not _ABSENT else o for o in overrides]


def saved_config(overrides: list[str]) -> dict[str, Any] | None:
    """The saved config.yaml of the run that `resume=PATH` names (None without one, for `auto` or a sweep of paths)."""
    paths = [o.split("=", 1)[1] for o in overrides if o.startswith("resume=")]
    run_dir = saved_run_dir(paths[-1]) if paths and paths[-1] not in ("", "auto", "null") and "," not in paths[-1] else None
    if run_dir is None:
        return None
    try:
        return load_saved(run_dir, resolve=False)
    except ValueError:  # named by the resume check that follows
        return None


def load_saved(run_dir: Path, resolve: bool = True) -> dict[str, Any]:
    """A run's saved config.yaml; ValueError naming the file when it cannot be read (torn by a kill, edited)."""
    path = run_dir / "config.yaml"
    try:
        return OmegaConf.to_container(OmegaConf.load(path), resolve=resolve)  # type: ignore[return-value]
    except Exception as error:  # yaml's and omegaconf's errors share no base class
        raise ValueError(f"{path} cannot be read as a config ({type(error).__name__}: {str(error).splitlines()[0]})") from None


def _is_plain_key(override: str) -> bool:
    """`a.b=value`: a dotted key set without +, ++ or ~ (a group choice such as `model=mlp` has no dot)."""
    key = override.split("=", 1)[0]
    return "=" in override and "." in key and not key.startswith(("+", "~", "hydra.")) and "/" not in key and "@" not in key


def requeued() -> bool:
    """True in a job Slurm requeued or torchrun restarted: it should go on from its own run directory."""
    return any(int(os.environ.get(name, "0") or 0) > 0 for name in ("SLURM_RESTART_COUNT", "TORCHELASTIC_RESTART_COUNT"))


def resolve_auto(cfg: dict[str, Any], run_dir: Path, overrides: Iterable[str] = ()) -> bool:
    """Turn `resume=auto` (or any resume in a requeued job) into this run dir when it holds a checkpoint.

    Returns True when the run dir already holds a completed run that auto-resume should not repeat: one
    that completed its saved epochs, or the `train.epochs` the overrides raise it to.
    """
    has_checkpoint = (run_dir / "checkpoints" / "latest.json").exists()
    # A requeued job goes on from its own checkpoint, even if it first started from another run's.
    if cfg.get("resume") != "auto" and not (requeued() and (cfg.get("resume") is None or has_checkpoint)):
        return False
    cfg["resume"] = str(run_dir) if has_checkpoint else None
    summary = run_dir / "summary.json"
    try:
        record = json.loads(summary.read_text())
    except (OSError, ValueError):
        return False
    # Completed as far as asked: a raised train.epochs continues it, as resume=PATH does (without the override,
    # cfg holds today's default, not the run's own epochs).
    wanted = cfg.get("train", {}).get("epochs") if any(override_key(o) == "train.epochs" for o in overrides) else None
    done = record.get("status") == "completed" and (not isinstance(wanted, int) or int(record.get("epochs_completed", 0)) >= wanted)
    return has_checkpoint and done


def apply_saved_config(cfg: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """The config to resume with: the run's saved config.yaml plus the allowed command-line overrides.

    Raises ValueError naming every override that would change the trajectory, unless
    `resume_override=true`, in which case they are applied on top of the saved config.
    """
    from cgatrain.compose import config_groups

    if not cfg.get("resume"):
        return cfg
    run_dir = saved_run_dir(str(cfg["resume"]))
    if run_dir is None:
        return cfg  # a bare checkpoint folder: nothing saved to hold the overrides against
    saved = load_saved(run_dir)
    merged = merge_saved(cfg, saved)  # type: ignore[arg-type]
    forced = bool(cfg.get("resume_override", False))
    refused = []
    keys = list(dict.fromkeys(override_key(o) for o in overrides))
    for key in keys:
        given, before = _get(cfg, key), _get(saved, key)  # type: ignore[arg-type]
        if given is _ABSENT and before is _ABSENT and not is_harmless(key):
            # A preset with no section of its own (experiment=...): it is the run's own when it changes nothing.
            changes = _preset_changes(cfg, saved, list(overrides), key)  # type: ignore[arg-type]
            for change in changes if forced else []:  # a chosen option is applied whole, as a group override is
                leaf = change.split(" ", 1)[0]
                target = leaf.split(".")[0] if leaf.split(".")[0] in config_groups() else leaf
                _set(merged, target, _get(cfg, target))
            refused += [] if forced else [f"{key} would set {change}" for change in changes]
            continue
        if is_harmless(key) or forced:
            _set(merged, key, given)
        else:  # a group override (`data=...`) also shows leaves other, harmless overrides set
            refused += [change for change in _differences(key, before, given) if not is_harmless(change.split(" ", 1)[0])]
    for key in ("resume", "resume_override"):
        _set(merged, key, cfg.get(key))
    refused += [] if forced else _moved_horizon(saved, merged)
    refused = list(dict.fromkeys(refused))  # `data=...` and `data.x=...` can name the same leaf
    if refused:
        raise ValueError(
            f"resume={cfg['resume']} continues the run saved in {run_dir / 'config.yaml'}; these overrides would change "
            f"its trajectory: {', '.join(refused)}. Drop them, or pass resume_override=true to apply them anyway"
        )
    return merged
