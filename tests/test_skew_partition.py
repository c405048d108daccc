"""Tests for the Sparse-Push data-skew partition (partition=skew)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cgatrain.data import DataError, partition_indices
from cgatrain.data.partition import skew_split

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "partition" / "skew.yaml"


def _labels(per_class: int, num_classes: int = 10, seed: int = 0) -> np.ndarray:
    """Shuffled int64 labels with ``per_class`` samples of each class."""
    labels = np.repeat(np.arange(num_classes, dtype=np.int64), per_class)
    return np.random.default_rng(seed).permutation(labels)


@pytest.mark.parametrize("skew", [0.0, 0.3, 0.8, 1.0])
@pytest.mark.parametrize(("num_samples", "num_agents"), [(1000, 4), (1003, 7)])
def test_skew_covers_disjoint_and_balanced(skew: float, num_samples: int, num_agents: int) -> None:
    labels = np.random.default_rng(1).integers(0, 10, size=num_samples)
    shards = partition_indices(labels, num_agents, {"name": "skew", "skew": skew}, seed=3)
    merged = np.concatenate(shards)
    assert len(merged) == num_samples and np.array_equal(np.sort(merged), np.arange(num_samples))
    assert all(s.dtype == np.int64 and np.all(np.diff(s) > 0) for s in shards)
    sizes = [len(s) for s in shards]
    assert max(sizes) - min(sizes) <= 1  # the promised balance


def test_skew_is_seeded_and_defaults_to_0_8() -> None:
    labels = _labels(50)
    first = partition_indices(labels, 4, {"name": "skew"}, seed=5)
    again = partition_indices(labels, 4, {"name": "skew", "skew": 0.8}, seed=5)
    other = partition_indices(labels, 4, {"name": "skew"}, seed=6)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))


def test_skew_zero_gives_near_uniform_label_histograms() -> None:
    labels = _labels(400)  # 4000 samples, 1000 per agent, ~100 per class per agent
    shards = partition_indices(labels, 4, {"name": "skew", "skew": 0.0}, seed=0)
    for shard in shards:
        histogram = np.bincount(labels[shard], minlength=10) / len(shard)
        assert np.abs(histogram - 0.1).max() < 0.04


def test_skew_one_gives_contiguous_label_ranges() -> None:
    labels = _labels(100)  # 10 classes among 4 agents: 2.5 classes each
    shards = partition_indices(labels, 4, {"name": "skew", "skew": 1.0}, seed=0)
    previous_max = -1
    for shard in shards:
        held = np.unique(labels[shard])
        assert np.array_equal(held, np.arange(held.min(), held.max() + 1))  # no gaps in the range
        assert held.min() >= previous_max  # ranges follow agent order, overlapping at most at a boundary class
        previous_max = held.max()
    assert previous_max == 9


@pytest.mark.parametrize("skew", [0.2, 0.5, 0.8])
def test_sorted_fraction_per_agent_is_about_skew(skew: float) -> None:
    labels = _labels(100)
    rng = np.random.default_rng(0)
    sorted_parts, iid_parts = skew_split(labels, 4, skew, rng)
    for sorted_part, iid_part in zip(sorted_parts, iid_parts):
        assert abs(len(sorted_part) / (len(sorted_part) + len(iid_part)) - skew) < 0.01
    # the sorted parts, in agent order, are non-decreasing in label
    assert np.all(np.diff(labels[np.concatenate(sorted_parts)]) >= 0)
    # partition_indices with the same seed returns exactly these pieces
    shards = partition_indices(labels, 4, {"name": "skew", "skew": skew}, seed=0)
    for shard, sorted_part, iid_part in zip(shards, sorted_parts, iid_parts):
        assert np.array_equal(shard, np.sort(np.concatenate([sorted_part, iid_part])))


def test_skew_rejects_bad_inputs() -> None:
    labels = _labels(10)
    with pytest.raises(DataError, match="integer class labels"):
        partition_indices(np.linspace(0.0, 1.0, 40), 2, {"name": "skew"}, seed=0)
    for bad in (-0.1, 1.5, True, "lots"):
        with pytest.raises(DataError, match="skew"):
            partition_indices(labels, 2, {"name": "skew", "skew": bad}, seed=0)
    with pytest.raises(DataError, match="no data"):
        partition_indices(labels, 101, {"name": "skew"}, seed=0)


def test_shipped_skew_config() -> None:
    yaml = pytest.importorskip("yaml")
    cfg = yaml.safe_load(CONFIG.read_text())
    assert cfg == {"name": "skew", "skew": 0.8}
    shards = partition_indices(_labels(40), 4, cfg, seed=0)
    assert sum(len(s) for s in shards) == 400
