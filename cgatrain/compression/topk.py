"""Top-k sparsification: only the k entries of largest magnitude travel, as (values, int32 indices)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from cgatrain.compression.base import Compressor, check_flat, check_payload, register_compressor

INDEX_DTYPE = torch.int32
_MAX_INDEXABLE = torch.iinfo(INDEX_DTYPE).max + 1  # int32 indices address at most 2^31 elements


def check_fraction(fraction: float) -> float:
    """`fraction` as a float, or ValueError unless it lies in (0, 1]."""
    if isinstance(fraction, bool) or not isinstance(fraction, int | float) or not 0.0 < float(fraction) <= 1.0:
        raise ValueError(f"compressor.fraction must be a number in (0, 1], got {fraction!r}")
    value = float(fraction)
    return value


def sparse_count(numel: int, fraction: float) -> int:
    """k = max(1, ceil(fraction * numel)), at most `numel`: how many entries a sparsifier keeps."""
    # The relative slack stops float noise (0.07 * 100 = 7.000000000000001) from adding a whole element.
    return max(1, min(numel, math.ceil(fraction * numel * (1.0 - 1e-12))))


def scatter_dense(values: torch.Tensor, indices: torch.Tensor, numel: int, dtype: torch.dtype) -> torch.Tensor:
    """A `numel`-element `dtype` tensor of zeros with `values` written at `indices` (on `values`' device)."""
    dense = torch.zeros(numel, dtype=dtype, device=values.device)
    # scatter wants int64 indices; the int32 wire format halves index bytes.
    return dense.index_copy_(0, indices.reshape(-1).to(device=values.device, dtype=torch.int64), values.reshape(-1).to(dtype))


@register_compressor
class TopKCompressor(Compressor):
    """delta = p on the k = max(1, ceil(fraction * d)) largest |p_i|, 0 elsewhere (biased; pair it with error feedback).

    Payload `[values (input dtype, k), indices (int32, k)]`: k * (value bytes + 4) bytes. Ties in
    magnitude are broken by `torch.topk`, so which of several equal entries is kept is unspecified.
    The decoded vector is not rescaled, as in the Sparse-Push / SCSP experiments (top-K%).
    """

    name = "topk"

    def __init__(self, fraction: float = 0.1) -> None:
        self.fraction = check_fraction(fraction)

    def count(self, numel: int) -> int:
        """How many of `numel` entries are sent."""
        return sparse_count(numel, self.fraction)

    def compress(self, flat: torch.Tensor) -> list[torch.Tensor]:
        """[values (flat.dtype, k), indices (int32, k)] of the k entries of `flat` with the largest magnitude."""
        check_flat(flat)
        if flat.numel() > _MAX_INDEXABLE:
            raise ValueError(f"topk sends int32 indices, so it takes at most {_MAX_INDEXABLE} elements, got {flat.numel()}")
        # Unsorted selection is cheaper and the receiver scatters by index, so order does not matter.
        _, indices = torch.topk(flat.abs(), self.count(flat.numel()), sorted=False)
        return [flat[indices], indices.to(INDEX_DTYPE)]

    def decompress(self, payload: Sequence[torch.Tensor], numel: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Zeros of `dtype` with the received values at the received indices."""
        check_payload(self, payload, numel, dtype)
        values, indices = payload
        return scatter_dense(values, indices, numel, dtype)

    def payload_like(self, numel: int, dtype: torch.dtype, device: torch.device) -> list[torch.Tensor]:
        """Buffers for k values of `dtype` and k int32 indices."""
        k = self.count(numel)
        return [torch.empty(k, dtype=dtype, device=device), torch.empty(k, dtype=INDEX_DTYPE, device=device)]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(fraction={self.fraction})"
