"""The identity codec: the tensor itself goes on the wire, uncompressed."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from cgatrain.compression.base import Compressor, check_flat, check_payload, register_compressor


@register_compressor
class IdentityCompressor(Compressor):
    """No compression: payload `[flat]`, so a compressed run with it matches the uncompressed algorithm."""

    name = "identity"

    def compress(self, flat: torch.Tensor) -> list[torch.Tensor]:
        """`[flat]` itself when contiguous (no copy), else a contiguous copy; callers must not mutate it before sending."""
        check_flat(flat)
        return [flat.contiguous()]

    def decompress(self, payload: Sequence[torch.Tensor], numel: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The received tensor itself, no copy (its dtype must already be `dtype`)."""
        check_payload(self, payload, numel, dtype)
        return payload[0].reshape(numel).to(dtype)

    def payload_like(self, numel: int, dtype: torch.dtype, device: torch.device) -> list[torch.Tensor]:
        """One buffer of `numel` elements of `dtype`."""
        return [torch.empty(numel, dtype=dtype, device=device)]
