"""The random number generator states an agent checkpoints: the CPU's, plus its GPU's where it computes on one.

`torch.get_rng_state()` covers the CPU generator only; on a GPU, dropout draws from the device's own
generator, so a resumed run would draw other masks than an uninterrupted one without `cuda_rng`.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch


def rng_state(device: torch.device) -> dict[str, torch.Tensor]:
    """Checkpoint entries: `rng` (CPU generator) and, on a GPU, `cuda_rng` (that device's generator)."""
    state = {"rng": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda_rng"] = torch.cuda.get_rng_state(device)
    return state


def load_rng_state(state: Mapping[str, torch.Tensor], device: torch.device) -> None:
    """Restore what `rng_state` saved; a checkpoint written on the CPU leaves the GPU generator as seeded."""
    torch.set_rng_state(state["rng"])
    if device.type == "cuda" and "cuda_rng" in state:
        torch.cuda.set_rng_state(state["cuda_rng"], device)
