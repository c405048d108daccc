"""Model zoo: the papers' CNN, an MLP and a linear model, plus task losses."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from cgatrain.models.cnn import PaperCNN
from cgatrain.models.dense import build_linear, build_mlp
from cgatrain.models.losses import SqueezedMSELoss, loss_fn

KNOWN_MODELS = ("cnn", "linear", "mlp")


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
    if name == "mlp":
        hidden = cfg.get("hidden")
        return build_mlp(input_shape, num_outputs, [128] if hidden is None else list(hidden))
    if name == "linear":
        bias = cfg.get("bias")
        # bias-free by default for regression so weights line up with DatasetSplit.optimum
        return build_linear(input_shape, num_outputs, bias=(num_classes > 0) if bias is None else bool(bias))
    raise ValueError(f"unknown model {name!r}; known: {', '.join(KNOWN_MODELS)}")


__all__ = ["KNOWN_MODELS", "PaperCNN", "SqueezedMSELoss", "build_model", "loss_fn"]
