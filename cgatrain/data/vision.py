"""Image data sets in torchvision's on-disk formats (MNIST, Fashion-MNIST, CIFAR-10/100), TinyImageNet
from its official archive layout, and seeded fake images. Images stay uint8 (N, C, H, W); the agent
normalizes and augments them on its device (cgatrain.data.augment).

Each reader has a label-only twin so that the parent can check a partition without decoding images.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cgatrain.data.common import DataError, DatasetSplit, bool_option, int_option
from cgatrain.data.idx import read_idx

# Per-channel mean and std of the train pixels in [0, 1] (the values the papers' code normalizes with).
STATS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "mnist": ((0.1307,), (0.3081,)),
    "fashion_mnist": ((0.2860,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "tinyimagenet": ((0.4802, 0.4481, 0.3975), (0.2770, 0.2691, 0.2821)),
    "fake": ((0.5,), (0.2887,)),  # uniform bytes
}
# Data sets the papers train with random crops and flips.
AUGMENTED = ("cifar10", "cifar100", "tinyimagenet")

_IDX_FOLDERS = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}
_IDX_STEMS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_CIFAR = {
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], "labels", 10),
    "cifar100": ("cifar-100-python", ["train"], ["test"], "fine_labels", 100),
}
TINY_FOLDER = "tiny-imagenet-200"
TINY_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"


def data_root(cfg: Mapping[str, Any]) -> Path:
    """`data.root`, resolved against the current working directory."""
    return (Path.cwd() / str(cfg.get("root") or "data")).resolve()


def _missing(name: str, folder: Path, files: list[str]) -> DataError:
    return DataError(
        f"data={name}: missing {', '.join(files)} in {folder}. Put the data set there in torchvision's layout, "
        f"point data.root at its parent, or set data.download=true to fetch it once"
    )


# ---- MNIST and Fashion-MNIST: <root>/<MNIST|FashionMNIST>/raw/*-ubyte[.gz] ----

def _idx_file(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _idx_paths(name: str, cfg: Mapping[str, Any], split: str) -> tuple[Path, Path]:
    folder = data_root(cfg) / _IDX_FOLDERS[name] / "raw"
    paths = [_idx_file(folder, stem) for stem in _IDX_STEMS[split]]
    if None in paths:
        raise _missing(name, folder, [f"{s}[.gz]" for split_stems in _IDX_STEMS.values() for s in split_stems])
    return paths[0], paths[1]  # type: ignore[return-value]


def _idx_labels(name: str, cfg: Mapping[str, Any], split: str) -> np.ndarray:
    return read_idx(_idx_paths(name, cfg, split)[1]).astype(np.int64)


def _load_idx(name: str, cfg: Mapping[str, Any]) -> DatasetSplit:
    arrays = {}
    for split in ("train", "test"):
        images_path, labels_path = _idx_paths(name, cfg, split)
        images, labels = read_idx(images_path), read_idx(labels_path)
        if images.ndim != 3 or len(images) != len(labels):
            raise DataError(f"data={name}: {images_path.name} {images.shape} and {labels_path.name} {labels.shape} do not match")
        arrays[split] = (images[:, None].astype(np.uint8), labels.astype(np.int64))
    return _image_split(name, arrays, 10)


# ---- CIFAR: <root>/cifar-10-batches-py/data_batch_1..5, test_batch; <root>/cifar-100-python/train, test ----

def _cifar_batches(name: str, cfg: Mapping[str, Any], split: str) -> list[dict[str, Any]]:
    folder_name, train_files, test_files, _, _ = _CIFAR[name]
    folder = data_root(cfg) / folder_name
    files = train_files if split == "train" else test_files
    absent = [f for f in train_files + test_files if not (folder / f).is_file()]
    if absent:
        raise _missing(name, folder, absent)
    batches = []
    for file_name in files:
        with open(folder / file_name, "rb") as handle:
            batches.append(pickle.load(handle, encoding="latin1"))
    return batches


def _cifar_labels(name: str, cfg: Mapping[str, Any], split: str) -> np.ndarray:
    key = _CIFAR[name][3]
    return np.concatenate([np.asarray(batch[key], dtype=np.int64) for batch in _cifar_batches(name, cfg, split)])


def _load_cifar(name: str, cfg: Mapping[str, Any]) -> DatasetSplit:
    key, num_classes = _CIFAR[name][3], _CIFAR[name][4]
    arrays = {}
    for split in ("train", "test"):
        batches = _cifar_batches(name, cfg, split)
        images = np.concatenate([np.asarray(b["data"], dtype=np.uint8).reshape(-1, 3, 32, 32) for b in batches])
        arrays[split] = (images, np.concatenate([np.asarray(b[key], dtype=np.int64) for b in batches]))
    return _image_split(name, arrays, num_classes)


# ---- TinyImageNet: <root>/tiny-imagenet-200/{wnids.txt, train/<wnid>/images/*.JPEG, val/images, val/val_annotations.txt} ----

def _tiny_listing(cfg: Mapping[str, Any], split: str) -> tuple[list[Path], np.ndarray, int]:
    """(image files, labels, number of classes) from folder names and val_annotations.txt alone."""
    folder = data_root(cfg) / TINY_FOLDER
    needed = ["wnids.txt", "train/", "val/images/", "val/val_annotations.txt"]
    if not (folder / "wnids.txt").is_file() or not (folder / "val" / "val_annotations.txt").is_file() or not (folder / "train").is_dir():
        raise _missing("tinyimagenet", folder, needed)
    wnids = [line.strip() for line in (folder / "wnids.txt").read_text().splitlines() if line.strip()]
    index = {wnid: i for i, wnid in enumerate(wnids)}
    files: list[Path] = []
    labels: list[int] = []
    if split == "train":
        for wnid in wnids:
            images = sorted((folder / "train" / wnid / "images").glob("*.JPEG"))
            files += images
            labels += [index[wnid]] * len(images)
    else:
        for line in (folder / "val" / "val_annotations.txt").read_text().splitlines():
            fields = line.split("\t")
            if len(fields) >= 2 and fields[1] in index:
                files.append(folder / "val" / "images" / fields[0])
                labels.append(index[fields[1]])
    if not files:
        raise DataError(f"data=tinyimagenet: no {split} images found under {folder}")
    return files, np.asarray(labels, dtype=np.int64), len(wnids)


def _decode(files: list[Path]) -> np.ndarray:
    from PIL import Image

    images = []
    for path in files:
        with Image.open(path) as image:
            images.append(np.asarray(image.convert("RGB"), dtype=np.uint8).transpose(2, 0, 1))
    return np.stack(images)


def _tiny_cache(cfg: Mapping[str, Any], split: str, files: list[Path]) -> Path:
    return data_root(cfg) / TINY_FOLDER / f"cgatrain_{split}_{len(files)}.npy"


def prepare_tinyimagenet(cfg: Mapping[str, Any]) -> None:
    """Decode every JPEG once into a uint8 .npy next to the data (the parent does this before spawn)."""
    for split in ("train", "test"):
        files, _, _ = _tiny_listing(cfg, split)
        cache = _tiny_cache(cfg, split, files)
        if not cache.exists():
            partial = cache.with_suffix(".partial.npy")
            np.save(partial, _decode(files))
            partial.replace(cache)


def _load_tinyimagenet(name: str, cfg: Mapping[str, Any]) -> DatasetSplit:
    prepare_tinyimagenet(cfg)
    arrays, num_classes = {}, 200
    for split in ("train", "test"):
        files, labels, num_classes = _tiny_listing(cfg, split)
        # Copy-on-write memory map: an agent that keeps only its shard reads only those rows.
        arrays[split] = (np.load(_tiny_cache(cfg, split, files), mmap_mode="c"), labels)
    return _image_split(name, arrays, num_classes)


# ---- fake: seeded uniform bytes, labels from their own stream so the parent never draws images ----

def _fake_options(cfg: Mapping[str, Any]) -> tuple[tuple[int, ...], int, int, int, int]:
    shape = tuple(int(d) for d in (cfg.get("image_shape") or (3, 32, 32)))
    if len(shape) != 3 or min(shape) < 1:
        raise DataError(f"data.image_shape must be [channels, height, width], got {list(shape)}")
    num_classes = int_option(cfg, "num_classes", 10, minimum=1)
    train_size = int_option(cfg, "train_size", 1000, minimum=1)
    test_size = int_option(cfg, "test_size", 200, minimum=1)
    seed = int_option(cfg, "seed", 0, minimum=0)
    return shape, num_classes, train_size, test_size, seed  # type: ignore[return-value]


def _fake_labels(cfg: Mapping[str, Any], split: str) -> np.ndarray:
    _, num_classes, train_size, test_size, seed = _fake_options(cfg)
    size = train_size if split == "train" else test_size
    return np.random.default_rng([seed, 0 if split == "train" else 1, 0]).integers(0, num_classes, size)


def _load_fake(name: str, cfg: Mapping[str, Any]) -> DatasetSplit:
    shape, num_classes, train_size, test_size, seed = _fake_options(cfg)
    arrays = {}
    for code, (split, size) in enumerate((("train", train_size), ("test", test_size))):
        images = np.random.default_rng([seed, code, 1]).integers(0, 256, (size, *shape), dtype=np.uint8)
        arrays[split] = (images, _fake_labels(cfg, split))
    return _image_split(name, arrays, num_classes)


def _image_split(name: str, arrays: Mapping[str, tuple[np.ndarray, np.ndarray]], num_classes: int) -> DatasetSplit:
    (train_x, train_y), (test_x, test_y) = arrays["train"], arrays["test"]
    channels = train_x.shape[1]
    mean, std = STATS[name]
    return DatasetSplit(
        name=name,
        train_x=torch.from_numpy(train_x),
        train_y=torch.from_numpy(train_y),
        test_x=torch.from_numpy(test_x),
        test_y=torch.from_numpy(test_y),
        num_classes=num_classes,
        input_shape=tuple(int(d) for d in train_x.shape[1:]),
        task="classification",
        mean=mean * channels if len(mean) == 1 else mean,
        std=std * channels if len(std) == 1 else std,
    )


# ---- downloads (parent only, before spawn) ----

def download(name: str, cfg: Mapping[str, Any]) -> None:
    """Fetch a data set into `data.root` once, in torchvision's layout; a no-op when it is already there."""
    root = data_root(cfg)
    try:
        train_labels(name, cfg)
        return
    except DataError:
        pass
    import torchvision.datasets as tvd

    try:
        root.mkdir(parents=True, exist_ok=True)
        if name == "tinyimagenet":
            from torchvision.datasets.utils import download_and_extract_archive

            download_and_extract_archive(TINY_URL, str(root))
            return
        dataset = {"mnist": tvd.MNIST, "fashion_mnist": tvd.FashionMNIST, "cifar10": tvd.CIFAR10, "cifar100": tvd.CIFAR100}[name]
        for train in (True, False):
            dataset(str(root), train=train, download=True)
    except (OSError, RuntimeError) as error:  # no network, a full disk, a bad checksum
        raise DataError(f"data.download=true: could not fetch {name} into {root}: {error}") from error


