"""VGG-11 for 32x32 inputs (the CIFAR variant the CGA and Sparse-Push papers train): eight 3x3
convolutions, five max-pools, one linear layer on the 512 final features."""

from __future__ import annotations

import torch
from torch import nn

from cgatrain.models.norm import make_norm

VGG11_LAYOUT = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")


class VGG11(nn.Module):
    """conv-[norm]-ReLU blocks per VGG11_LAYOUT, then Linear(512 * h * w, classes).

    `norm="none"` is the papers' setting (CGA; Sparse-Push trains VGG11 without BatchNorm);
    the CGA authors' code puts BatchNorm after every convolution (`norm="batch"`).
    """

    def __init__(self, input_shape: tuple[int, ...], num_outputs: int, norm: str = "none", groups: int = 2) -> None:
        super().__init__()
        channels, height, width = input_shape
        if height < 32 or width < 32:
            raise ValueError(f"vgg11 needs inputs of at least 32x32 pixels (five 2x2 pools), got {height}x{width}")
        layers: list[nn.Module] = []
        for entry in VGG11_LAYOUT:
            if entry == "M":
                layers.append(nn.MaxPool2d(2))
                height, width = height // 2, width // 2
            else:
                layers += [nn.Conv2d(channels, int(entry), 3, padding=1), make_norm(norm, int(entry), groups), nn.ReLU(inplace=True)]
                channels = int(entry)
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(channels * height * width, num_outputs)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(inputs).flatten(1))
