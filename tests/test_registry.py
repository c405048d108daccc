"""One registry for every pluggable kind: the generic Registry, and a model, data set and partition added in one place."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from cgatrain.data import DATASETS, PARTITIONS, DataError, DatasetSplit, load_dataset, partition_indices, register_dataset, register_partition
from cgatrain.data.datasets import describe_dataset, known_datasets
from cgatrain.models import MODELS, build_model, check_model_input, register_model
from cgatrain.registry import Registry


def first() -> None:
    """A registered object."""


def second() -> None:
    """Another object, defined elsewhere."""


def test_registry_registers_lists_and_returns_the_object_unchanged() -> None:
    registry: Registry[Any] = Registry("widget")
    assert registry.register("b")(first) is first
    registry.register("a")(second)
    assert registry.get("b") is first and registry.names() == ("a", "b") == tuple(registry)
    assert "a" in registry and "c" not in registry and ["a"] not in registry and len(registry) == 2


def test_registering_the_same_object_twice_is_a_no_op() -> None:
    registry: Registry[Any] = Registry("widget")
    registry.register("a")(first)
    registry.register("a")(first)
    assert registry.get("a") is first


def test_a_name_taken_by_another_object_is_refused_naming_both() -> None:
    registry: Registry[Any] = Registry("widget")
    registry.register("a")(first)
    with pytest.raises(ValueError, match=r"widget 'a' is already registered by test_registry\.first; cannot register test_registry\.second"):
        registry.register("a")(second)
    assert registry.get("a") is first


def test_an_unknown_name_lists_the_known_ones_with_the_registry_error() -> None:
    registry: Registry[Any] = Registry("widget", DataError)
    registry.register("b")(first)
    registry.register("a")(second)
    with pytest.raises(DataError, match=r"^unknown widget 'c'; known: a, b$"):
        registry.get("c")
    registry.remove("a")
    assert registry.names() == ("b",)


@pytest.fixture
def tiny_model() -> Iterator[str]:
    @register_model("tiny_linear")
    def build(cfg: Mapping[str, Any], input_shape: tuple[int, ...], num_outputs: int, num_classes: int) -> nn.Module:
        return nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(input_shape)), num_outputs))

    yield "tiny_linear"
    MODELS.remove("tiny_linear")


def test_a_registered_model_is_built_and_checked(tiny_model: str) -> None:
    model = build_model({"name": tiny_model}, (1, 2, 2), 3)
    assert model(torch.zeros(5, 1, 2, 2)).shape == (5, 3)
    check_model_input({"name": tiny_model}, (4,), num_classes=3)
    with pytest.raises(ValueError, match="unknown model 'tiny_linaer'; known: .*tiny_linear"):
        check_model_input({"name": "tiny_linaer"}, (4,))


def test_an_image_model_refuses_flat_inputs_and_a_builder_keyerror_names_the_option() -> None:
    @register_model("tiny_image", image=True)
    def build(cfg: Mapping[str, Any], input_shape: tuple[int, ...], num_outputs: int, num_classes: int) -> nn.Module:
        return {"relu": nn.ReLU}[cfg["activation"]]()

    try:
        with pytest.raises(ValueError, match=r"model=tiny_image needs image inputs \(C, H, W\); the data gives \(4,\)"):
            check_model_input({"name": "tiny_image"}, (4,))
        with pytest.raises(ValueError, match="model.activation='gelu' is not a value model=tiny_image knows"):
            check_model_input({"name": "tiny_image", "activation": "gelu"}, (1, 2, 2), num_classes=3)
    finally:
        MODELS.remove("tiny_image")


@pytest.fixture
def tiny_dataset() -> Iterator[str]:
    @register_dataset("tiny")
    def load(cfg: Mapping[str, Any]) -> DatasetSplit:
        x = torch.arange(12, dtype=torch.float32).reshape(6, 2)
        return DatasetSplit(name="tiny", train_x=x[:4], train_y=torch.tensor([0, 1, 0, 1]), test_x=x[4:], test_y=torch.tensor([0, 1]),
                            num_classes=2, input_shape=(2,), task="classification")

    yield "tiny"
    DATASETS.remove("tiny")


def test_a_registered_dataset_is_loaded_and_described(tiny_dataset: str) -> None:
    assert tiny_dataset in known_datasets()
    split = load_dataset({"name": tiny_dataset})
    assert split.train_x.shape == (4, 2) and split.num_classes == 2
    info = describe_dataset({"name": tiny_dataset})
    assert info.input_shape == (2,) and info.train_labels.tolist() == [0, 1, 0, 1]
    with pytest.raises(DataError, match="unknown dataset 'tiyn'; known: .*tiny"):
        load_dataset({"name": "tiyn"})


def test_an_image_dataset_name_cannot_be_registered() -> None:
    with pytest.raises(DataError, match="'cifar10' is one of the image data sets"):
        register_dataset("cifar10")


@pytest.fixture
def halves() -> Iterator[str]:
    @register_partition("halves")
    def split(labels: np.ndarray, num_agents: int, cfg: Mapping[str, Any], rng: np.random.Generator) -> list[np.ndarray]:
        return list(np.array_split(np.arange(len(labels)), num_agents))

    yield "halves"
    PARTITIONS.remove("halves")


def test_a_registered_partition_splits_and_its_errors_are_data_errors(halves: str) -> None:
    shards = partition_indices(np.zeros(5, dtype=np.int64), 2, {"name": halves}, seed=0)
    assert [shard.tolist() for shard in shards] == [[0, 1, 2], [3, 4]]
    with pytest.raises(DataError, match="leaves agents \\[5\\] with no data"):
        partition_indices(np.zeros(5, dtype=np.int64), 6, {"name": halves}, seed=0)
    with pytest.raises(DataError, match="unknown partition 'halfs'; known: class, dirichlet, halves, iid, shards, skew"):
        partition_indices(np.zeros(5, dtype=np.int64), 2, {"name": "halfs"}, seed=0)
