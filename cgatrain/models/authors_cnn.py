"""The CNN of the CGA authors' published code: no activation anywhere, one dropout, one linear layer."""

from __future__ import annotations

import torch
from torch import nn


class AuthorsCNN(nn.Module):
    """conv32, conv32, max-pool, dropout 0.25, conv64, max-pool, conv64, max-pool, Linear(64*(H/8)*(W/8), classes).

    All convolutions are 3x3 with padding 1 and no ReLU; 28x28 MNIST gives 64*3*3 = 576 features,
    32x32 CIFAR 64*4*4 = 1024, as in their code.
    """

    def __init__(self, input_shape: tuple[int, ...], num_outputs: int, dropout: float = 0.25) -> None:
        super().__init__()
        channels, height, width = input_shape
        if height < 8 or width < 8:
            raise ValueError(f"cnn_authors needs inputs of at least 8x8 pixels (three 2x2 pools), got {height}x{width}")
        self.features = nn.Sequential(
            nn.Conv2d(channels, 32, 3, padding=1),
            nn.Conv2d(32, 32, 3, padding=1),
            nn.MaxPool2d(2),
            nn.Dropout(dropout),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.MaxPool2d(2),
            nn.Conv2d(64, 64, 3, padding=1),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Linear(64 * (height // 8) * (width // 8), num_outputs)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(inputs).flatten(1))
