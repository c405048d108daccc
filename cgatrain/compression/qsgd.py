"""QSGD stochastic quantization (Alistarh et al., 2017): a float32 norm, packed signs and packed b-bit levels.

With s = 2^b - 1 levels, element i is sent as sign_i and level_i = floor(|x_i| / ||x||_2 * s + u_i),
u_i ~ U[0, 1), and decoded as ||x||_2 * sign_i * level_i / s. Since E[level_i] = |x_i| / ||x||_2 * s,
the decoded vector is unbiased, with E||Q(x) - x||^2 <= min(d / s^2, sqrt(d) / s) ||x||^2.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

import torch

from cgatrain.compression.base import Compressor, check_flat, check_payload, register_compressor
from cgatrain.compression.sign import BITS_PER_BYTE, pack_bits, packed_length, unpack_bits

LEVEL_BITS = (1, 2, 4, 8)  # widths that divide a byte, so no level straddles two bytes


def check_level_bits(bits: int) -> int:
    """`bits` as an int, or ValueError unless it is one of LEVEL_BITS."""
    if isinstance(bits, bool) or not isinstance(bits, int | float) or int(bits) != bits or int(bits) not in LEVEL_BITS:
        raise ValueError(f"compressor.bits must be one of {LEVEL_BITS}, got {bits!r}")
    return int(bits)


@functools.cache
def _level_shifts(bits: int, device: torch.device) -> torch.Tensor:
    """Left shifts (uint8) placing the 8 // bits levels of a byte, the first in the most significant bits."""
    # Cached per (width, device) so packing on a GPU does not copy a constant from the host every call.
    per_byte = BITS_PER_BYTE // bits
    return torch.arange(per_byte - 1, -1, -1, dtype=torch.uint8, device=device) * bits


