"""Model zoo: the papers' CNN, the CGA authors' CNN, VGG-11, CIFAR ResNet-20/110, an MLP and a linear model, plus task losses."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from cgatrain.models.authors_cnn import AuthorsCNN
from cgatrain.models.cnn import PaperCNN
from cgatrain.models.dense import build_linear, build_mlp
from cgatrain.models.losses import SqueezedMSELoss, loss_fn
from cgatrain.models.norm import NORMS, check_buffer_mode
from cgatrain.models.resnet import DEPTHS, CifarResNet
from cgatrain.models.small import LeNet5, resnet18
from cgatrain.models.vgg import VGG11

KNOWN_MODELS = ("cnn", "cnn_authors", "lenet5", "linear", "mlp", "resnet18", "resnet20", "resnet110", "vgg11")
IMAGE_MODELS = ("cnn", "cnn_authors", "lenet5", "resnet18", "resnet20", "resnet110", "vgg11")


def check_model_input(cfg: Mapping[str, Any], input_shape: tuple[int, ...], num_classes: int | None = None) -> None:
    """Reject an unknown model, a bad `model.norm`, image models on non-image data, or options it cannot be built with.

    With `num_classes`, the model is built once on the meta device (no memory, no compute), so that every
    option the constructors refuse is refused in the parent, before any agent starts.
    """
    name = cfg.get("name")
    if name not in KNOWN_MODELS:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(KNOWN_MODELS)}")
    if name in IMAGE_MODELS and len(input_shape) != 3:
        raise ValueError(f"model={name} needs image inputs (C, H, W); the data gives {tuple(input_shape)}")
    norm = cfg.get("norm")
    if norm is not None and norm not in NORMS:
        raise ValueError(f"model.norm must be one of {NORMS}, not {norm!r}")
    check_buffer_mode(str(cfg.get("buffers") or "local"))
    if num_classes is not None:
        _check_builds(json.dumps(dict(cfg), sort_keys=True, default=str), tuple(int(d) for d in input_shape), int(num_classes))


@functools.lru_cache(maxsize=32)
def _check_builds(cfg_json: str, input_shape: tuple[int, ...], num_classes: int) -> None:
    """Build on the meta device; a refusal names the model and its options (sweep jobs share the result)."""
    cfg = json.loads(cfg_json)
    try:
        with torch.device("meta"):
            build_model(cfg, input_shape, num_classes)
    except (ValueError, TypeError, RuntimeError) as error:
        options = ", ".join(f"model.{key}={value!r}" for key, value in cfg.items() if key != "name")
        raise ValueError(f"model={cfg.get('name')}{' with ' + options if options else ''} on inputs {input_shape}: {error}") from None


def build_model(cfg: Mapping[str, Any], input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """Build the model named by ``cfg["name"]`` for per-sample ``input_shape``.

    ``num_classes > 0`` gives that many logits; ``num_classes == 0`` means
    regression and gives a single output. Options: cnn ``activation``
    (relu | none), mlp ``hidden`` (list of widths), linear ``bias`` (default
    false for regression so the weights compare with the least-squares
    optimum, true for classification). No BatchNorm or dropout anywhere.
    """
    name = cfg.get("name")
    if num_classes < 0:
        raise ValueError(f"num_classes must be >= 0 (0 = regression), got {num_classes}")
    input_shape = tuple(int(d) for d in input_shape)
    num_outputs = num_classes if num_classes > 0 else 1
    if name == "cnn":
        return PaperCNN(input_shape, num_outputs, activation=str(cfg.get("activation") or "relu"))
    norm, groups = cfg.get("norm"), int(cfg.get("groups") or 2)
    if name == "cnn_authors":
        return AuthorsCNN(input_shape, num_outputs, float(cfg.get("dropout", 0.25)))
    if name == "vgg11":
        return VGG11(input_shape, num_outputs, str(norm or "none"), groups)
    if name == "lenet5":
        return LeNet5(input_shape, num_outputs)
    if name == "resnet18":
        return resnet18(input_shape, num_outputs, str(norm or "batch"), groups)
    if name in DEPTHS:
        return CifarResNet(input_shape, num_outputs, DEPTHS[name], str(norm or "batch"), groups)
    if name == "mlp":
        hidden = cfg.get("hidden")
        return build_mlp(input_shape, num_outputs, [128] if hidden is None else list(hidden))
    if name == "linear":
        bias = cfg.get("bias")
        # bias-free by default for regression so weights line up with DatasetSplit.optimum
        return build_linear(input_shape, num_outputs, bias=(num_classes > 0) if bias is None else bool(bias))
    raise ValueError(f"unknown model {name!r}; known: {', '.join(KNOWN_MODELS)}")


__all__ = ["KNOWN_MODELS", "VGG11", "AuthorsCNN", "CifarResNet", "PaperCNN", "SqueezedMSELoss", "build_model", "check_model_input", "loss_fn"]
