"""Scaled sign compression (the CGA paper's Algorithm 2): one bit per element plus one float32 scale."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch

from cgatrain.compression.base import Compressor, check_flat, check_payload, register_compressor

BITS_PER_BYTE = 8


@functools.cache
def _bit_weights(device: torch.device) -> torch.Tensor:
    """(128, 64, ..., 1) as uint8 on `device`: the weight of each bit in a byte, most significant first."""
    # Cached per device so packing on a GPU does not copy a constant from the host every call.
    return torch.bitwise_left_shift(
        torch.ones(BITS_PER_BYTE, dtype=torch.uint8, device=device),
        torch.arange(BITS_PER_BYTE - 1, -1, -1, dtype=torch.uint8, device=device),
    )


def packed_length(numel: int) -> int:
    """Bytes needed for `numel` bits: ceil(numel / 8)."""
    return -(-numel // BITS_PER_BYTE)


def pack_bits(bits: torch.Tensor) -> torch.Tensor:
    """Pack a 1-D bool tensor into uint8 bytes, 8 elements per byte, first element in the most significant bit."""
    padded = torch.zeros(packed_length(bits.numel()) * BITS_PER_BYTE, dtype=torch.uint8, device=bits.device)
    padded[: bits.numel()] = bits  # the tail of the last byte stays 0 and is dropped again on unpacking
    weighted = padded.view(-1, BITS_PER_BYTE) * _bit_weights(bits.device)
    # Distinct powers of two never carry, so a uint8 sum is exactly the bitwise or.
    return weighted.sum(dim=1, dtype=torch.uint8)


def unpack_bits(packed: torch.Tensor, numel: int) -> torch.Tensor:
    """The first `numel` bits of `packed` (as written by `pack_bits`) as a 1-D bool tensor."""
    bits = torch.bitwise_and(packed.reshape(-1, 1), _bit_weights(packed.device)) != 0
    return bits.reshape(-1)[:numel]


@register_compressor
class SignCompressor(Compressor):
    """delta = (||p||_1 / d) sign(p), sent as packed sign bits and one float32 scale: ceil(d/8) + 4 bytes.

    Sign of zero: a zero element is sent as bit 1 ("non-negative") and decoded as +scale, so every
    element costs exactly one bit and the decoded vector has no zeros. This differs from
    `torch.sign(0) = 0` only on exact zeros, which the error memory absorbs like any other error.
    The scale is computed in the input's precision (at least float32) and rounded to float32 for
    the wire; decompression uses that rounded scale, so sender and receiver see the same delta.
    """

    name = "sign"

    def compress(self, flat: torch.Tensor) -> list[torch.Tensor]:
        """[packed sign bits (uint8, ceil(d/8)), scale (float32, shape (1,))] for the 1-D tensor `flat`."""
        check_flat(flat)
        # Half-precision inputs would overflow an L1 sum, so accumulate in at least float32.
        accumulate = torch.promote_types(flat.dtype, torch.float32)
        scale = (flat.abs().sum(dtype=accumulate) / flat.numel()).to(torch.float32).reshape(1)
        return [pack_bits(flat >= 0), scale]

    def decompress(self, payload: Sequence[torch.Tensor], numel: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """scale * sign as a dense `dtype` tensor of `numel` elements, with bit 1 -> +scale and bit 0 -> -scale."""
        check_payload(self, payload, numel, dtype)
        packed, scale = payload
        magnitude = scale.reshape(1).to(dtype)
        return torch.where(unpack_bits(packed, numel), magnitude, -magnitude)

    def payload_like(self, numel: int, dtype: torch.dtype, device: torch.device) -> list[torch.Tensor]:
        """Buffers for ceil(numel/8) packed bytes and one float32 scale (the same for every input dtype)."""
        return [
            torch.empty(packed_length(numel), dtype=torch.uint8, device=device),
            torch.empty(1, dtype=torch.float32, device=device),
        ]
