"""The model registry and the built-in models' builders: `@register_model(name)` makes `model=name` selectable."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from torch import nn

from cgatrain.models.authors_cnn import AuthorsCNN
from cgatrain.models.cnn import PaperCNN
from cgatrain.models.dense import build_linear, build_mlp
from cgatrain.models.resnet import DEPTHS, CifarResNet
from cgatrain.models.small import LeNet5, resnet18
from cgatrain.models.vgg import VGG11
from cgatrain.registry import Registry, require_name

Builder = Callable[[Mapping[str, Any], tuple[int, ...], int, int], nn.Module]
"""``builder(cfg, input_shape, num_outputs, num_classes)``: num_outputs is 1 for regression (num_classes == 0)."""


@dataclass(frozen=True)
class ModelSpec:
    """A registered model: its builder, and whether it needs image inputs (C, H, W)."""

    builder: Builder
    image: bool

    @property
    def __wrapped__(self) -> Builder:
        """The builder, so the registry names where a clashing model is defined."""
        return self.builder


MODELS: Registry[ModelSpec] = Registry("model")


def register_model(name: str, image: bool = False) -> Callable[[Builder], Builder]:
    """Decorator: make the builder selectable as `model=name`; `image=True` refuses non-image data up front."""
    require_name(name, "register_model")

    def decorate(builder: Builder) -> Builder:
        MODELS.add(name, ModelSpec(builder, image))
        return builder

    return decorate


def _norm(cfg: Mapping[str, Any], default: str) -> tuple[str, int]:
    """`model.norm` (or the model's default) and `model.groups` (default 2)."""
    groups = cfg.get("groups")
    if groups is None:
        groups = 2
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise ValueError(f"model.groups must be an integer >= 1, got {groups!r}")
    return str(cfg.get("norm") or default), groups


@register_model("cnn", image=True)
def _cnn(cfg: Mapping[str, Any], input_shape: tuple[int, ...], num_outputs: int, num_classes: int) -> nn.Module:
    """The papers' CNN; `model.activation`: relu (default) | none."""
    return PaperCNN(input_shape, num_outputs, activation=str(cfg.get("activation") or "relu"))


@register_model("cnn_authors", image=True)
def _cnn_authors(cfg: Mapping[str, Any], input_shape: tuple[int, ...], num_outputs: int, num_classes: int) -> nn.Module:
    """The CGA authors' CNN; `model.dropout` (default 0.25)."""
    return AuthorsCNN(input_shape, num_outputs, float(cfg.get("dropout", 0.25)))


@register_model("vgg11", image=True)
def _vgg11(cfg: Mapping[str, Any], input_shape: tuple[int, ...], num_outputs: int, num_classes: int) -> nn.Module:
    """VGG-11; `model.norm` none (default) | batch | group, `model.groups`."""
    return VGG11(input_shape, num_outputs, *_norm(cfg, "none"))


@register_model("lenet5", image=True)
def _lenet5(cfg: Mapping[str, Any], input_shape: tuple[int, ...], num_outputs: int, num_classes: int) -> nn.Module:
    """LeNet-5; no options."""
    return LeNet5(input_shape, num_outputs)


@register_model("resnet18", image=True)
def _resnet18(cfg: Mapping[str, Any], input_shape: tuple[int, ...], num_outputs: int, num_classes: int) -> nn.Module:
    """torchvision's ResNet-18; `model.norm` batch (default) | group, `model.groups`."""
    return resnet18(input_shape, num_outputs, *_norm(cfg, "batch"))


def _cifar_resnet(depth_name: str) -> Builder:
    """The builder of one CIFAR ResNet depth (resnet20, resnet110)."""

    def build(cfg: Mapping[str, Any], input_shape: tuple[int, ...], num_outputs: int, num_classes: int) -> nn.Module:
        """CIFAR ResNet; `model.norm` batch (default) | group | none, `model.groups`."""
        return CifarResNet(input_shape, num_outputs, DEPTHS[depth_name], *_norm(cfg, "batch"))

    build.__qualname__ = f"_cifar_resnet({depth_name!r})"
    return build


for _depth_name in DEPTHS:
    register_model(_depth_name, image=True)(_cifar_resnet(_depth_name))


@register_model("mlp")
def _mlp(cfg: Mapping[str, Any], input_shape: tuple[int, ...], num_outputs: int, num_classes: int) -> nn.Module:
    """ReLU MLP; `model.hidden`: list of widths (default [128])."""
    hidden = cfg.get("hidden")
    return build_mlp(input_shape, num_outputs, [128] if hidden is None else list(hidden))


@register_model("linear")
def _linear(cfg: Mapping[str, Any], input_shape: tuple[int, ...], num_outputs: int, num_classes: int) -> nn.Module:
    """One Linear layer; `model.bias` (default: none for regression, one for classification)."""
    bias = cfg.get("bias")
    if bias is not None and not isinstance(bias, bool):
        raise ValueError(f"model.bias must be true, false or null, got {bias!r}")
    # bias-free by default for regression so weights line up with DatasetSplit.optimum
    return build_linear(input_shape, num_outputs, bias=(num_classes > 0) if bias is None else bias)
