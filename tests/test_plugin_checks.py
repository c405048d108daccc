"""Mistakes in a user's own plugins are refused in the parent, before any process starts, with a message naming
the config key (`data=NAME`, `partition=NAME`, `model=NAME`, `compressor=NAME`), never a bare traceback."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from cgatrain.algorithms import ALGORITHMS, Algorithm, register
from cgatrain.algorithms.dpsgd import DPSGD
from cgatrain.compose import compose_config
from cgatrain.compression import register_compressor
from cgatrain.config import ConfigError, validate
from cgatrain.data import DATASETS, PARTITIONS, register_dataset, register_partition
from cgatrain.models import MODELS, register_model
from cgatrain.train.trainer import _loss_value


def composed(*overrides: str) -> dict[str, Any]:
    """The resolved config `cgatrain OVERRIDES...` would validate."""
    return OmegaConf.to_container(compose_config(list(overrides)), resolve=True)  # type: ignore[return-value]


def refusal(cfg: Mapping[str, Any]) -> str:
    """validate's message for `cfg` (which must be refused)."""
    with pytest.raises(ConfigError) as caught:
        validate(cfg)
    return str(caught.value)


@pytest.fixture
def registered() -> Iterator[Callable[[Any, str, Any], Any]]:
    """`registered(registry, name, obj)`: register for this test only."""
    added: list[tuple[Any, str]] = []

    def add(registry: Any, name: str, obj: Any) -> Any:
        registry.add(name, obj)
        added.append((registry, name))
        return obj

    yield add
    for registry, name in added:
        registry.remove(name)


# --- decorators used the wrong way ---------------------------------------------------------------------------------


@pytest.mark.parametrize("decorator", [register_model, register_dataset, register_partition])
def test_a_name_decorator_used_without_its_name_is_refused(decorator: Callable[..., Any]) -> None:
    def build_it(*args: Any) -> None:
        """A plugin."""

    before = (len(MODELS), len(DATASETS), len(PARTITIONS))
    with pytest.raises(TypeError, match=rf'write @{decorator.__name__}\("NAME"\) above it, not a bare @{decorator.__name__} '
                                        r"\(it got the function .*build_it\)"):
        decorator(build_it)
    assert (len(MODELS), len(DATASETS), len(PARTITIONS)) == before


@pytest.mark.parametrize("decorator", [register, register_compressor])
def test_a_class_decorator_given_a_name_is_refused(decorator: Callable[..., Any]) -> None:
    with pytest.raises(TypeError, match=rf"@{decorator.__name__} takes no arguments: set the class attribute `name = 'mine'`"):
        decorator("mine")


def test_register_refuses_an_algorithm_without_step_or_with_rounds_as_one_string() -> None:
    class NoStep(Algorithm):
        name = "no_step"

    with pytest.raises(TypeError, match=r"algorithm 'no_step': class .*NoStep does not define step; step\(lr, step, epoch\)"):
        register(NoStep)

    class OneString(DPSGD):
        name = "one_string"
        rounds = "model"  # type: ignore[assignment]

    with pytest.raises(TypeError, match=r"algorithm 'one_string': class attribute `rounds` must be a tuple of round names, "
                                        r"e.g. rounds = \('model',\), got 'model'"):
        register(OneString)
    assert "no_step" not in ALGORITHMS and "one_string" not in ALGORITHMS


# --- an algorithm's step and state -------------------------------------------------------------------------------


@pytest.mark.parametrize("loss", [None, (torch.tensor(1.0), 3), torch.ones(4), "1.0", True])
def test_a_step_that_does_not_return_the_loss_is_named(loss: Any) -> None:
    with pytest.raises(TypeError, match=r"algorithm 'mine': step\(\) must return the loss, a float or a 0-dim tensor"):
        _loss_value(loss, "mine")
    assert _loss_value(torch.tensor(2.5)) == 2.5 and _loss_value(np.float32(1.5)) == 1.5 and _loss_value(3) == 3.0


def test_a_state_entry_that_is_no_tensor_is_named_at_the_checkpoint() -> None:
    algorithm = DPSGD(None, {})  # type: ignore[arg-type]  # state_dict needs no context
    algorithm.state["count"] = 3  # type: ignore[assignment]
    algorithm.state["_scratch"] = 4  # type: ignore[assignment]  # scratch is not saved: anything goes
    with pytest.raises(TypeError, match=r"algorithm 'dpsgd': self.state\['count'\] is a int; checkpoints save only tensors"):
        algorithm.state_dict()
    algorithm.state["count"] = torch.tensor(3)
    assert set(algorithm.state_dict()) == {"count", "dense_bytes_sent"}
