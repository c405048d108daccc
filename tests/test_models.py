"""Tests for cgatrain.models: output shapes, the CNN's parameter count, losses."""

from __future__ import annotations

import pytest
import torch

from cgatrain.models import build_model, loss_fn

SHAPES = [(1, 8, 8), (1, 28, 28)]


def _count(model: torch.nn.Module) -> int:
    """Total number of trainable scalars in ``model``."""
    return sum(parameter.numel() for parameter in model.parameters())


MODEL_CFGS = [{"name": "cnn"}, {"name": "cnn", "activation": "none"}, {"name": "mlp", "hidden": [32, 16]}, {"name": "linear"}]


@pytest.mark.parametrize("input_shape", SHAPES)
@pytest.mark.parametrize("cfg", MODEL_CFGS)
def test_output_shapes(cfg: dict, input_shape: tuple[int, ...]) -> None:
    model = build_model(cfg, input_shape, num_classes=10)
    assert model(torch.zeros(3, *input_shape)).shape == (3, 10)


def test_cnn_parameter_count_mnist() -> None:
    conv = (1 * 9 * 32 + 32) + (32 * 9 * 32 + 32) + (32 * 9 * 64 + 64) + (64 * 9 * 64 + 64)
    dense = (64 * 7 * 7 * 512 + 512) + (512 * 10 + 10)
    assert conv + dense == 1_676_266
    assert _count(build_model({"name": "cnn"}, (1, 28, 28), 10)) == 1_676_266


def test_cnn_activation_none_has_no_relu() -> None:
    model = build_model({"name": "cnn", "activation": "none"}, (1, 8, 8), 10)
    assert not any(isinstance(module, torch.nn.ReLU) for module in model.modules())
    assert sum(isinstance(module, torch.nn.ReLU) for module in build_model({"name": "cnn"}, (1, 8, 8), 10).modules()) == 5


def test_linear_regression_model_is_bias_free() -> None:
    model = build_model({"name": "linear"}, (10,), num_classes=0)
    assert model(torch.zeros(4, 10)).shape == (4, 1)
    assert _count(model) == 10 and all(parameter.shape == (1, 10) for parameter in model.parameters())
    assert _count(build_model({"name": "linear"}, (10,), num_classes=3)) == 33


def test_no_batchnorm_or_dropout() -> None:
    for name in ("cnn", "mlp", "linear"):
        model = build_model({"name": name}, (1, 28, 28), 10)
        assert not any(isinstance(m, (torch.nn.modules.batchnorm._BatchNorm, torch.nn.Dropout)) for m in model.modules())


def test_unknown_model_lists_known_names() -> None:
    with pytest.raises(ValueError, match="cnn"):
        build_model({"name": "resnet"}, (1, 8, 8), 10)


def test_losses() -> None:
    logits, classes = torch.zeros(4, 10), torch.tensor([0, 1, 2, 3])
    assert torch.isclose(loss_fn("classification")(logits, classes), torch.log(torch.tensor(10.0)))
    predictions, targets = torch.tensor([[1.0], [3.0]]), torch.tensor([0.0, 1.0])
    assert torch.isclose(loss_fn("regression")(predictions, targets), torch.tensor(2.5))
    with pytest.raises(ValueError):
        loss_fn("ranking")


def test_cnn_authors_is_the_authors_network_exactly() -> None:
    model = build_model({"name": "cnn_authors"}, (1, 28, 28), 10)
    kinds = [type(m).__name__ for m in model.features] + [type(model.classifier).__name__]
    assert kinds == ["Conv2d", "Conv2d", "MaxPool2d", "Dropout", "Conv2d", "MaxPool2d", "Conv2d", "MaxPool2d", "Linear"]
    assert model.features[3].p == 0.25 and model.classifier.in_features == 576 and model.classifier.out_features == 10
    assert not any(isinstance(m, torch.nn.ReLU) for m in model.modules())
    conv = (1 * 9 * 32 + 32) + (32 * 9 * 32 + 32) + (32 * 9 * 64 + 64) + (64 * 9 * 64 + 64)
    assert _count(model) == conv + 576 * 10 + 10 == 70_762
    assert _count(build_model({"name": "cnn"}, (1, 28, 28), 10)) / _count(model) > 23  # ours is 24x larger
    assert build_model({"name": "cnn_authors"}, (3, 32, 32), 10).classifier.in_features == 1024


@pytest.mark.parametrize(
    ("cfg", "shape", "params"),
    [
        ({"name": "vgg11"}, (3, 32, 32), 9_225_610),
        ({"name": "resnet20"}, (3, 32, 32), 269_722),
        ({"name": "resnet110"}, (3, 32, 32), 1_727_962),
        ({"name": "lenet5"}, (3, 32, 32), 62_006),
    ],
)
def test_cifar_models_have_the_published_sizes(cfg: dict, shape: tuple[int, ...], params: int) -> None:
    model = build_model(cfg, shape, 10)
    assert _count(model) == params and model(torch.zeros(2, *shape)).shape == (2, 10)


def test_norm_choices() -> None:
    def norms(cfg: dict) -> set[str]:
        return {type(m).__name__ for m in build_model(cfg, (3, 32, 32), 10).modules() if "Norm" in type(m).__name__}

    assert norms({"name": "vgg11"}) == set() and norms({"name": "vgg11", "norm": "batch"}) == {"BatchNorm2d"}
    assert norms({"name": "resnet20"}) == {"BatchNorm2d"} and norms({"name": "resnet20", "norm": "group"}) == {"GroupNorm"}
    grouped = build_model({"name": "resnet20", "norm": "group", "groups": 2}, (3, 32, 32), 10)
    assert all(m.num_groups == 2 for m in grouped.modules() if isinstance(m, torch.nn.GroupNorm))
    assert not list(grouped.buffers())  # GroupNorm keeps no running statistics


def test_model_input_checks_name_the_key() -> None:
    from cgatrain.models import check_model_input

    with pytest.raises(ValueError, match="model=vgg11 needs image inputs"):
        check_model_input({"name": "vgg11"}, (64,))
    with pytest.raises(ValueError, match="model.norm"):
        check_model_input({"name": "resnet20", "norm": "layer"}, (3, 32, 32))
    with pytest.raises(ValueError, match="model.buffers"):
        check_model_input({"name": "resnet20", "buffers": "sum"}, (3, 32, 32))
