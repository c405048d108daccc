"""Top-k, random-k and QSGD codecs: wire sizes, decoded values, shared masks, unbiasedness, variance and bit packing."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import yaml

from cgatrain.compression import (
    COMPRESSORS,
    ErrorFeedback,
    QSGDCompressor,
    RandomKCompressor,
    TopKCompressor,
    build_compressor,
    pack_levels,
    unpack_levels,
)

LENGTHS = [1, 7, 1000, 1001]
DTYPES = [torch.float32, torch.float64]
CONFIGS = [
    {"name": "topk", "fraction": 0.1},
    {"name": "topk", "fraction": 0.5},
    {"name": "topk", "fraction": 1.0},
    {"name": "randomk", "fraction": 0.1},
    {"name": "randomk", "fraction": 0.37},
    {"name": "randomk", "fraction": 1.0},
    {"name": "qsgd", "bits": 1},
    {"name": "qsgd", "bits": 2},
    {"name": "qsgd", "bits": 4},
    {"name": "qsgd", "bits": 8},
]
CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs" / "compressor"


def expected_nbytes(cfg: dict, numel: int, value_bytes: int) -> int:
    """The wire size each codec promises, written out independently of the codecs."""
    if cfg["name"] == "qsgd":
        return 4 + math.ceil(numel / 8) + math.ceil(numel * cfg["bits"] / 8)
    k = max(1, math.ceil(cfg["fraction"] * numel))
    return k * (value_bytes + 4) if cfg["name"] == "topk" else k * value_bytes


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: "-".join(str(v) for v in c.values()))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("numel", LENGTHS)
def test_payload_matches_payload_like_and_nbytes(cfg: dict, dtype: torch.dtype, numel: int) -> None:
    compressor = build_compressor(cfg)
    if isinstance(compressor, RandomKCompressor):
        compressor.set_step(3)
    x = torch.randn(numel, dtype=dtype)
    payload = compressor.compress(x)
    buffers = compressor.payload_like(numel, dtype, torch.device("cpu"))
    assert [(t.shape, t.dtype) for t in payload] == [(t.shape, t.dtype) for t in buffers]
    sent = sum(t.numel() * t.element_size() for t in payload)
    assert compressor.payload_nbytes(numel, dtype) == sent == expected_nbytes(cfg, numel, x.element_size())
    # Decoding from receive buffers (as an algorithm does) gives the sender's own reconstruction.
    for buffer, part in zip(buffers, payload):
        buffer.copy_(part)
    decoded = compressor.decompress(buffers, numel, dtype)
    assert decoded.dtype == dtype and decoded.shape == (numel,)
    assert torch.equal(decoded, compressor.decompress(payload, numel, dtype))


def test_registered_with_configs_and_validated_options() -> None:
    assert {"topk", "randomk", "qsgd"} <= set(COMPRESSORS)
    for name, cls in [("topk", TopKCompressor), ("randomk", RandomKCompressor), ("qsgd", QSGDCompressor)]:
        cfg = yaml.safe_load((CONFIG_DIR / f"{name}.yaml").read_text())
        assert cfg["name"] == name and isinstance(build_compressor(cfg), cls)
    for bad in [{"name": "topk", "fraction": 0.0}, {"name": "randomk", "fraction": 1.5}, {"name": "qsgd", "bits": 3}]:
        with pytest.raises(ValueError):
            build_compressor(bad)
    with pytest.raises(ValueError, match="no option"):
        build_compressor({"name": "topk", "bits": 4})


def test_sparse_count_ignores_float_noise() -> None:
    # 0.07 * 100 is 7.000000000000001 in floating point; ceil must still keep 7, not 8.
    assert TopKCompressor(0.07).count(100) == 7
    assert TopKCompressor(0.1).count(1001) == 101
    assert TopKCompressor(0.001).count(7) == 1


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("numel", LENGTHS)
@pytest.mark.parametrize("fraction", [0.01, 0.1, 0.5, 1.0])
def test_topk_keeps_exactly_the_k_largest_magnitudes(fraction: float, numel: int, dtype: torch.dtype) -> None:
    x = torch.randn(numel, dtype=dtype, generator=torch.Generator().manual_seed(numel))
    compressor = TopKCompressor(fraction)
    k = max(1, math.ceil(fraction * numel))
    decoded = compressor.compress_decompress(x)
    # Sort-based reference: the k indices of largest |x| (Gaussian draws have no ties).
    kept = torch.argsort(x.abs(), descending=True)[:k]
    reference = torch.zeros_like(x)
    reference[kept] = x[kept]
    assert torch.equal(decoded, reference)
    assert int((decoded != 0).sum()) == k


def test_topk_decodes_negative_values_and_int32_indices() -> None:
    x = torch.tensor([0.5, -3.0, 0.1, 2.0, -0.2])
    values, indices = TopKCompressor(0.4).compress(x)
    assert indices.dtype == torch.int32
    assert sorted(zip(indices.tolist(), values.tolist())) == [(1, -3.0), (3, 2.0)]


def test_randomk_sender_and_receiver_agree_on_the_same_step() -> None:
    numel, fraction = 1001, 0.1
    sender, receiver = RandomKCompressor(fraction, seed=7), RandomKCompressor(fraction, seed=7)
    x = torch.randn(numel, dtype=torch.float64)
    masks = []
    for step in [0, 1, 2, 10_000]:
        sender.set_step(step)
        receiver.set_step(step)
        payload = sender.compress(x)
        # Only the values travel: one tensor of k elements of the input dtype, no indices.
        assert len(payload) == 1 and payload[0].shape == (101,) and payload[0].dtype == torch.float64
        # The receiver has decoded other messages in between; only the step matters, not call counts.
        receiver.decompress(receiver.compress(torch.randn(numel, dtype=torch.float64)), numel, torch.float64)
        decoded = receiver.decompress(payload, numel, torch.float64)
        mask = decoded != 0
        assert int(mask.sum()) == 101 and torch.equal(decoded[mask], x[mask])
        assert torch.equal(decoded, sender.compress_decompress(x))  # what error feedback subtracts
        masks.append(mask)
    assert not any(torch.equal(masks[0], other) for other in masks[1:])  # the mask changes with the step
    other_seed = RandomKCompressor(fraction, seed=8)
    other_seed.set_step(10_000)
    assert not torch.equal(other_seed.compress_decompress(x) != 0, masks[-1])


def test_randomk_needs_a_step_except_as_the_identity() -> None:
    x = torch.randn(50)
    with pytest.raises(RuntimeError, match="set_step"):
        RandomKCompressor(0.1).compress(x)
    identity = RandomKCompressor(1.0)
    (values,) = identity.compress(x)
    assert torch.equal(values, x) and torch.equal(identity.compress_decompress(x), x)


def test_randomk_mask_covers_every_index_over_steps() -> None:
    compressor = RandomKCompressor(0.1)
    hits = torch.zeros(100)
    for step in range(200):
        compressor.set_step(step)
        hits += compressor.compress_decompress(torch.ones(100))
    # Each index is kept with probability k / d = 0.1 per step: about 20 of 200 steps, never 0.
    assert hits.sum() == 200 * 10 and hits.min() > 0 and abs(hits.mean() - 20) < 1e-9


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
@pytest.mark.parametrize("numel", [1, 3, 7, 8, 9, 1001])
def test_level_packing_round_trips_exactly(bits: int, numel: int) -> None:
    generator = torch.Generator().manual_seed(numel * bits)
    levels = torch.randint(0, 1 << bits, (numel,), generator=generator, dtype=torch.uint8)
    packed = pack_levels(levels, bits)
    assert packed.dtype == torch.uint8 and packed.shape == (math.ceil(numel * bits / 8),)
    assert torch.equal(unpack_levels(packed, numel, bits), levels)
    top = torch.full((numel,), (1 << bits) - 1, dtype=torch.uint8)
    assert torch.equal(unpack_levels(pack_levels(top, bits), numel, bits), top)


def test_level_packing_puts_the_first_level_in_the_most_significant_bits() -> None:
    assert pack_levels(torch.tensor([1, 2], dtype=torch.uint8), 4).tolist() == [0x12]
    assert pack_levels(torch.tensor([3, 0, 1, 2, 3], dtype=torch.uint8), 2).tolist() == [0b11000110, 0b11000000]


def qsgd_draws(x: torch.Tensor, bits: int, draws: int) -> torch.Tensor:
    """`draws` independent QSGD reconstructions of `x`, stacked."""
    compressor = QSGDCompressor(bits, seed=bits)
    return torch.stack([compressor.compress_decompress(x) for _ in range(draws)])


def qsgd_variance(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Per-element variance of QSGD: (||x|| / s)^2 f (1 - f) with f the fractional part of |x_i| / ||x|| * s."""
    s, norm = (1 << bits) - 1, x.norm()
    scaled = x.abs() / norm * s
    fraction = scaled - scaled.floor()
    return (norm / s) ** 2 * fraction * (1 - fraction)


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_qsgd_is_unbiased(bits: int) -> None:
    x = torch.randn(64, dtype=torch.float64, generator=torch.Generator().manual_seed(bits))
    draws = 2000
    samples = qsgd_draws(x, bits, draws)
    standard_error = (qsgd_variance(x, bits) / draws).sqrt()
    # Five standard errors per element (plus float32-norm rounding) for 64 elements: a fluke is ~1e-5 likely.
    assert torch.all((samples.mean(dim=0) - x).abs() <= 5 * standard_error + 1e-6 * x.norm())


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_qsgd_variance_obeys_the_qsgd_bound(bits: int) -> None:
    numel, draws = 1000, 200
    x = torch.randn(numel, dtype=torch.float64, generator=torch.Generator().manual_seed(10 + bits))
    s = (1 << bits) - 1
    squared_errors = ((qsgd_draws(x, bits, draws) - x) ** 2).sum(dim=1)
    mse = squared_errors.mean()
    bound = min(numel / s**2, math.sqrt(numel) / s) * x.norm() ** 2
    assert mse <= bound
    # Sharper: the empirical error matches the exact QSGD variance within a few standard errors.
    exact = qsgd_variance(x, bits).sum()
    assert abs(mse - exact) <= 5 * squared_errors.std() / math.sqrt(draws)


