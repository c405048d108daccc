"""Host data onto an agent's device without making the host wait for the GPU.

A plain `tensor.to("cuda")` from pageable host memory synchronizes the host with the GPU's stream
(PyTorch copies, then waits), so one such copy per step stops the host from queueing the next
step while the GPU runs this one. Copies from pinned memory with `non_blocking=True` are queued on
the stream instead; PyTorch's caching host allocator keeps the pinned block until the copy is done.
"""

from __future__ import annotations

import numpy as np
import torch


def to_device(data: np.ndarray | torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """`data` (a host array or tensor) on `device`; on a GPU the copy is queued, not waited for."""
    tensor = torch.from_numpy(np.ascontiguousarray(data)) if isinstance(data, np.ndarray) else data
    device = torch.device(device)
    if device.type != "cuda" or tensor.device.type != "cpu":
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)
