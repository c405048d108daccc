"""The NGO paper's classification networks: LeNet-5 for CIFAR-10 (its Table S5) and ResNet-18 with a
200-way head for TinyImageNet (its Table S7, torchvision's ResNet-18)."""

from __future__ import annotations

import torch
from torch import nn


class LeNet5(nn.Module):
    """conv6 5x5-ReLU-pool, conv16 5x5-ReLU-pool, fc120-ReLU, fc84-ReLU, fc classes."""

    def __init__(self, input_shape: tuple[int, ...], num_outputs: int) -> None:
        super().__init__()
        channels, height, width = input_shape
        height, width = ((height - 4) // 2 - 4) // 2, ((width - 4) // 2 - 4) // 2
        if height < 1 or width < 1:
            raise ValueError(f"lenet5 needs inputs of at least 16x16 pixels, got {input_shape[1]}x{input_shape[2]}")
        self.features = nn.Sequential(
            nn.Conv2d(channels, 6, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2)
        )
        self.classifier = nn.Sequential(
            nn.Linear(16 * height * width, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, num_outputs)
        )

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(inputs).flatten(1))


def resnet18(input_shape: tuple[int, ...], num_outputs: int, norm: str = "batch", groups: int = 2) -> nn.Module:
    """torchvision's ResNet-18 (ImageNet stem) with a `num_outputs`-way last layer; GroupNorm if asked."""
    from torchvision.models import resnet18 as torchvision_resnet18

    norm_layer = None if norm == "batch" else (lambda channels: nn.GroupNorm(groups, channels))
    if norm == "none":
        raise ValueError("resnet18 needs model.norm=batch or group")
    model = torchvision_resnet18(weights=None, num_classes=num_outputs, norm_layer=norm_layer)
    if input_shape[0] != 3:
        model.conv1 = nn.Conv2d(input_shape[0], 64, 7, stride=2, padding=3, bias=False)
    return model
