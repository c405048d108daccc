"""Validating a composed config in the parent, before any agent process starts."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf

from cgatrain import checkpoint, preflight
from cgatrain.algorithms import get_algorithm, resolve_compressor
from cgatrain.comm.devices import device_problems, gpus_on_node
from cgatrain.compression.base import check_compressor
from cgatrain.data import DataError, steps_per_epoch
from cgatrain.data.agent_data import check_data_options
from cgatrain.data.common import options_of
from cgatrain.data.datasets import DatasetInfo, describe_dataset, prepare_dataset
from cgatrain.data.partition import partition_in_parent
from cgatrain.models import check_model_input
from cgatrain.registry import failure
from cgatrain.topology import TopologyError, build_topology
from cgatrain.train.schedule import check_schedule

WANDB_MODES = ("disabled", "offline", "online")
GROUPS_WITH_NAME = ("algorithm", "compressor", "data", "model", "partition")  # config groups that select a registered NAME


class ConfigError(ValueError):
    """The config cannot run; the message lists every problem found."""


def _positive_int(value: Any, key: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{key} must be an integer >= {minimum}, got {value!r}")
    return value


def _number(value: Any, key: str) -> float:
    """`value` as a float, or a ValueError naming `key`."""
    if isinstance(value, bool):
        raise ValueError(f"{key} must be a number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{key} must be a number, got {value!r}") from None


def _check_flags(cfg: Mapping[str, Any]) -> None:
    """true/false options: a string such as 'maybe' would otherwise read as true."""
    for section, key in ((None, "same_init"), (None, "resume_override"), ("train", "eval_train"), ("train", "progress_bar"), ("checkpoint", "enabled")):
        value = (cfg if section is None else cfg[section]).get(key, False)
        if not isinstance(value, bool):
            raise ValueError(f"{key if section is None else section + '.' + key} must be true or false, got {value!r}")


def _check_numbers(cfg: Mapping[str, Any]) -> None:
    _positive_int(cfg["agents"], "agents")
    _positive_int(cfg["seed"], "seed", minimum=0)
    _positive_int(cfg["train"].get("log_every", 10), "train.log_every")
    _positive_int(cfg["train"]["epochs"], "train.epochs")
    _positive_int(cfg["train"]["batch_size"], "train.batch_size")
    if cfg["train"].get("steps_per_epoch") is not None:
        _positive_int(cfg["train"]["steps_per_epoch"], "train.steps_per_epoch")
    if cfg["train"].get("consensus_every") is not None:
        _positive_int(cfg["train"]["consensus_every"], "train.consensus_every")
    lr, weight_decay = _number(cfg["optim"]["lr"], "optim.lr"), _number(cfg["optim"].get("weight_decay", 0.0), "optim.weight_decay")
    if not lr >= 0.0:
        raise ValueError(f"optim.lr must be >= 0, got {lr}")
    if not weight_decay >= 0.0:
        raise ValueError(f"optim.weight_decay must be >= 0, got {weight_decay}")
    check_schedule(cfg["optim"].get("schedule") or {}, lr)
    if float(cfg["comm"].get("timeout_s", 180)) <= 0:
        raise ValueError("comm.timeout_s must be > 0")
    _positive_int(cfg["comm"].get("threads_per_agent", 1), "comm.threads_per_agent")
    _positive_int(cfg["checkpoint"].get("keep", 2), "checkpoint.keep")


def _check_backend(cfg: Mapping[str, Any], local_agents: int) -> None:
    device, backend, staging = (str(v) for v in (cfg["train"].get("device", "auto"), cfg["comm"].get("backend", "auto"), cfg["comm"].get("staging", "auto")))
    problems = device_problems(device, backend, staging, local_agents, gpus_on_node())
    if problems:
        raise ValueError("\n  - ".join(problems))


def _check_data(cfg: Mapping[str, Any]) -> None:
    with options_of("data"):
        prepare_dataset(cfg["data"])  # downloads (data.download=true) happen here, once, before any agent starts
        data = _described(json.dumps(cfg["data"], sort_keys=True, default=str))  # every split's files checked (data_and_models.md)
        check_data_options(cfg["data"], data.name, eval_train=bool(cfg["train"].get("eval_train")))
    if cfg["partition"].get("name") != "iid" and data.task != "classification":
        raise DataError(f"partition={cfg['partition']['name']} needs class labels, but data={data.name} is a {data.task} task")
    if cfg["train"].get("eval_train") and data.task != "classification":
        raise DataError(f"train.eval_train scores training accuracy, but data={data.name} is a {data.task} task")
    with options_of("partition"):
        shards = partition_in_parent(data.train_labels, int(cfg["agents"]), cfg["partition"], int(cfg["seed"]))
    check_model_input(cfg["model"], data.input_shape, data.num_classes)
    if min(len(shard) for shard in shards) == 0:
        raise DataError("some agent would get no training data")
    steps = cfg["train"].get("steps_per_epoch") or steps_per_epoch([len(shard) for shard in shards], int(cfg["train"]["batch_size"]))
    get_algorithm(cfg["algorithm"]["name"]).check_run_length(cfg["algorithm"], int(cfg["train"]["epochs"]) * int(steps), int(steps))


@functools.lru_cache(maxsize=8)
def _described(data_cfg_json: str) -> DatasetInfo:
    """describe_dataset, read once for all the jobs of a sweep that share a data config."""
    return describe_dataset(json.loads(data_cfg_json))


def _check_resume(cfg: Mapping[str, Any]) -> None:
    if not cfg.get("resume"):
        return
    preflight.check_checkpoint(str(cfg["resume"]))  # truncated or corrupt files, named, before spawn
    directory, epoch, world_size = checkpoint.resolve_resume(str(cfg["resume"]))
    if world_size != int(cfg["agents"]):
        raise ValueError(f"resume={cfg['resume']} holds {world_size} agents, but agents={cfg['agents']}")
    saved_algorithm = checkpoint.resume_algorithm(str(cfg["resume"]))
    if saved_algorithm is not None and saved_algorithm != cfg["algorithm"]["name"]:
        raise ValueError(f"resume={cfg['resume']} was trained with algorithm {saved_algorithm!r}, not {cfg['algorithm']['name']!r}")
    if epoch > int(cfg["train"]["epochs"]):
        raise ValueError(f"resume={cfg['resume']} is already past train.epochs={cfg['train']['epochs']} (epoch {epoch})")
    if epoch == int(cfg["train"]["epochs"]) and "_step_" not in directory.name:
        raise ValueError(f"resume={cfg['resume']} already completed train.epochs={epoch}: raise train.epochs to train on")


def _undirected(algorithm: Any) -> str:
    """`sends replies back along each edge, so it needs an undirected topology`, with the algorithm's own reason."""
    return f"{algorithm.undirected_because}, so it needs an undirected topology"


