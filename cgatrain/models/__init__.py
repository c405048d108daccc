"""Model zoo: the papers' CNN, the CGA authors' CNN, VGG-11, CIFAR ResNet-20/110, an MLP and a linear model, plus task losses."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from cgatrain.models.authors_cnn import AuthorsCNN
from cgatrain.models.builders import MODELS, ModelSpec, register_model
from cgatrain.models.cnn import PaperCNN
from cgatrain.models.losses import SqueezedMSELoss, loss_fn
from cgatrain.models.norm import NORMS, check_buffer_mode
from cgatrain.models.resnet import CifarResNet
from cgatrain.models.vgg import VGG11


def check_model_input(cfg: Mapping[str, Any], input_shape: tuple[int, ...], num_classes: int | None = None) -> None:
    """Reject an unknown model, a bad `model.norm`, image models on non-image data, or options it cannot be built with.

    With `num_classes`, the model is built once on the meta device (no memory, no compute), so that every
    option the constructors refuse is refused in the parent, before any agent starts.
    """
    name = cfg.get("name")
    if MODELS.get(name).image and len(input_shape) != 3:
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
    except (ValueError, TypeError, RuntimeError, KeyError) as error:
        options = ", ".join(f"model.{key}={value!r}" for key, value in cfg.items() if key != "name")
        raise ValueError(f"model={cfg.get('name')}{' with ' + options if options else ''} on inputs {input_shape}: {_reason(error, cfg)}") from None


def _reason(error: Exception, cfg: Mapping[str, Any]) -> str:
    """The builder's refusal; a KeyError (a lookup of an option's value) names the option, not just the value."""
    if not isinstance(error, KeyError) or not error.args:
        return str(error)
    key = error.args[0]
    options = [name for name, value in cfg.items() if name != "name" and value == key]
    return f"model.{options[0]}={key!r} is not a value model={cfg.get('name')} knows" if options else f"the builder found no {key!r}"


def build_model(cfg: Mapping[str, Any], input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """Build the registered model named by ``cfg["name"]`` for per-sample ``input_shape``.

    ``num_classes > 0`` gives that many logits; ``num_classes == 0`` means regression and gives a single
    output. The model's options are the other keys of ``cfg``: see each builder in
    `cgatrain/models/builders.py` (vgg11 and the ResNets take `norm`, BatchNorm by default for the
    ResNets; cnn_authors has dropout).
    """
    if num_classes < 0:
        raise ValueError(f"num_classes must be >= 0 (0 = regression), got {num_classes}")
    spec = MODELS.get(cfg.get("name"))
    input_shape = tuple(int(d) for d in input_shape)
    return spec.builder(cfg, input_shape, num_classes if num_classes > 0 else 1, num_classes)


__all__ = [
    "MODELS",
    "VGG11",
    "AuthorsCNN",
    "CifarResNet",
    "ModelSpec",
    "PaperCNN",
    "SqueezedMSELoss",
    "build_model",
    "check_model_input",
    "loss_fn",
    "register_model",
]
