"""The 4-conv + 2-dense CNN used in the CGA (and CDSGD) papers' experiments."""

from __future__ import annotations

import torch
from torch import nn

_ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "none": nn.Identity, "identity": nn.Identity}


def make_activation(name: str) -> nn.Module:
    """Return a fresh activation module for ``relu`` or ``none``/``identity``."""
    key = str(name).lower()
    if key not in _ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; known: {', '.join(sorted(_ACTIVATIONS))}")
    return _ACTIVATIONS[key]()


class PaperCNN(nn.Module):
    """conv32-conv32-pool, conv64-conv64-pool, dense 512, dense ``num_outputs``.

    All convolutions are 3x3 with padding 1, so each 2x2 max-pool halves the
    spatial size (floor): 28x28 -> 7x7 and 8x8 -> 2x2 before flattening.
    ``activation="relu"`` follows the paper's text; ``"none"`` reproduces the
    authors' published code, which leaves the activations out (the network is
    then linear apart from the max-pools).
    """

    def __init__(self, input_shape: tuple[int, ...], num_outputs: int, activation: str = "relu") -> None:
        """Build the layers for per-sample ``input_shape`` = (channels, height, width)."""
        super().__init__()
        if len(input_shape) != 3:
            raise ValueError(f"cnn needs a (channels, height, width) input shape, got {input_shape}")
        channels, height, width = input_shape
        pooled_height, pooled_width = height // 4, width // 4
        if pooled_height < 1 or pooled_width < 1:
            raise ValueError(f"cnn needs inputs of at least 4x4 pixels, got {height}x{width}")
        self.features = nn.Sequential(
            nn.Conv2d(channels, 32, kernel_size=3, padding=1),
            make_activation(activation),
            nn.Conv2d(32, 32, kernel_size=3, padding=1),
            make_activation(activation),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, kernel_size=3, padding=1),
            make_activation(activation),
            nn.Conv2d(64, 64, kernel_size=3, padding=1),
            make_activation(activation),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(64 * pooled_height * pooled_width, 512),
            make_activation(activation),
            nn.Linear(512, num_outputs),
        )

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Map a batch ``(N, C, H, W)`` to outputs ``(N, num_outputs)``."""
        return self.classifier(self.features(inputs))
