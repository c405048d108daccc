"""Augmentation and normalization of uint8 image batches on the agent's device.

The random choices of a batch (crop offsets, flips) come from numpy's generator keyed by
(seed, agent, step) alone, so a batch is the same on every device, after a resume, and on the
streaming path (one image at a time in DataLoader workers) as on the in-memory path (one batch at once).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from cgatrain.transfer import to_device

_AUGMENT_STREAM = 0x6175  # keeps augmentation draws apart from the sampler's stream


@dataclass(frozen=True)
class Augmentation:
    """Random crop after zero-padding by `padding` pixels, and horizontal flip with probability 1/2."""

    padding: int = 0
    flip: bool = False

    @property
    def active(self) -> bool:
        return self.padding > 0 or self.flip

    def draw(self, seed: int, agent: int, step: int, count: int) -> tuple[np.ndarray, np.ndarray]:
        """(offsets (count, 2) in [0, 2*padding], flips (count,)) for the batch of `step`."""
        rng = np.random.default_rng([int(seed), int(agent), int(step), _AUGMENT_STREAM])
        offsets = rng.integers(0, 2 * self.padding + 1, size=(count, 2))
        flips = rng.random(count) < 0.5 if self.flip else np.zeros(count, dtype=bool)
        return offsets, flips

    def apply_batch(self, images: torch.Tensor, offsets: np.ndarray, flips: np.ndarray) -> torch.Tensor:
        """Crop and flip a whole uint8 batch (N, C, H, W) with one gather, on the images' device."""
        if not self.active:
            return images
        count, channels, height, width = images.shape
        device = images.device
        padded = F.pad(images, (self.padding,) * 4) if self.padding else images
        top, left, flip = to_device(offsets[:, 0], device), to_device(offsets[:, 1], device), to_device(flips, device)
        rows = top[:, None] + torch.arange(height, device=device)
        columns = torch.arange(width, device=device).expand(count, width)
        columns = left[:, None] + torch.where(flip[:, None], width - 1 - columns, columns)
        padded_width = width + 2 * self.padding
        # Flat index of each kept pixel inside its padded image: one gather per channel plane.
        flat = (rows[:, :, None] * padded_width + columns[:, None, :]).reshape(count, 1, height * width)
        gathered = padded.reshape(count, channels, -1).gather(2, flat.expand(count, channels, height * width))
        return gathered.reshape(count, channels, height, width)

    def apply_one(self, image: torch.Tensor, offset: Sequence[int], flip: bool) -> torch.Tensor:
        """The same crop and flip for a single uint8 image (C, H, W): the streaming path."""
        if not self.active:
            return image
        _, height, width = image.shape
        padded = F.pad(image, (self.padding,) * 4) if self.padding else image
        top, left = int(offset[0]), int(offset[1])
        crop = padded[:, top : top + height, left : left + width]
        return crop.flip(-1) if flip else crop


class Normalizer:
    """uint8 pixels -> (x / 255 - mean) / std per channel, as one multiply-add on the device."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], device: torch.device) -> None:
        mean_t = torch.tensor(mean, dtype=torch.float32, device=device).reshape(1, -1, 1, 1)
        std_t = torch.tensor(std, dtype=torch.float32, device=device).reshape(1, -1, 1, 1)
        self.scale = 1.0 / (255.0 * std_t)
        self.shift = -mean_t / std_t

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.shift, images.float(), self.scale)


class NormalizedImages:
    """A uint8 image set that yields normalized float slices: the test set without a float copy."""

    def __init__(self, images: torch.Tensor, normalizer: Normalizer) -> None:
        self.images, self.normalizer = images, normalizer

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: slice) -> torch.Tensor:
        return self.normalizer(self.images[index])