def wants_download(cfg: Mapping[str, Any]) -> bool:
    return bool_option(cfg, "download", False)


_READERS: dict[str, tuple[Callable[[str, Mapping[str, Any]], DatasetSplit], Callable[[str, Mapping[str, Any], str], np.ndarray]]] = {
    "mnist": (_load_idx, _idx_labels),
    "fashion_mnist": (_load_idx, _idx_labels),
    "cifar10": (_load_cifar, _cifar_labels),
    "cifar100": (_load_cifar, _cifar_labels),
    "tinyimagenet": (_load_tinyimagenet, lambda name, cfg, split: _tiny_listing(cfg, split)[1]),
    "fake": (_load_fake, lambda name, cfg, split: _fake_labels(cfg, split)),
}
VISION_DATASETS = tuple(_READERS)


def load_vision(name: str, cfg: Mapping[str, Any]) -> DatasetSplit:
    """Read a whole image data set (uint8 images) from `data.root`."""
    return _READERS[name][0](name, cfg)


def train_labels(name: str, cfg: Mapping[str, Any]) -> np.ndarray:
    """The train labels alone (no image is decoded), for checking partitions in the parent."""
    return _READERS[name][1](name, cfg, "train")


def image_shape(name: str, cfg: Mapping[str, Any]) -> tuple[int, ...]:
    """Per-sample (C, H, W) of a data set, without reading it."""
    known = {"mnist": (1, 28, 28), "fashion_mnist": (1, 28, 28), "cifar10": (3, 32, 32), "cifar100": (3, 32, 32), "tinyimagenet": (3, 64, 64)}
    return known[name] if name in known else _fake_options(cfg)[0]


def num_classes(name: str, cfg: Mapping[str, Any]) -> int:
    """Number of classes of a data set, without reading it."""
    known = {"mnist": 10, "fashion_mnist": 10, "cifar10": 10, "cifar100": 100, "tinyimagenet": 200}
    return known[name] if name in known else _fake_options(cfg)[1]
