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
from cgatrain.registry import failure, origin


def check_model_input(cfg: Mapping[str, Any], input_shape: tuple[int, ...], num_classes: int | None = None) -> None:
    """Reject an unknown model, a bad `model.norm`, image models on non-image data, or options it cannot be built with.

    With `num_classes`, the model is built once on the CPU and one sample passed through it, so that every option
    the constructors refuse, a builder that returns no `nn.Module` and outputs that are not one per class (one for
    regression) are refused in the parent, before any agent starts.
    """
    name = cfg.get("name")
    if name is None:
        raise ValueError(f"model.name is missing: a model config names its model; known: {', '.join(MODELS.names())}")
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
    """Build the model on the CPU and pass one sample through; a refusal names the model and its options (sweep
    jobs share the result). Not on the meta device: its first use imports for two seconds, longer than building
    any of the papers' models (ResNet-110: 0.1 s)."""
    cfg = json.loads(cfg_json)
    options = ", ".join(f"model.{key}={value!r}" for key, value in cfg.items() if key != "name")
    where = f"model={cfg.get('name')}{' with ' + options if options else ''} on inputs {input_shape}"
    try:
        outputs = _one_sample(cfg, input_shape, num_classes)
    except (ValueError, TypeError, KeyError) as error:  # the builder's refusals of its options
        raise ValueError(f"{where}: {_reason(error, cfg)}") from None
    except Exception as error:
        raise ValueError(f"{where}: {failure(error)}") from None
    expected = (1, num_classes) if num_classes > 0 else (1, 1)
    if not isinstance(outputs, torch.Tensor):
        raise ValueError(f"{where}: the model's forward returns a {type(outputs).__qualname__}, not a tensor of outputs")
    if tuple(outputs.shape) != expected and not (num_classes == 0 and tuple(outputs.shape) == (1,)):
        wanted = f"{num_classes} logits, one per class of the data" if num_classes > 0 else "1 output (a regression task)"
        raise ValueError(f"{where}: one sample gives outputs of shape {tuple(outputs.shape[1:])}, but it needs {wanted}: "
                         "the builder's last layer must have its `num_outputs` argument's width")


def _one_sample(cfg: Mapping[str, Any], input_shape: tuple[int, ...], num_classes: int) -> Any:
    """The outputs of the model `cfg` for one zero sample, in eval mode (BatchNorm on a batch of 1), on the CPU."""
    with torch.device("cpu"):
        model = build_model(cfg, input_shape, num_classes)
    model.eval()
    with torch.no_grad():
        return model(torch.zeros((1, *input_shape)))


def _reason(error: Exception, cfg: Mapping[str, Any]) -> str:
    """The builder's refusal; a KeyError (a lookup of an option's value) names the option, not just the value; any other
    type than these two (a TypeError of a plugin's bug) is said with its type and line."""
    if isinstance(error, ValueError):
        return str(error)
    if not isinstance(error, KeyError) or not error.args:
        return failure(error)
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
    name = cfg.get("name")
    if name is None:
        raise ValueError(f"model.name is missing: a model config names its model; known: {', '.join(MODELS.names())}")
    spec = MODELS.get(name)
    input_shape = tuple(int(d) for d in input_shape)
    model = spec.builder(cfg, input_shape, num_classes if num_classes > 0 else 1, num_classes)
    if not isinstance(model, nn.Module):
        raise ValueError(f"the builder {origin(spec.builder)} returned a {type(model).__qualname__}, not a torch.nn.Module")
    return model


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
