"""Compression codecs and error feedback: bit packing, wire sizes, decoded values and the error-memory identity."""

from __future__ import annotations

import math

import pytest
import torch

from cgatrain.compression import (
    COMPRESSORS,
    Compressor,
    ErrorFeedback,
    IdentityCompressor,
    SignCompressor,
    build_compressor,
    pack_bits,
    register_compressor,
    unpack_bits,
)

LENGTHS = [1, 7, 8, 9, 1000, 1001]
DTYPES = [torch.float32, torch.float64]


def scaled_sign(x: torch.Tensor) -> torch.Tensor:
    """(||x||_1 / d) sign(x) with sign(0) = +1, the scale rounded through float32 as on the wire."""
    scale = (x.abs().sum() / x.numel()).to(torch.float32).to(x.dtype)
    return torch.where(x >= 0, scale, -scale)


@pytest.mark.parametrize("numel", LENGTHS)
def test_pack_unpack_round_trip_is_exact(numel: int) -> None:
    generator = torch.Generator().manual_seed(numel)
    for _ in range(5):
        bits = torch.rand(numel, generator=generator) < 0.5
        packed = pack_bits(bits)
        assert packed.dtype == torch.uint8 and packed.shape == (math.ceil(numel / 8),)
        assert torch.equal(unpack_bits(packed, numel), bits)
    # All-ones and all-zeros patterns exercise the padding of the last byte.
    for fill in (True, False):
        bits = torch.full((numel,), fill)
        assert torch.equal(unpack_bits(pack_bits(bits), numel), bits)


def test_pack_bits_puts_first_element_in_most_significant_bit() -> None:
    bits = torch.tensor([1, 0, 1, 1, 0, 0, 0, 1, 1], dtype=torch.bool)
    assert pack_bits(bits).tolist() == [0b10110001, 0b10000000]


