"""Mistakes in a user's own plugins are refused in the parent, before any process starts, with a message naming
the config key (`data=NAME`, `partition=NAME`, `model=NAME`, `compressor=NAME`), never a bare traceback."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from omegaconf import OmegaConf
from torch import nn

from cgatrain.algorithms import ALGORITHMS, Algorithm, register
from cgatrain.algorithms.dpsgd import DPSGD
from cgatrain.compose import compose_config, config_dir
from cgatrain.compression import COMPRESSORS, Compressor, register_compressor
from cgatrain.config import ConfigError, validate
from cgatrain.data import DATASETS, PARTITIONS, DataError, DatasetSplit, load_dataset, partition_indices, register_dataset, register_partition
from cgatrain.data.datasets import describe_dataset
from cgatrain.models import MODELS, ModelSpec, check_model_input, register_model
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


# --- config files without `name`, and validate on compose_config's DictConfig ----------------------------------


@pytest.mark.parametrize("group", ["algorithm", "compressor", "data", "model", "partition"])
def test_a_config_file_without_name_is_refused_naming_the_key(group: str) -> None:
    cfg = composed("algorithm=sparse_push", "topology=directed_ring", "compressor=topk") if group == "compressor" else composed()
    del cfg[group]["name"]
    assert f"{group}.name is missing" in refusal(cfg)


def test_validate_takes_the_dictconfig_compose_config_returns() -> None:
    assert "ring" in validate(compose_config([]))


# --- data sets -----------------------------------------------------------------------------------------------------


def small_split(**changes: Any) -> DatasetSplit:
    """A valid 3-class split of 4-D vectors, with `changes` applied."""
    generator = torch.Generator().manual_seed(0)
    split = DatasetSplit(name="mine", train_x=torch.randn(30, 4, generator=generator), train_y=torch.arange(30) % 3,
                         test_x=torch.randn(9, 4, generator=generator), test_y=torch.arange(9) % 3,
                         num_classes=3, input_shape=(4,), task="classification")
    return dataclasses.replace(split, **changes)


@pytest.mark.parametrize(
    ("returned", "message"),
    [
        ({"train_x": None}, "data=mine_data: the loader returned a builtins.dict, not a cgatrain.data.common.DatasetSplit"),
        (small_split(train_x=np.zeros((30, 4), dtype=np.float32)),
         "data=mine_data: DatasetSplit.train_x is a numpy.ndarray, not a torch.Tensor (torch.from_numpy converts it)"),
        (small_split(train_y=(torch.arange(30) % 3).float()), "DatasetSplit.train_y is torch.float32; class labels must be int64"),
        (small_split(test_y=(torch.arange(9) % 3).int()), "DatasetSplit.test_y is torch.int32; class labels must be int64"),
        (small_split(train_y=torch.arange(30) % 4), "DatasetSplit.train_y holds label 3, outside [0, num_classes=3)"),
        (small_split(test_y=torch.arange(9) % 3 - 1), "DatasetSplit.test_y holds label -1, outside [0, num_classes=3)"),
        (small_split(input_shape=(5,)), "DatasetSplit.train_x holds samples of shape (4,), but input_shape is (5,)"),
        (small_split(test_x=torch.zeros(9, 4, dtype=torch.float64)), "DatasetSplit.test_x is torch.float64; features must be float32"),
        (small_split(train_y=torch.arange(29) % 3), "DatasetSplit.train_y has shape (29,); it must hold one label per sample"),
        (small_split(task="regresion"), "DatasetSplit.task must be 'classification' or 'regression', got 'regresion'"),
        (small_split(task="regression", num_classes=0), "regression targets must be float32"),
        (small_split(train_x=torch.zeros(30, 1, 2, 2, dtype=torch.uint8), input_shape=(1, 2, 2)),
         "uint8: only (N, C, H, W) images with `mean` and `std` may be"),
    ],
)
def test_a_loaders_bad_split_is_refused_in_the_parent(registered: Any, returned: Any, message: str) -> None:
    registered(DATASETS, "mine_data", lambda cfg: returned)
    cfg = composed("model=mlp")
    cfg["data"] = {"name": "mine_data"}
    assert message in refusal(cfg)
    with pytest.raises(DataError, match="data=mine_data: "):  # the agents' load says the same
        load_dataset({"name": "mine_data"})


def test_a_loaders_exception_names_the_loader_its_type_and_line(registered: Any) -> None:
    def broken(cfg: Mapping[str, Any]) -> DatasetSplit:
        return cfg.missing_attribute  # type: ignore[attr-defined]

    registered(DATASETS, "broken_data", broken)
    cfg = composed("model=mlp")
    cfg["data"] = {"name": "broken_data"}
    assert ("data=broken_data: the loader test_plugin_checks.test_a_loaders_exception_names_the_loader_its_type_and_line.<locals>.broken "
            "raised AttributeError: 'dict' object has no attribute 'missing_attribute' (at test_plugin_checks.py:") in refusal(cfg)


def test_the_built_in_data_sets_pass_the_split_check() -> None:
    from cgatrain.data.common import check_split
    from cgatrain.data.vision import load_vision

    for cfg in ({"name": "digits"}, {"name": "synthetic_regression"}):
        info = describe_dataset(cfg)
        assert info.task in ("classification", "regression")
    fake = yaml.safe_load(open(f"{config_dir()}/data/fake.yaml"))
    check_split(load_vision("fake", {**fake, "train_size": 20, "test_size": 10}), "fake")  # uint8 images with mean/std


# --- partitions ------------------------------------------------------------------------------------------------------

LABELS = np.arange(40) % 4


@pytest.mark.parametrize(
    ("partitioner", "message"),
    [
        (lambda labels, n, cfg, rng: rng.permutation(len(labels)),
         "partition=mine returned one array of shape (40,); a partitioner returns a list of 2 index arrays, one per agent"),
        (lambda labels, n, cfg, rng: [np.arange(40)], "partition=mine returned 1 shards for agents=2; it must return one per agent"),
        (lambda labels, n, cfg, rng: [np.arange(20.0), np.arange(20.0, 40.0)], "the shard of agent 0 holds float64 values"),
        (lambda labels, n, cfg, rng: [np.arange(20).reshape(4, 5), np.arange(20, 40)], "the shard of agent 0 has shape (4, 5)"),
        (lambda labels, n, cfg, rng: [np.arange(20), np.arange(21, 41)], "the shard of agent 1 holds index 40, outside [0, 40)"),
        (lambda labels, n, cfg, rng: [np.arange(25), np.arange(20, 40)], "partition=mine gives sample 20 to agents [0, 1] (5 samples more "
                                                                         "than once); the shards must be disjoint"),
        (lambda labels, n, cfg, rng: [[0, 0, 1], list(range(2, 40))], "gives sample 0 twice to agent 0"),
        (lambda labels, n, cfg, rng: [np.arange(20), 1 / 0], "partition=mine: the partitioner test_plugin_checks.<lambda> raised "
                                                             "ZeroDivisionError: division by zero (at test_plugin_checks.py:"),
    ],
)
def test_a_partitioners_bad_shards_are_refused(registered: Any, partitioner: Any, message: str) -> None:
    registered(PARTITIONS, "mine", partitioner)
    with pytest.raises(DataError) as caught:
        partition_indices(LABELS, 2, {"name": "mine"}, seed=0)
    assert message in str(caught.value)


def test_a_partitioner_that_ignores_its_rng_is_refused_in_the_parent(registered: Any) -> None:
    registered(PARTITIONS, "unseeded", lambda labels, n, cfg, rng: list(np.array_split(np.random.permutation(len(labels)), n)))
    cfg = composed("agents=2", "model=mlp")
    cfg["partition"] = {"name": "unseeded"}
    assert ("partition 'unseeded' must draw its randomness from the rng it is given: two calls with seed=0 gave different shards"
            in refusal(cfg))
    registered(PARTITIONS, "list_of_lists", lambda labels, n, cfg, rng: [list(range(0, len(labels), 2)), list(range(1, len(labels), 2))])
    cfg["partition"] = {"name": "list_of_lists"}  # plain sequences of ints are index arrays too
    validate(cfg)


@pytest.mark.parametrize("name", ["iid", "class", "skew", "shards", "dirichlet"])
def test_the_built_in_partitions_pass_the_shard_checks(name: str) -> None:
    from cgatrain.data.partition import partition_in_parent

    cfg = yaml.safe_load(open(f"{config_dir()}/partition/{name}.yaml"))
    shards = partition_in_parent(np.arange(400) % 10, 4, {**cfg, "min_size": 1}, seed=3)
    assert sorted(np.concatenate(shards).tolist()) == list(range(400)) or name == "class"


# --- models ----------------------------------------------------------------------------------------------------------


def test_a_builder_that_returns_no_module_is_refused(registered: Any) -> None:
    registered(MODELS, "returns_none", ModelSpec(lambda cfg, shape, outputs, classes: None, False))
    with pytest.raises(ValueError, match=r"model=returns_none on inputs \(4,\): the builder .*<lambda> returned a NoneType, "
                                         r"not a torch.nn.Module"):
        check_model_input({"name": "returns_none"}, (4,), 3)


class ReadsAValue(nn.Module):
    """A forward that reads a value (`.item()`): the check runs real tensors."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x) * (1.0 if float(x.abs().sum().item()) >= 0 else 2.0)


