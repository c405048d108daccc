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