def validate(cfg: Mapping[str, Any] | DictConfig, local_agents: int | None = None, on_this_machine: bool = True) -> str:
    """Check every part of a resolved config (a dict, or the DictConfig `compose_config` returns); return the
    topology description, or raise ConfigError.

    `on_this_machine=False` (jobs that will run on other nodes) skips the checks of this machine's data and GPUs.
    """
    if isinstance(cfg, DictConfig):  # what compose_config returns
        cfg = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
    problems: list[str] = []
    description = ""

    def attempt(check: Any, *args: Any) -> Any:
        try:
            return check(*args)
        except (ValueError, TypeError, KeyError, FileNotFoundError, TopologyError, DataError) as error:
            problems.append(str(error) if not isinstance(error, KeyError) else f"missing config key {error}")
        except Exception as error:  # a plugin's check or a bug: said with its type and line, in the one list
            plugin = getattr(getattr(check, "__self__", None), "name", None)  # an algorithm's classmethod
            problems.append(f"{f'algorithm={plugin}: ' if isinstance(plugin, str) else ''}{getattr(check, '__qualname__', check)} "
                            f"raised {failure(error)}")
        return None

    attempt(_check_numbers, cfg)
    attempt(_check_flags, cfg)
    missing = [group for group in GROUPS_WITH_NAME if isinstance(cfg.get(group), Mapping) and cfg[group].get("name") is None]
    problems += [f"{group}.name is missing: the {group} config file must set `name`, the registered NAME of {group}=NAME"
                 + (" (name: auto for the algorithm's own)" if group == "compressor" else "") for group in missing]
    algorithm = attempt(get_algorithm, cfg["algorithm"]["name"]) if "algorithm" not in missing else None
    if algorithm is not None:
        attempt(algorithm.check_hyperparameters, cfg["algorithm"])
        compressor = attempt(resolve_compressor, cfg.get("compressor"), algorithm) if "compressor" not in missing else None
        if compressor is not None:
            attempt(check_compressor, compressor)
    if all(isinstance(cfg.get(key), int) and not isinstance(cfg[key], bool) and cfg[key] >= minimum for key, minimum in (("agents", 1), ("seed", 0))):
        specs = cfg["topology"].get("schedule") or [cfg["topology"]]
        before = len(problems)
        topology = attempt(build_topology, cfg["topology"], int(cfg["agents"]), int(cfg["seed"]))
        if algorithm is not None and algorithm.needs_undirected and any(isinstance(s, dict) and s.get("directed") is True for s in specs):
            # Said instead of advice on a directed graph's weights, which would only lead to this refusal next.
            problems[before:] = [p for p in problems[before:] if " is directed: " not in p]
            problems.insert(before, f"algorithm {algorithm.name!r} {_undirected(algorithm)} (topology.directed=true asks for a directed one)")
            topology = None
        if topology is not None and algorithm is not None:
            mixing = attempt(algorithm.required_mixing, cfg["algorithm"])
            if mixing is not None:
                attempt(topology.validate, mixing)
            attempt(algorithm.check_topology, topology, cfg["algorithm"])
            if algorithm.needs_undirected and topology.directed:
                problems.append(f"algorithm {algorithm.name!r} {_undirected(algorithm)}")
            description = topology.describe()
        if on_this_machine and not {"data", "model", "partition"} & set(missing):
            attempt(_check_data, cfg)
            attempt(_check_backend, cfg, local_agents or int(cfg["agents"]))
    if cfg["logger"]["wandb"].get("mode", "disabled") not in WANDB_MODES:
        problems.append(f"logger.wandb.mode must be one of {WANDB_MODES}")
    else:
        attempt(preflight.check_wandb, cfg)
    attempt(_check_resume, cfg)
    if problems:
        raise ConfigError("invalid config:\n  - " + "\n  - ".join(problems))
    return description
