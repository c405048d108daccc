"""CIFAR ResNets (He et al. 2016, section 4.2): ResNet-(6n+2) with 16/32/64 channels, basic blocks and
parameter-free shortcuts (option A: stride-2 subsampling plus zero channels). resnet20: n=3, resnet110: n=18."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cgatrain.models.norm import make_norm

DEPTHS = {"resnet20": 3, "resnet110": 18}


class BasicBlock(nn.Module):
    """conv3x3-norm-ReLU-conv3x3-norm, plus the shortcut, then ReLU."""

    def __init__(self, in_channels: int, channels: int, stride: int, norm: str, groups: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=norm == "none")
        self.norm1 = make_norm(norm, channels, groups)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=norm == "none")
        self.norm2 = make_norm(norm, channels, groups)
        self.stride, self.extra_channels = stride, channels - in_channels

    def shortcut(self, inputs: torch.Tensor) -> torch.Tensor:
        if self.stride == 1 and self.extra_channels == 0:
            return inputs
        half = self.extra_channels // 2
        return F.pad(inputs[:, :, :: self.stride, :: self.stride], (0, 0, 0, 0, half, self.extra_channels - half))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.norm1(self.conv1(inputs)))
        return F.relu(self.norm2(self.conv2(out)) + self.shortcut(inputs))


class CifarResNet(nn.Module):
    """conv3x3(16)-norm-ReLU, 3 stages of `blocks` basic blocks, global average pool, Linear(64, classes)."""

    def __init__(self, input_shape: tuple[int, ...], num_outputs: int, blocks: int, norm: str = "batch", groups: int = 2) -> None:
        super().__init__()
        channels = input_shape[0]
        self.stem = nn.Sequential(nn.Conv2d(channels, 16, 3, padding=1, bias=norm == "none"), make_norm(norm, 16, groups), nn.ReLU(inplace=True))
        stages: list[nn.Module] = []
        in_channels = 16
        for stage, width in enumerate((16, 32, 64)):
            for index in range(blocks):
                stride = 2 if stage > 0 and index == 0 else 1
                stages.append(BasicBlock(in_channels, width, stride, norm, groups))
                in_channels = width
        self.stages = nn.Sequential(*stages)
        self.head = nn.Linear(64, num_outputs)
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(module.weight)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        features = self.stages(self.stem(inputs))
        return self.head(F.adaptive_avg_pool2d(features, 1).flatten(1))
