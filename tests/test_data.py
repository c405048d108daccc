"""Tests for cgatrain.data: loaders, IDX parsing, partitions and the batch sampler."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from cgatrain.data import (
    AgentSampler,
    DataError,
    check_partition_feasible,
    load_dataset,
    partition_indices,
    read_idx,
    steps_per_epoch,
    write_idx,
)

SHARED_MNIST = (Path(__file__).parents[1] / "../shared/data/mnist-t10k").resolve()


def _ten_class_labels(per_class: list[int], seed: int = 0) -> np.ndarray:
    """Shuffled int64 labels with ``per_class[c]`` samples of class c."""
    labels = np.concatenate([np.full(count, c, dtype=np.int64) for c, count in enumerate(per_class)])
    return np.random.default_rng(seed).permutation(labels)


def _assert_exact_cover(shards: list[np.ndarray], num_samples: int) -> None:
    """Every index in 0..num_samples-1 appears in exactly one shard; shards are sorted int64."""
    for shard in shards:
        assert shard.dtype == np.int64 and np.all(np.diff(shard) > 0)
    merged = np.concatenate(shards)
    assert len(merged) == num_samples
    assert np.array_equal(np.sort(merged), np.arange(num_samples))


def test_digits_shapes_and_ranges() -> None:
    split = load_dataset({"name": "digits", "test_fraction": 0.2, "split_seed": 0})
    assert split.input_shape == (1, 8, 8) and split.num_classes == 10 and split.task == "classification"
    assert split.train_x.shape == (1437, 1, 8, 8) and split.test_x.shape == (360, 1, 8, 8)
    assert split.train_x.dtype == torch.float32 and split.train_y.dtype == torch.int64
    # Standardized with the train pixels' statistics.
    assert abs(float(split.train_x.mean())) < 1e-4 and abs(float(split.train_x.std()) - 1.0) < 1e-3
    assert set(split.test_y.tolist()) == set(range(10))
    # Stratified: every class keeps its share (within one image) of the 20% test split.
    train_counts, test_counts = torch.bincount(split.train_y), torch.bincount(split.test_y)
    assert torch.all((test_counts - 0.2 * (train_counts + test_counts)).abs() <= 1)
    assert split.optimum is None


def test_unknown_dataset_lists_known_names() -> None:
    with pytest.raises(DataError, match="digits"):
        load_dataset({"name": "cifar"})


@pytest.mark.skipif(not SHARED_MNIST.is_dir(), reason=f"{SHARED_MNIST} not present")
def test_mnist_idx_t10k_split(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(SHARED_MNIST.parent)
    split = load_dataset({"name": "mnist_idx", "path": "mnist-t10k", "train_count": 8000})
    assert split.train_x.shape == (8000, 1, 28, 28) and split.test_x.shape == (2000, 1, 28, 28)
    assert split.input_shape == (1, 28, 28)
    assert set(split.train_y.tolist()) == set(range(10)) and set(split.test_y.tolist()) == set(range(10))
    assert abs(float(split.train_x.mean())) < 0.1 and abs(float(split.train_x.std()) - 1.0) < 0.1


def test_mnist_idx_missing_path_names_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte"):
        load_dataset({"name": "mnist_idx", "path": str(tmp_path / "nowhere")})


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_round_trip(tmp_path: Path, suffix: str) -> None:
    images = np.random.default_rng(0).integers(0, 256, size=(5, 3, 4), dtype=np.uint8)
    floats = np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)
    write_idx(tmp_path / f"img{suffix}", images)
    write_idx(tmp_path / f"flt{suffix}", floats)
    assert np.array_equal(read_idx(tmp_path / f"img{suffix}"), images)
    assert np.array_equal(read_idx(tmp_path / f"flt{suffix}"), floats)


def test_a_gzip_file_cut_short_is_named(tmp_path: Path) -> None:
    path = tmp_path / "img.gz"
    write_idx(path, np.zeros((50, 28, 28), dtype=np.uint8))
    path.write_bytes(path.read_bytes()[:40])  # a download cut short
    with pytest.raises(DataError, match=rf"{path}: cannot be read as gzip .*download it again"):
        read_idx(path)


def test_idx_header_is_big_endian(tmp_path: Path) -> None:
    path = tmp_path / "labels"
    write_idx(path, np.arange(3, dtype=np.uint8))
    assert path.read_bytes() == bytes([0, 0, 8, 1, 0, 0, 0, 3, 0, 1, 2])
    path.write_bytes(b"\x01\x00\x08\x01")
    with pytest.raises(DataError, match="magic"):
        read_idx(path)


def test_mnist_idx_uses_train_files_when_present(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    for prefix, count in (("train", 12), ("t10k", 4)):
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (count, 28, 28), dtype=np.uint8))
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte", np.arange(count, dtype=np.uint8) % 10)
    split = load_dataset({"name": "mnist_idx", "path": str(tmp_path), "limit_train": 10})
    assert len(split.train_x) == 10 and len(split.test_x) == 4


def test_synthetic_regression_optimum() -> None:
    split = load_dataset({"name": "synthetic_regression", "num_samples": 200, "dim": 4, "noise": 0.1, "seed": 3})
    assert split.task == "regression" and split.num_classes == 0 and split.input_shape == (4,)
    assert split.train_x.shape == (160, 4) and split.test_y.shape == (40,)
    assert split.optimum is not None and split.optimum.shape == (4,)
    # the optimum zeroes the least-squares gradient on the train set
    gradient = split.train_x.double().T @ (split.train_x.double() @ split.optimum.double() - split.train_y.double())
    assert float(gradient.abs().max()) < 1e-3


@pytest.mark.parametrize("num_agents", [5, 10])
def test_class_partition_paper_layout(num_agents: int) -> None:
    labels = _ten_class_labels([30 + c for c in range(10)])
    shards = partition_indices(labels, num_agents, {"name": "class"}, seed=0)
    _assert_exact_cover(shards, len(labels))
    for agent, shard in enumerate(shards):
        assert set(labels[shard].tolist()) == set(range(agent, 10, num_agents))


def test_class_partition_balance_classes() -> None:
    labels = _ten_class_labels([30 + c for c in range(10)])
    shards = partition_indices(labels, 5, {"name": "class", "balance_classes": True}, seed=0)
    counts = np.bincount(labels[np.concatenate(shards)], minlength=10)
    assert np.all(counts == 30)


def test_class_partition_more_agents_than_classes() -> None:
    labels = _ten_class_labels([30 + c for c in range(10)])
    shards = partition_indices(labels, 20, {"name": "class"}, seed=0)
    _assert_exact_cover(shards, len(labels))
    for agent, shard in enumerate(shards):
        assert set(labels[shard].tolist()) == {agent % 10}
    assert len(shards[0]) == 15 and len(shards[10]) == 15


def test_class_partition_is_seeded() -> None:
    labels = _ten_class_labels([30] * 10)
    first = partition_indices(labels, 20, {"name": "class"}, seed=1)
    again = partition_indices(labels, 20, {"name": "class"}, seed=1)
    other = partition_indices(labels, 20, {"name": "class"}, seed=2)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))


def test_infeasible_partitions_raise() -> None:
    labels = _ten_class_labels([2] * 10)
    with pytest.raises(DataError, match="more agents than the partition can serve"):
        partition_indices(labels, 40, {"name": "class"}, seed=0)
    with pytest.raises(DataError, match="more agents than the partition can serve"):
        check_partition_feasible(20, labels, 21, {"name": "iid"})
    with pytest.raises(DataError, match="integer class labels"):
        partition_indices(np.linspace(0, 1, 20), 2, {"name": "class"}, seed=0)
    with pytest.raises(DataError, match="unknown partition 'zipf'.*dirichlet.*iid"):
        partition_indices(labels, 2, {"name": "zipf"}, seed=0)


def test_iid_partition_balanced_disjoint_covering() -> None:
    labels = np.zeros(103, dtype=np.int64)
    shards = partition_indices(labels, 10, {"name": "iid"}, seed=0)
    _assert_exact_cover(shards, 103)
    sizes = [len(shard) for shard in shards]
    assert max(sizes) - min(sizes) <= 1
    dropped = partition_indices(labels, 10, {"name": "iid", "drop_remainder": True}, seed=0)
    assert [len(shard) for shard in dropped] == [10] * 10


def test_sampler_deterministic_and_no_repeats_within_pass() -> None:
    shard = np.arange(100, 150, dtype=np.int64)
    sampler = AgentSampler(shard, batch_size=8, seed=7, agent=3)
    batches = sampler.epoch_batches(epoch=2, steps=13)
    assert len(batches) == 13 and all(len(batch) == 8 for batch in batches)
    assert all(np.array_equal(a, b) for a, b in zip(batches, AgentSampler(shard, 8, 7, 3).epoch_batches(2, 13)))
    assert not np.array_equal(batches[0], AgentSampler(shard, 8, 7, 4).epoch_batches(2, 13)[0])
    assert not np.array_equal(batches[0], sampler.epoch_batches(3, 13)[0])
    stream = np.concatenate(batches)
    assert len(set(stream[:50].tolist())) == 50 and set(stream[:50].tolist()) == set(shard.tolist())
    assert all(len(set(batch.tolist())) == len(batch) for batch in batches)


def test_sampler_small_shard_uses_whole_shard() -> None:
    batches = AgentSampler(np.array([4, 9, 2]), batch_size=8, seed=0, agent=0).epoch_batches(0, steps=3)
    assert len(batches) == 3 and all(sorted(batch.tolist()) == [2, 4, 9] for batch in batches)


def test_steps_per_epoch() -> None:
    assert steps_per_epoch([100, 129, 50], batch_size=64) == 3
    with pytest.raises(DataError):
        steps_per_epoch([10, 0], batch_size=4)


def test_shipped_configs_load() -> None:
    omegaconf = pytest.importorskip("omegaconf")
    configs = Path(__file__).parents[1] / "configs"
    for group in ("data", "partition", "model"):
        for path in sorted((configs / group).glob("*.yaml")):
            assert omegaconf.OmegaConf.load(path).name == path.stem
    digits = load_dataset(omegaconf.OmegaConf.load(configs / "data" / "digits.yaml"))
    shards = partition_indices(digits.train_y.numpy(), 5, omegaconf.OmegaConf.load(configs / "partition" / "class.yaml"), 0)
    _assert_exact_cover(shards, len(digits.train_y))