def test_a_model_whose_outputs_are_not_one_per_class_is_refused(registered: Any) -> None:
    registered(MODELS, "five_wide", ModelSpec(lambda cfg, shape, outputs, classes: nn.Linear(4, 5), False))
    with pytest.raises(ValueError, match=r"model=five_wide on inputs \(4,\): one sample gives outputs of shape \(5,\), but it needs "
                                         r"3 logits, one per class of the data: the builder's last layer must have its `num_outputs`"):
        check_model_input({"name": "five_wide"}, (4,), 3)
    with pytest.raises(ValueError, match=r"needs 1 output \(a regression task\)"):
        check_model_input({"name": "five_wide"}, (4,), 0)
    cfg = composed("model=mlp", "partition=iid")
    cfg["model"] = {"name": "five_wide"}
    cfg["data"] = {"name": "synthetic_regression", "dim": 4}
    assert "model=five_wide on inputs (4,): one sample gives outputs of shape (5,)" in refusal(cfg)
    registered(MODELS, "reads_a_value", ModelSpec(lambda cfg, shape, outputs, classes: ReadsAValue(), False))
    with pytest.raises(ValueError, match=r"model=reads_a_value on inputs \(4,\): one sample gives outputs of shape \(3,\), but it "
                                         r"needs 5 logits"):  # real tensors: meta ones have no .item()
        check_model_input({"name": "reads_a_value"}, (4,), 5)
    check_model_input({"name": "reads_a_value"}, (4,), 3)
    for model, shape in (({"name": "resnet20"}, (3, 32, 32)), ({"name": "vgg11", "norm": "batch"}, (3, 32, 32)),
                         ({"name": "resnet18"}, (3, 16, 16)), ({"name": "cnn_authors"}, (1, 28, 28)), ({"name": "lenet5"}, (1, 28, 28))):
        check_model_input(model, shape, 10)  # the built-in models pass, BatchNorm in eval mode on one sample
    check_model_input({"name": "linear"}, (4,), 0)