def packed_levels_length(numel: int, bits: int) -> int:
    """Bytes needed for `numel` levels of `bits` bits each: ceil(numel * bits / 8)."""
    return -(-numel * bits // BITS_PER_BYTE)


def pack_levels(levels: torch.Tensor, bits: int) -> torch.Tensor:
    """Pack 1-D uint8 `levels` (each < 2^bits) into bytes, 8 // bits per byte, first level in the most significant bits."""
    bits = check_level_bits(bits)
    per_byte = BITS_PER_BYTE // bits
    padded = torch.zeros(packed_levels_length(levels.numel(), bits) * per_byte, dtype=torch.uint8, device=levels.device)
    padded[: levels.numel()] = levels  # padding levels are 0 and dropped again on unpacking
    shifted = torch.bitwise_left_shift(padded.view(-1, per_byte), _level_shifts(bits, levels.device))
    # Shifted levels occupy disjoint bits, so a uint8 sum never carries and equals the bitwise or.
    return shifted.sum(dim=1, dtype=torch.uint8)


def unpack_levels(packed: torch.Tensor, numel: int, bits: int) -> torch.Tensor:
    """The first `numel` `bits`-bit levels of `packed` (as written by `pack_levels`) as 1-D uint8."""
    bits = check_level_bits(bits)
    shifted = torch.bitwise_right_shift(packed.reshape(-1, 1), _level_shifts(bits, packed.device))
    return torch.bitwise_and(shifted, (1 << bits) - 1).reshape(-1)[:numel]


@register_compressor
class QSGDCompressor(Compressor):
    """Unbiased QSGD with s = 2^bits - 1 levels; payload `[norm (float32, (1,)), signs (uint8), levels (uint8)]`.

    Wire size: 4 + ceil(d / 8) + ceil(d * bits / 8) bytes for every input dtype. The norm is computed
    in at least float32 and rounded to float32 before the levels are drawn, so sender and receiver
    use the same norm and unbiasedness holds for the decoded vector. The dither u comes from a
    generator per device owned by this instance and seeded with `seed`, so runs are reproducible.
    """

    name = "qsgd"

    def __init__(self, bits: int = 4, seed: int = 0) -> None:
        self.bits = check_level_bits(bits)
        self.levels = (1 << self.bits) - 1
        self.seed = int(seed)
        self._generator_seed = self.seed
        # Keyed by device type: an agent computes on one device, and a resumed one may land on another GPU index.
        self._generators: dict[str, torch.Generator] = {}
        self._saved_states: dict[str, torch.Tensor] = {}  # from a checkpoint, applied when that device is first used

    def bind_agent(self, rank: int) -> None:
        """Give each agent its own dither stream: correlated quantization noise would not average out."""
        self._generator_seed = self.seed * 1_000_003 + int(rank)
        self._generators.clear()

    def _generator(self, device: torch.device) -> torch.Generator:
        """This instance's generator on `device`, created seeded (or from a checkpoint) on first use."""
        if device.type not in self._generators:
            generator = torch.Generator(device=device).manual_seed(self._generator_seed)
            if device.type in self._saved_states:
                generator.set_state(self._saved_states.pop(device.type))
            self._generators[device.type] = generator
        return self._generators[device.type]

    def rng_state(self) -> dict[str, torch.Tensor]:
        # A loaded state not used yet (no message since the resume) is still this instance's stream.
        return {**self._saved_states, **{kind: generator.get_state() for kind, generator in self._generators.items()}}

    def load_rng_state(self, state: Mapping[str, torch.Tensor]) -> None:
        """Restore the generators; a GPU's state waits until a GPU is used (never, when resuming on CPUs)."""
        for device, generator_state in state.items():
            kind = torch.device(device).type  # also reads the "cuda:0" keys of older checkpoints
            self._generators.pop(kind, None)
            self._saved_states[kind] = generator_state.cpu()

    def compress(self, flat: torch.Tensor) -> list[torch.Tensor]:
        """[||flat||_2 (float32, (1,)), packed sign bits (1 = non-negative), packed stochastic levels] for `flat`."""
        check_flat(flat)
        # Half-precision inputs would overflow a sum of squares, so work in at least float32.
        compute = torch.promote_types(flat.dtype, torch.float32)
        magnitude = flat.abs().to(compute)
        norm = torch.linalg.vector_norm(magnitude).to(torch.float32).reshape(1)
        # A zero vector has no direction; dividing by 1 instead gives all-zero levels without a host sync.
        safe_norm = torch.where(norm > 0, norm, torch.ones_like(norm)).to(compute)
        dither = torch.rand(flat.numel(), generator=self._generator(flat.device), dtype=compute, device=flat.device)
        levels = torch.floor(magnitude / safe_norm * self.levels + dither)
        # Float rounding (the float32 norm, r + u rounding up to s + 1) must not overflow the level width.
        levels = levels.clamp_(0, self.levels).to(torch.uint8)
        return [norm, pack_bits(flat >= 0), pack_levels(levels, self.bits)]

    def decompress(self, payload: Sequence[torch.Tensor], numel: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """norm * sign * level / s as a dense `dtype` tensor of `numel` elements."""
        check_payload(self, payload, numel, dtype)
        norm, signs, packed = payload
        compute = torch.promote_types(dtype, torch.float32)
        magnitude = unpack_levels(packed, numel, self.bits).to(compute) * (norm.reshape(1).to(compute) / self.levels)
        return torch.where(unpack_bits(signs, numel), magnitude, -magnitude).to(dtype)

    def payload_like(self, numel: int, dtype: torch.dtype, device: torch.device) -> list[torch.Tensor]:
        """Buffers for one float32 norm, ceil(numel / 8) sign bytes and ceil(numel * bits / 8) level bytes."""
        return [
            torch.empty(1, dtype=torch.float32, device=device),
            torch.empty(packed_length(numel), dtype=torch.uint8, device=device),
            torch.empty(packed_levels_length(numel, self.bits), dtype=torch.uint8, device=device),
        ]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(bits={self.bits}, seed={self.seed})"