def test_qsgd_decodes_zero_and_one_hot_vectors() -> None:
    compressor = QSGDCompressor(4)
    assert torch.equal(compressor.compress_decompress(torch.zeros(9)), torch.zeros(9))
    one_hot = torch.zeros(9)
    one_hot[4] = -2.5  # |x_i| = ||x||, the largest level exactly: quantized without error
    assert torch.equal(compressor.compress_decompress(one_hot), one_hot)


def test_qsgd_seed_makes_draws_reproducible() -> None:
    x = torch.randn(100)
    first, second, other = QSGDCompressor(2, seed=1), QSGDCompressor(2, seed=1), QSGDCompressor(2, seed=2)
    a, b = first.compress_decompress(x), second.compress_decompress(x)
    assert torch.equal(a, b) and not torch.equal(a, other.compress_decompress(x))
    assert not torch.equal(first.compress_decompress(x), a)  # the generator advances between messages


def test_qsgd_dither_state_is_keyed_by_device_type() -> None:
    """A checkpoint's dither stream resumes on any GPU index, and one written on a GPU resumes on the CPU."""
    x = torch.randn(100)
    running = QSGDCompressor(2, seed=1)
    running.compress_decompress(x)
    saved = running.rng_state()
    assert list(saved) == ["cpu"]
    resumed = QSGDCompressor(2, seed=1)
    resumed.load_rng_state({"cpu:0": saved["cpu"], "cuda:3": torch.zeros(16, dtype=torch.uint8)})  # older keys, a GPU's
    assert torch.equal(resumed.compress_decompress(x), running.compress_decompress(x))
    assert set(resumed.rng_state()) == {"cpu", "cuda"}  # the GPU state waits for a GPU, never touched on the CPU...
    assert torch.equal(resumed.rng_state()["cuda"], torch.zeros(16, dtype=torch.uint8))  # ...and is saved again as it was
    again = QSGDCompressor(2, seed=1)
    again.load_rng_state(running.rng_state())
    assert torch.equal(again.rng_state()["cpu"], running.rng_state()["cpu"])  # a checkpoint before the next message keeps it


@pytest.mark.parametrize("dtype", DTYPES)
def test_error_feedback_with_topk_keeps_memory_p_minus_delta(dtype: torch.dtype) -> None:
    generator = torch.Generator().manual_seed(0)
    feedback = ErrorFeedback(TopKCompressor(0.05))
    previous = torch.zeros(200, dtype=dtype)
    total_in, total_out = torch.zeros(200, dtype=dtype), torch.zeros(200, dtype=dtype)
    for _ in range(20):
        x = torch.randn(200, dtype=dtype, generator=generator)
        corrected = x + previous
        payload, delta = feedback.compress(x)
        assert torch.equal(delta, feedback.compressor.decompress(payload, 200, dtype))
        assert int((delta != 0).sum()) == 10
        assert torch.allclose(feedback.memory, corrected - delta)
        previous = feedback.memory.clone()
        total_in += x
        total_out += delta
    # Nothing is lost, only delayed: the inputs' sum minus the deltas' sum is the final memory.
    assert torch.allclose(total_in - total_out, feedback.memory, atol=1e-5)  # float32 sums round