@pytest.mark.parametrize("name", ["identity", "sign"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("numel", LENGTHS)
def test_payload_matches_payload_like_and_nbytes(name: str, dtype: torch.dtype, numel: int) -> None:
    compressor = build_compressor({"name": name})
    payload = compressor.compress(torch.randn(numel, dtype=dtype))
    buffers = compressor.payload_like(numel, dtype, torch.device("cpu"))
    assert [(t.shape, t.dtype) for t in payload] == [(t.shape, t.dtype) for t in buffers]
    assert compressor.payload_nbytes(numel, dtype) == sum(t.numel() * t.element_size() for t in payload)


@pytest.mark.parametrize("numel", LENGTHS)
def test_sign_wire_size_is_one_bit_per_element_plus_a_float32_scale(numel: int) -> None:
    assert SignCompressor().payload_nbytes(numel, torch.float32) == math.ceil(numel / 8) + 4
    assert SignCompressor().payload_nbytes(numel, torch.float64) == math.ceil(numel / 8) + 4
    dense = IdentityCompressor().payload_nbytes(10**6, torch.float32)
    assert dense / SignCompressor().payload_nbytes(10**6, torch.float32) > 31.9


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("numel", LENGTHS)
def test_sign_decodes_to_scaled_sign(dtype: torch.dtype, numel: int) -> None:
    x = torch.randn(numel, dtype=dtype)
    x[::3] = 0.0  # zeros decode as +scale
    decoded = SignCompressor().compress_decompress(x)
    assert decoded.dtype == dtype and decoded.shape == (numel,)
    assert torch.equal(decoded, scaled_sign(x))
    reference = (x.abs().sum() / numel) * torch.where(x >= 0, 1.0, -1.0).to(dtype)
    torch.testing.assert_close(decoded, reference, rtol=1e-6, atol=0.0)


def test_sign_scale_is_float32_and_mean_magnitude() -> None:
    x = torch.tensor([3.0, -1.0, 0.0, -4.0], dtype=torch.float64)
    packed, scale = SignCompressor().compress(x)
    assert scale.dtype == torch.float32 and scale.shape == (1,) and scale.item() == 2.0
    assert unpack_bits(packed, 4).tolist() == [True, False, True, False]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("numel", LENGTHS)
def test_identity_round_trip_is_exact_and_copy_free(dtype: torch.dtype, numel: int) -> None:
    x = torch.randn(numel, dtype=dtype)
    payload = IdentityCompressor().compress(x)
    assert payload[0].data_ptr() == x.data_ptr()
    assert torch.equal(IdentityCompressor().decompress(payload, numel, dtype), x)


def test_decompress_rejects_a_payload_of_the_wrong_shape() -> None:
    payload = SignCompressor().compress(torch.randn(16))
    with pytest.raises(ValueError, match="part 0"):
        SignCompressor().decompress(payload, 17)
    with pytest.raises(ValueError, match="tensor"):
        SignCompressor().decompress(payload[:1], 16)


def test_compress_rejects_non_flat_input() -> None:
    with pytest.raises(ValueError, match="1-D"):
        SignCompressor().compress(torch.randn(2, 3))
    with pytest.raises(ValueError, match="1-D"):
        SignCompressor().compress(torch.randn(0))


@pytest.mark.parametrize("dtype", DTYPES)
def test_error_feedback_memory_is_exactly_p_minus_delta(dtype: torch.dtype) -> None:
    feedback = ErrorFeedback(SignCompressor())
    generator = torch.Generator().manual_seed(0)
    previous = torch.zeros(101, dtype=dtype)
    for _ in range(20):
        x = torch.randn(101, generator=generator, dtype=dtype)
        payload, delta = feedback.compress(x)
        p = x + previous
        assert torch.equal(delta, scaled_sign(p))
        assert torch.equal(delta, SignCompressor().decompress(payload, 101, dtype))
        assert feedback.memory is not None and torch.equal(feedback.memory, p - delta)
        previous = feedback.memory.clone()


def test_error_feedback_deltas_track_inputs_with_bounded_error() -> None:
    feedback = ErrorFeedback(SignCompressor())
    generator = torch.Generator().manual_seed(1)
    mean = torch.randn(64, dtype=torch.float64, generator=generator)
    sum_inputs, sum_deltas, error_norms = torch.zeros(64, dtype=torch.float64), torch.zeros(64, dtype=torch.float64), []
    for _ in range(2000):
        x = mean + 0.5 * torch.randn(64, dtype=torch.float64, generator=generator)
        _, delta = feedback.compress(x)
        sum_inputs += x
        sum_deltas += delta
        error_norms.append(feedback.memory.norm().item())
    # Telescoping: nothing is lost, the difference of the sums is the final memory.
    torch.testing.assert_close(sum_inputs - sum_deltas, feedback.memory, rtol=0.0, atol=1e-9)
    # The error does not grow with the number of steps, so the average delta converges to the average input.
    assert max(error_norms[1000:]) < 2.0 * max(error_norms[:1000])
    assert (sum_inputs - sum_deltas).norm() / 2000 < 0.01 * (sum_inputs.norm() / 2000)


def test_error_feedback_with_identity_keeps_zero_memory() -> None:
    feedback = ErrorFeedback(IdentityCompressor())
    for _ in range(3):
        x = torch.randn(10)
        _, delta = feedback.compress(x)
        assert torch.equal(delta, x) and torch.equal(feedback.memory, torch.zeros(10))


def test_error_feedback_state_round_trip_and_stream_check() -> None:
    feedback = ErrorFeedback(SignCompressor())
    assert feedback.state_dict() == {}
    feedback.compress(torch.randn(10))
    restored = ErrorFeedback(SignCompressor())
    restored.load_state_dict(feedback.state_dict())
    x = torch.randn(10)
    assert torch.equal(restored.compress(x)[1], feedback.compress(x)[1])
    assert torch.equal(restored.memory, feedback.memory)
    with pytest.raises(ValueError, match="stream"):
        feedback.compress(torch.randn(11))
    with pytest.raises(ValueError, match="unknown key"):
        restored.load_state_dict({"momentum": torch.zeros(10)})


def test_build_compressor_names_and_options() -> None:
    assert {"identity", "sign"} <= set(COMPRESSORS)
    assert isinstance(build_compressor({"name": "sign"}), SignCompressor)
    with pytest.raises(ValueError, match="known compressors.*identity.*sign"):
        build_compressor({"name": "nope"})
    with pytest.raises(ValueError, match="name"):
        build_compressor({})
    with pytest.raises(ValueError, match="no option"):
        build_compressor({"name": "sign", "fraction": 0.1})


def test_register_compressor_passes_options_and_rejects_a_taken_name() -> None:
    @register_compressor
    class Scaled(IdentityCompressor):
        name = "_test_scaled"

        def __init__(self, factor: float = 1.0) -> None:
            self.factor = factor

    try:
        assert build_compressor({"name": "_test_scaled", "factor": 2.0}).factor == 2.0
        with pytest.raises(ValueError, match="compressor '_test_scaled' is already registered by .*Scaled; cannot register .*Other"):
            register_compressor(type("Other", (IdentityCompressor,), {"name": "_test_scaled"}))
    finally:
        COMPRESSORS.remove("_test_scaled")
    assert issubclass(Scaled, Compressor)
