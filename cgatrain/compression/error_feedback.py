"""Error feedback: what compression dropped from one message is added back to the next one of the same stream."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from cgatrain.compression.base import Compressor


class ErrorFeedback:
    """One error memory e for one stream of tensors (e.g. one (gradient owner, data holder) pair).

    Each call computes p = x + e, sends C(p), and keeps e = p - delta where delta is exactly what
    the receiver decodes, so sum_k x_k - sum_k delta_k = e_K: nothing is lost, only delayed.
    """

    def __init__(self, compressor: Compressor) -> None:
        self.compressor = compressor
        self.memory: torch.Tensor | None = None

    def compress(self, flat: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """(payload to send, delta the receiver will decode) for `flat` plus this stream's error memory.

        Both may alias `flat` or each other (the identity codec copies nothing), so do not mutate
        `flat` until the payload has been sent.
        """
        self._check_stream(flat)
        corrected = flat if self.memory is None else flat + self.memory
        payload = self.compressor.compress(corrected)
        delta = self.compressor.decompress(payload, corrected.numel(), corrected.dtype)
        if self.memory is None:
            self.memory = corrected - delta
        else:
            # corrected is a fresh tensor here, so the old memory can be overwritten without a new allocation.
            torch.sub(corrected, delta, out=self.memory)
        return payload, delta

    def _check_stream(self, flat: torch.Tensor) -> None:
        """Raise if `flat` cannot belong to the stream whose error is in memory."""
        memory = self.memory
        if memory is not None and (memory.shape != flat.shape or memory.dtype != flat.dtype or memory.device != flat.device):
            raise ValueError(
                f"error feedback stream holds {memory.dtype}{tuple(memory.shape)} on {memory.device}, "
                f"got {flat.dtype}{tuple(flat.shape)} on {flat.device}"
            )

    def reset(self) -> None:
        """Forget the accumulated error."""
        self.memory = None

    def state_dict(self) -> dict[str, torch.Tensor]:
        """A snapshot of the error memory (copied, since later calls update it in place); empty before the first call."""
        return {} if self.memory is None else {"memory": self.memory.clone()}

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        """Restore a `state_dict` snapshot; an empty one means no error has accumulated yet."""
        unknown = sorted(set(state) - {"memory"})
        if unknown:
            raise ValueError(f"error feedback state has unknown key(s) {unknown}")
        memory = state.get("memory")
        self.memory = None if memory is None else memory.detach().clone()
