"""Image data sets read from fixture files in their real formats, device augmentation, streaming,
label-skew partitions and the class-count table."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from vision_fixtures import rewrite_cifar, write_cifar, write_mnist, write_tinyimagenet

from cgatrain.data import DataError, load_dataset, partition_indices, read_idx, write_idx
from cgatrain.data.agent_data import AgentData, write_class_counts
from cgatrain.data.augment import Augmentation, Normalizer
from cgatrain.data.datasets import describe_dataset
from cgatrain.data.label_skew import class_counts

CPU = torch.device("cpu")


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_reader_returns_the_pickled_pixels_and_labels(tmp_path: Path, name: str) -> None:
    arrays = write_cifar(tmp_path, name)
    split = load_dataset({"name": name, "root": str(tmp_path)})
    assert split.train_x.dtype == torch.uint8 and split.train_x.shape == (100, 3, 32, 32)
    assert np.array_equal(split.train_x.numpy(), arrays["train_x"]) and np.array_equal(split.test_y.numpy(), arrays["test_y"])
    assert split.num_classes == (10 if name == "cifar10" else 100) and len(split.mean) == 3
    assert np.array_equal(describe_dataset({"name": name, "root": str(tmp_path)}).train_labels, arrays["train_y"])


@pytest.mark.parametrize(("name", "folder"), [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_mnist_family_reads_torchvision_raw_layout(tmp_path: Path, name: str, folder: str) -> None:
    arrays = write_mnist(tmp_path, folder)
    split = load_dataset({"name": name, "root": str(tmp_path)})
    assert split.input_shape == (1, 28, 28) and np.array_equal(split.train_x.numpy(), arrays["train_x"])
    assert np.array_equal(split.test_y.numpy(), arrays["test_y"])


def test_tinyimagenet_reads_archive_layout_and_labels_need_no_decoding(tmp_path: Path) -> None:
    write_tinyimagenet(tmp_path, classes=3, per_class=4, val=6)
    info = describe_dataset({"name": "tinyimagenet", "root": str(tmp_path)})
    assert list(info.train_labels) == [0] * 4 + [1] * 4 + [2] * 4 and info.input_shape == (3, 64, 64)
    assert not list((tmp_path / "tiny-imagenet-200").glob("*.npy"))  # the parent decoded nothing
    split = load_dataset({"name": "tinyimagenet", "root": str(tmp_path)})
    assert split.train_x.shape == (12, 3, 64, 64) and split.test_y.tolist() == [0, 1, 2, 0, 1, 2]
    assert abs(int(split.test_x[3, 0].float().mean()) - 60) <= 2  # val_3 is red 60
    assert len(list((tmp_path / "tiny-imagenet-200").glob("cgatrain_*.npy"))) == 2  # decoded once, cached


@pytest.mark.parametrize("name", ["cifar10", "cifar100", "mnist", "fashion_mnist", "tinyimagenet"])
def test_missing_files_name_what_is_expected_and_where(tmp_path: Path, name: str) -> None:
    with pytest.raises(DataError, match=r"missing .* in .*" + str(tmp_path) + r".*data.download=true"):
        load_dataset({"name": name, "root": str(tmp_path)})
    with pytest.raises(DataError, match="missing"):
        describe_dataset({"name": name, "root": str(tmp_path)})


def test_fake_data_is_seeded_and_shaped() -> None:
    cfg = {"name": "fake", "image_shape": [3, 12, 10], "num_classes": 7, "train_size": 50, "test_size": 9, "seed": 3}
    first, second = load_dataset(cfg), load_dataset(cfg)
    assert first.train_x.shape == (50, 3, 12, 10) and first.test_x.shape == (9, 3, 12, 10) and first.num_classes == 7
    assert torch.equal(first.train_x, second.train_x) and int(first.train_y.max()) < 7
    assert np.array_equal(describe_dataset(cfg).train_labels, first.train_y.numpy())
    assert not torch.equal(load_dataset({**cfg, "seed": 4}).train_x, first.train_x)


def test_batch_augmentation_matches_per_image_path_and_geometry() -> None:
    augmentation = Augmentation(padding=4, flip=True)
    images = torch.randint(0, 256, (16, 3, 8, 8), dtype=torch.uint8)
    offsets, flips = augmentation.draw(seed=1, agent=2, step=3, count=16)
    batch = augmentation.apply_batch(images, offsets, flips)
    for i in range(16):
        assert torch.equal(batch[i], augmentation.apply_one(images[i], offsets[i], bool(flips[i])))
    centre = augmentation.apply_batch(images, np.full((16, 2), 4), np.zeros(16, dtype=bool))
    assert torch.equal(centre, images)
    mirrored = augmentation.apply_batch(images, np.full((16, 2), 4), np.ones(16, dtype=bool))
    assert torch.equal(mirrored, images.flip(-1))
    corner = augmentation.apply_batch(images, np.zeros((16, 2), dtype=int), np.zeros(16, dtype=bool))
    assert corner[:, :, :4, :].eq(0).all() and torch.equal(corner[:, :, 4:, 4:], images[:, :, :4, :4])
    again = augmentation.draw(seed=1, agent=2, step=3, count=16)
    assert np.array_equal(again[0], offsets) and not np.array_equal(augmentation.draw(1, 2, 4, 16)[0], offsets)


def test_normalizer_matches_the_formula() -> None:
    images = torch.randint(0, 256, (2, 3, 4, 4), dtype=torch.uint8)
    mean, std = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
    expected = (images.float() / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    assert torch.allclose(Normalizer(mean, std, CPU)(images), expected, atol=1e-5)


@pytest.mark.parametrize("workers", [0, 1])
def test_streaming_gives_the_in_memory_batches(tmp_path: Path, workers: int) -> None:
    write_cifar(tmp_path)
    cfg = {"name": "cifar10", "root": str(tmp_path)}
    split = load_dataset(cfg)
    shard = partition_indices(split.train_y.numpy(), 3, {"name": "iid"}, 0)[1]
    memory = AgentData(split, shard, 8, 5, 1, CPU, {**cfg, "in_memory": True})
    streamed = AgentData(split, shard, 8, 5, 1, CPU, {**cfg, "in_memory": False, "workers": workers})
    assert memory.in_memory and not streamed.in_memory and len(memory.train_x) == len(shard)
    for (x1, y1), (x2, y2) in zip(memory.batches(1, 5), streamed.batches(1, 5), strict=True):
        assert x1.dtype == torch.float32 and torch.equal(x1, x2) and torch.equal(y1, y2)
    tail = list(memory.batches(1, 5, start=3))  # a resumed epoch sees the same later batches
    assert all(torch.equal(a[0], b[0]) for a, b in zip(tail, list(memory.batches(1, 5))[3:], strict=True))


def test_streaming_keeps_one_loader_and_its_workers_across_epochs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from torch.utils.data import DataLoader

    from cgatrain.data import agent_data

    loaders = []

    class Counted(DataLoader):
        def __init__(self, *args: object, **kwargs: object) -> None:
            loaders.append(kwargs)
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(agent_data, "DataLoader", Counted)
    write_cifar(tmp_path)
    cfg = {"name": "cifar10", "root": str(tmp_path)}
    split = load_dataset(cfg)
    shard = np.arange(1, 100, 3)
    memory = AgentData(split, shard, 8, 5, 1, CPU, {**cfg, "in_memory": True})
    streamed = AgentData(split, shard, 8, 5, 1, CPU, {**cfg, "in_memory": False, "workers": 1})
    assert len(streamed.streamed) == len(shard)  # only the shard is kept
    half_read = streamed.batches(0, 4)
    next(half_read)  # an epoch left after one step (a stop mid-epoch): the next one starts clean
    for epoch in (1, 2, 3):
        for (x1, y1), (x2, y2) in zip(memory.batches(epoch, 4), streamed.batches(epoch, 4), strict=True):
            assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert len(loaders) == 1 and loaders[0]["persistent_workers"] is True


def test_in_memory_batches_are_the_shard_augmented(tmp_path: Path) -> None:
    write_cifar(tmp_path)
    cfg = {"name": "cifar10", "root": str(tmp_path), "augment": "none"}
    split = load_dataset(cfg)
    shard = np.arange(10, 40)
    data = AgentData(split, shard, 6, 0, 0, CPU, cfg)
    (inputs, targets), = list(data.batches(0, 1))
    batch = data.sampler.epoch_batches(0, 1)[0]
    assert torch.equal(targets, split.train_y[batch]) and torch.allclose(inputs, data.normalizer(split.train_x[batch]))
    auto = AgentData(split, shard, 6, 0, 0, CPU, {"name": "cifar10"})
    assert auto.augmentation == Augmentation(4, True)


def test_memory_budget_picks_streaming() -> None:
    split = load_dataset({"name": "fake", "train_size": 100, "test_size": 10})
    small = AgentData(split, np.arange(100), 10, 0, 0, CPU, {"memory_budget_mb": 1})
    tiny = AgentData(split, np.arange(100), 10, 0, 0, CPU, {"memory_budget_mb": 0.01})
    assert small.in_memory and not tiny.in_memory


def _cifar_like_labels(per_class: int = 100, classes: int = 10) -> np.ndarray:
    return np.random.default_rng(0).permutation(np.repeat(np.arange(classes), per_class))


def test_class_split_for_40_agents_on_10_classes_assigns_distinct_subsets_at_random() -> None:
    labels = _cifar_like_labels()
    shards = partition_indices(labels, 40, {"name": "class", "assignment": "random"}, seed=0)
    counts = class_counts(labels, shards, 10)
    assert (np.count_nonzero(counts, axis=1) == 1).all() and (counts.sum(axis=0) == 100).all()
    assert (np.count_nonzero(counts, axis=0) == 4).all()  # each class cut into 4 subsets
    modulo = class_counts(labels, partition_indices(labels, 40, {"name": "class"}, seed=0), 10)
    assert [int(np.argmax(row)) for row in modulo] == [a % 10 for a in range(40)]
    assert [int(np.argmax(row)) for row in counts] != [a % 10 for a in range(40)]


def test_shards_partition_gives_k_label_shards_each() -> None:
    labels = _cifar_like_labels()
    shards = partition_indices(labels, 10, {"name": "shards", "shards_per_agent": 2}, seed=1)
    counts = class_counts(labels, shards, 10)
    assert (counts.sum(axis=1) == 100).all() and (np.count_nonzero(counts, axis=1) <= 2).all()
    assert sorted(np.concatenate(shards).tolist()) == list(range(1000))
    with pytest.raises(DataError, match="shards_per_agent"):
        partition_indices(labels, 600, {"name": "shards", "shards_per_agent": 2}, seed=1)


def test_dirichlet_partition_covers_respects_min_size_and_fails_clearly() -> None:
    labels = _cifar_like_labels()
    shards = partition_indices(labels, 8, {"name": "dirichlet", "alpha": 0.3, "min_size": 20}, seed=2)
    assert min(len(s) for s in shards) >= 20 and sorted(np.concatenate(shards).tolist()) == list(range(1000))
    skewed = class_counts(labels, shards, 10)
    assert (skewed.max(axis=1) / skewed.sum(axis=1)).mean() > 0.3  # far from IID's 0.1
    with pytest.raises(DataError, match=r"min_size=120.*raise partition.alpha or lower partition.min_size"):
        partition_indices(labels, 8, {"name": "dirichlet", "alpha": 0.05, "min_size": 120, "max_tries": 5}, seed=2)


def test_class_count_table_is_saved_and_printed(tmp_path: Path) -> None:
    counts = np.array([[3, 0, 1], [0, 2, 0]])
    text = write_class_counts(tmp_path, counts)
    assert "total" in text and "    1      0      2      0       2" in text
    assert (tmp_path / "class_counts.csv").read_text().splitlines()[1] == "0,3,0,1,4"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_data_path_gives_the_cpu_batches(tmp_path: Path) -> None:
    write_cifar(tmp_path)
    cfg = {"name": "cifar10", "root": str(tmp_path)}
    split = load_dataset(cfg)
    shard = np.arange(0, 100, 2)
    on_gpu = AgentData(split, shard, 8, 1, 0, torch.device("cuda"), cfg)
    on_cpu = AgentData(split, shard, 8, 1, 0, CPU, cfg)
    assert on_gpu.train_x.is_cuda and on_gpu.test_inputs[:4].is_cuda
    for (x1, y1), (x2, y2) in zip(on_gpu.batches(0, 4), on_cpu.batches(0, 4), strict=True):
        assert torch.allclose(x1.cpu(), x2, atol=1e-6) and torch.equal(y1.cpu(), y2)


def test_download_happens_once_in_the_parent_through_torchvision(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision.datasets

    from cgatrain.data.datasets import prepare_dataset

    calls = []

    def fake_cifar10(root: str, train: bool, download: bool) -> None:
        calls.append((root, train, download))
        write_cifar(Path(root))

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", fake_cifar10)
    cfg = {"name": "cifar10", "root": str(tmp_path / "data"), "download": True}
    prepare_dataset(cfg)
    assert calls == [(str(tmp_path / "data"), True, True), (str(tmp_path / "data"), False, True)]
    prepare_dataset(cfg)  # already there: nothing is fetched again
    assert len(calls) == 2 and len(describe_dataset(cfg).train_labels) == 100
    prepare_dataset({**cfg, "download": False, "root": str(tmp_path / "elsewhere")})  # no download asked: no call
    assert len(calls) == 2


def test_failed_download_is_a_data_error_naming_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision.datasets

    from cgatrain.data.datasets import prepare_dataset

    def offline(root: str, train: bool, download: bool) -> None:
        raise RuntimeError("Error downloading cifar-10-python.tar.gz")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    with pytest.raises(DataError, match=r"data.download=true: could not fetch cifar10 into .*Error downloading"):
        prepare_dataset({"name": "cifar10", "root": str(tmp_path), "download": True})


# ---- damaged files are refused in the parent (describe_dataset), naming the file ----

def _refused(cfg: dict, match: str) -> None:
    """The parent's check and the agent's reader both refuse, with a DataError matching `match`."""
    with pytest.raises(DataError, match=match):
        describe_dataset(cfg)
    with pytest.raises(DataError, match=match):
        load_dataset(cfg)


def test_cut_short_or_foreign_cifar_pickles_are_named(tmp_path: Path) -> None:
    write_cifar(tmp_path)
    cfg = {"name": "cifar10", "root": str(tmp_path)}
    test_batch = tmp_path / "cifar-10-batches-py" / "test_batch"
    whole = test_batch.read_bytes()
    test_batch.write_bytes(whole[: len(whole) // 2])  # the test split: read by the parent too
    _refused(cfg, r"cifar-10-batches-py/test_batch is not a readable pickle \(.*download it again")
    test_batch.write_bytes(whole)
    batch = pickle.loads(whole, encoding="latin1")
    test_batch.write_bytes(pickle.dumps({key.encode(): value for key, value in batch.items()}))
    _refused(cfg, r"test_batch has no 'data' entry \(its keys are bytes.*b'labels'")


@pytest.mark.parametrize(("entries", "match"), [
    ({"data": np.zeros((20, 32, 32, 3), np.uint8)}, r"data_batch_2 'data' is uint8 of shape \(20, 32, 32, 3\); .*\(N, 3072\)"),
    ({"data": np.zeros((20, 1024), np.uint8)}, r"data_batch_2 'data' is uint8 of shape \(20, 1024\)"),
    ({"data": np.zeros((20, 3072), np.int64)}, r"data_batch_2 'data' is int64 of shape"),
    ({"labels": list(range(10)) * 2 + [3]}, r"data_batch_2 holds 20 images but 21 'labels'"),
    ({"labels": None}, r"data_batch_2 has no 'labels' entry; its keys: 'data'"),
    ({"labels": [10] + [0] * 19}, r"data_batch_2 has 1 label\(s\) outside 0..9 \(first: 10\); cifar10 has 10 classes"),
])
def test_cifar_batches_of_the_wrong_shape_or_labels_are_refused(tmp_path: Path, entries: dict, match: str) -> None:
    write_cifar(tmp_path)
    rewrite_cifar(tmp_path, "data_batch_2", **entries)
    _refused({"name": "cifar10", "root": str(tmp_path)}, match)


def test_test_labels_outside_the_classes_fail_in_the_parent(tmp_path: Path) -> None:
    write_cifar(tmp_path, "cifar100")
    rewrite_cifar(tmp_path, "test", "cifar100", fine_labels=[100] + [1] * 19)
    _refused({"name": "cifar100", "root": str(tmp_path)}, r"cifar-100-python/test has 1 label\(s\) outside 0..99 \(first: 100\)")
    from omegaconf import OmegaConf

    from cgatrain.compose import compose_config
    from cgatrain.config import ConfigError, validate

    cfg = OmegaConf.to_container(compose_config(["data=cifar100", f"data.root={tmp_path}"]), resolve=True)
    with pytest.raises(ConfigError, match=r"invalid config:\n  - data=cifar100: .*/test has 1 label\(s\) outside 0..99"):
        validate(cfg)  # type: ignore[arg-type]


def _rewrite_idx(tmp_path: Path, stem: str, array: np.ndarray, gz: bool = True) -> Path:
    raw = tmp_path / "MNIST" / "raw"
    (raw / f"{stem}.gz").unlink()
    write_idx(raw / (f"{stem}.gz" if gz else stem), array)
    return raw / (f"{stem}.gz" if gz else stem)


def test_missing_files_message_names_only_the_missing_ones(tmp_path: Path) -> None:
    write_mnist(tmp_path)
    (tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"missing t10k-labels-idx1-ubyte\[.gz\] in") as refusal:
        describe_dataset({"name": "mnist", "root": str(tmp_path)})
    assert "train-images" not in str(refusal.value) and "t10k-images" not in str(refusal.value)
    write_cifar(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "test_batch").unlink()
    with pytest.raises(DataError, match=r"data=cifar10: missing test_batch in .*cifar-10-batches-py\. Put"):
        describe_dataset({"name": "cifar10", "root": str(tmp_path)})


def test_cut_short_idx_files_fail_in_the_parent(tmp_path: Path) -> None:
    arrays = write_mnist(tmp_path)
    cfg = {"name": "mnist", "root": str(tmp_path)}
    gz = tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte.gz"
    whole = gz.read_bytes()
    gz.write_bytes(whole[:-40])
    _refused(cfg, r"data=mnist: .*/train-images-idx3-ubyte.gz: cannot be read as gzip")
    gz.unlink()
    raw = tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte"
    write_idx(raw, arrays["train_x"][:, 0])
    raw.write_bytes(raw.read_bytes()[:-784])  # one image short of what its header says
    _refused(cfg, r"data=mnist: .*/train-images-idx3-ubyte: IDX payload is 46256 bytes, header implies 47040")


@pytest.mark.parametrize(("stem", "array", "match"), [
    ("t10k-images-idx3-ubyte", np.zeros((19, 28, 28), np.uint8), r"t10k-images-idx3-ubyte.gz holds 19 images but .*t10k-labels-idx1-ubyte.gz 20 labels"),
    ("train-labels-idx1-ubyte", np.arange(60, dtype=np.uint8) % 15, r"train-labels-idx1-ubyte.gz has 20 label\(s\) outside 0..9 \(first: 10\)"),
    ("t10k-images-idx3-ubyte", np.full((20, 28, 28), 0.5, np.float32), r"t10k-images-idx3-ubyte.gz holds float32 pixels; mnist images are uint8"),
    ("train-images-idx3-ubyte", np.zeros((60, 7, 7), np.uint8), r"train-images-idx3-ubyte.gz holds images of shape \(60, 7, 7\); mnist images are \(N, 28, 28\)"),
])
def test_idx_files_that_disagree_are_refused_in_the_parent(tmp_path: Path, stem: str, array: np.ndarray, match: str) -> None:
    write_mnist(tmp_path)
    _rewrite_idx(tmp_path, stem, array)
    _refused({"name": "mnist", "root": str(tmp_path)}, match)


def test_parent_check_of_the_real_mnist_test_set_is_quick(tmp_path: Path) -> None:
    import time

    real = Path("/work/shared/data/mnist-t10k")
    if not (real / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip("needs the real MNIST test set")
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for kind in ("images-idx3", "labels-idx1"):  # the test set stands in for the train set too
        for prefix in ("train", "t10k"):
            (raw / f"{prefix}-{kind}-ubyte.gz").symlink_to(real / f"t10k-{kind}-ubyte.gz")
    start = time.perf_counter()
    info = describe_dataset({"name": "mnist", "root": str(tmp_path)})
    assert len(info.train_labels) == 10000 and time.perf_counter() - start < 1.0  # every file read, in under a second
    (raw / "t10k-images-idx3-ubyte.gz").unlink()
    write_idx(raw / "t10k-images-idx3-ubyte", read_idx(real / "t10k-images-idx3-ubyte.gz")[:9999])
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte holds 9999 images but .*t10k-labels-idx1-ubyte.gz 10000 labels"):
        describe_dataset({"name": "mnist", "root": str(tmp_path)})


def test_download_fetches_a_missing_test_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision.datasets

    from cgatrain.data.datasets import prepare_dataset

    write_mnist(tmp_path / "data")
    (tmp_path / "data" / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz").unlink()
    calls = []
    monkeypatch.setattr(torchvision.datasets, "MNIST", lambda root, train, download: calls.append(train) or write_mnist(Path(root)))
    prepare_dataset({"name": "mnist", "root": str(tmp_path / "data"), "download": True})
    assert calls == [True, False]


# ---- TinyImageNet: the decode cache follows the files and labels; decode errors name the file ----

def test_tinyimagenet_cache_follows_the_wnids_order_and_replaced_images(tmp_path: Path) -> None:
    import os

    from PIL import Image

    write_tinyimagenet(tmp_path, classes=3, per_class=4, val=6)
    folder, cfg = tmp_path / "tiny-imagenet-200", {"name": "tinyimagenet", "root": str(tmp_path)}
    first = load_dataset(cfg)
    wnids = (folder / "wnids.txt").read_text().split()
    (folder / "wnids.txt").write_text("\n".join(reversed(wnids)) + "\n")  # same files, other labels
    second = load_dataset(cfg)
    assert second.train_y.tolist() == [0] * 4 + [1] * 4 + [2] * 4 and second.test_y.tolist() == [2, 1, 0, 2, 1, 0]
    assert torch.equal(second.train_x[:4], first.train_x[8:]) and torch.equal(second.test_x, first.test_x)
    val_0 = folder / "val" / "images" / "val_0.JPEG"
    stamp = val_0.stat().st_mtime_ns
    Image.new("RGB", (64, 64), (0, 200, 0)).save(val_0, quality=95)  # replaced in place: same count, same name
    os.utime(val_0, ns=(stamp + 10**9, stamp + 10**9))
    third = load_dataset(cfg)
    assert abs(float(third.test_x[0, 1].float().mean()) - 200) <= 2 and torch.equal(third.test_x[1:], first.test_x[1:])
    assert len(list(folder.glob("cgatrain_*.npy"))) == 2  # the stale caches are gone
    assert describe_dataset(cfg).num_classes == 3  # the parent counts wnids.txt, as the agents do


def test_tinyimagenet_cache_is_written_per_process_or_skipped_with_a_warning(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import os

    from cgatrain.data import vision

    write_tinyimagenet(tmp_path, classes=2, per_class=2, val=2)
    cfg = {"name": "tinyimagenet", "root": str(tmp_path)}
    saved = []
    real_save = np.save
    monkeypatch.setattr(vision.np, "save", lambda path, array: saved.append(Path(path).name) or real_save(path, array))
    vision.prepare_tinyimagenet(cfg)
    assert len(saved) == 2 and all(name.endswith(f".{os.getpid()}.partial.npy") for name in saved)
    for cache in (tmp_path / "tiny-imagenet-200").glob("cgatrain_*.npy"):
        cache.unlink()

    def unwritable(path: Path, array: np.ndarray) -> None:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(vision.np, "save", unwritable)
    split = load_dataset(cfg)
    assert split.train_x.shape == (4, 3, 64, 64) and not list((tmp_path / "tiny-imagenet-200").glob("*.npy"))
    warnings = capsys.readouterr().err.splitlines()
    assert len(warnings) == 2 and "warning: data=tinyimagenet: cannot write the decode cache" in warnings[0]


def test_tinyimagenet_damaged_files_are_named_in_the_parent(tmp_path: Path) -> None:
    from PIL import Image

    from cgatrain.data.datasets import prepare_dataset

    write_tinyimagenet(tmp_path, classes=3, per_class=2, val=3)
    folder, cfg = tmp_path / "tiny-imagenet-200", {"name": "tinyimagenet", "root": str(tmp_path)}
    val_2 = folder / "val" / "images" / "val_2.JPEG"
    Image.new("RGB", (48, 48), (9, 9, 9)).save(val_2)
    with pytest.raises(DataError, match=r"data=tinyimagenet: .*/val/images/val_2.JPEG is 48x48 pixels; TinyImageNet images are 64x64"):
        prepare_dataset(cfg)
    val_2.write_bytes((folder / "val" / "images" / "val_1.JPEG").read_bytes()[:300])
    with pytest.raises(DataError, match=r"data=tinyimagenet: cannot decode .*/val/images/val_2.JPEG \("):
        prepare_dataset(cfg)
    with open(folder / "val" / "val_annotations.txt", "a") as handle:
        handle.write("val_9.JPEG\tn99999999\t0\t0\t63\t63\n")
    with pytest.raises(DataError, match=r"val_annotations.txt line 4 names no class of wnids.txt: 'val_9.JPEG\\tn99999999"):
        describe_dataset(cfg)
    (folder / "wnids.txt").unlink()
    with pytest.raises(DataError, match=r"data=tinyimagenet: missing wnids.txt in .*tiny-imagenet-200\. Unpack the official "
                                         r"tiny-imagenet-200.zip there, point data.root"):
        describe_dataset(cfg)


# ---- data options: every problem at once, in the parent ----

@pytest.mark.parametrize("budget", [0, -5, "abc", True, float("nan")])
def test_memory_budget_must_be_a_positive_number(budget: object) -> None:
    from cgatrain.data.agent_data import check_data_options

    with pytest.raises(DataError, match=r"data.memory_budget_mb must be a positive number of megabytes, got "):
        check_data_options({"memory_budget_mb": budget}, "cifar10")
    check_data_options({"memory_budget_mb": 0.5}, "cifar10")
    check_data_options({"memory_budget_mb": None}, "cifar10")


def test_data_options_report_every_problem_and_eval_train_needs_the_shard_in_memory() -> None:
    from cgatrain.data.agent_data import check_data_options

    with pytest.raises(DataError) as refusal:
        check_data_options({"augment": "rotate", "in_memory": "maybe", "memory_budget_mb": -5, "workers": -1, "crop_padding": "x"}, "cifar10")
    assert str(refusal.value).split("\n  - ") == [
        "data.augment must be one of auto, none, crop_flip, crop, flip; got 'rotate'",
        "data.in_memory must be one of ('auto', 'true', 'false'), got 'maybe'",
        "data.memory_budget_mb must be a positive number of megabytes, got -5",
        "data.workers must be >= 0, got -1",
        "data.crop_padding must be an integer, got 'x'",
    ]
    with pytest.raises(DataError, match=r"train.eval_train scores each agent's shard in memory, but data.in_memory=false streams it"):
        check_data_options({"in_memory": False}, "cifar10", eval_train=True)
    check_data_options({"in_memory": False}, "cifar10")
    check_data_options({"in_memory": "auto"}, "cifar10", eval_train=True)