# --- compressors -----------------------------------------------------------------------------------------------------


def half_codec(short: int = 0, wire: torch.dtype = torch.float16) -> type[Compressor]:
    """A float16 codec whose payload_like is `short` elements short and of dtype `wire`."""

    class Half(Compressor):
        name = "half_mine"

        def compress(self, flat: torch.Tensor) -> list[torch.Tensor]:
            return [flat.half()]

        def decompress(self, payload: Sequence[torch.Tensor], numel: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
            return payload[0].to(dtype)

        def payload_like(self, numel: int, dtype: torch.dtype, device: torch.device) -> list[torch.Tensor]:
            return [torch.empty(numel - short, dtype=wire, device=device)]

    return Half


@pytest.mark.parametrize(("codec", "message"), [
    (half_codec(short=1), "compressor=half_mine: compress() of 37 float32 values gives [float16[37]], but payload_like(37, torch.float32) "
                          "gives [float16[36]]; they must agree in shape and dtype (receivers allocate their buffers with payload_like)"),
    (half_codec(wire=torch.bfloat16), "gives [float16[37]], but payload_like(37, torch.float32) gives [bfloat16[37]]"),
])
def test_a_compressor_whose_payload_disagrees_with_payload_like_is_refused(registered: Any, codec: type[Compressor], message: str) -> None:
    registered(COMPRESSORS, "half_mine", codec)
    cfg = composed("algorithm=sparse_push", "topology=directed_ring", "compressor=identity", "compressor.name=half_mine")
    assert message in refusal(cfg)
    COMPRESSORS.remove("half_mine")
    registered(COMPRESSORS, "half_mine", half_codec())  # payload_like right: it runs
    validate(cfg)


# --- an algorithm's own checks ---------------------------------------------------------------------------------------


def test_an_exception_of_an_algorithms_checks_is_an_invalid_config_line(registered: Any) -> None:
    class Careless(DPSGD):
        name = "careless"

        @classmethod
        def check_hyperparameters(cls, hparams: Mapping[str, Any]) -> None:
            hparams.damping  # type: ignore[attr-defined]  # noqa: B018

        @classmethod
        def required_mixing(cls, hparams: Mapping[str, Any]) -> str:
            return ["row"][1]

    registered(ALGORITHMS, "careless", Careless)
    message = refusal(composed("algorithm=dpsgd", "algorithm.name=careless"))
    assert ("algorithm=careless: test_an_exception_of_an_algorithms_checks_is_an_invalid_config_line.<locals>.Careless."
            "check_hyperparameters raised AttributeError: 'dict' object has no attribute 'damping' (at test_plugin_checks.py:") in message
    assert "algorithm=careless: test_an_exception_of_an_algorithms_checks_is_an_invalid_config_line.<locals>.Careless.required_mixing raised IndexError: list index out of range (at test_plugin_checks.py:" in message
