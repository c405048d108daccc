"""Image data sets in torchvision's on-disk formats (MNIST, Fashion-MNIST, CIFAR-10/100), TinyImageNet
from its official archive layout, and seeded fake images. Images stay uint8 (N, C, H, W); the agent
normalizes and augments them on its device (cgatrain.data.augment).

Each reader has a label-only twin for the parent: it checks every split's files (presence, sizes, counts, image
format, the labels' range) and returns the train labels, without keeping any image.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cgatrain.data.common import DataError, DatasetSplit, bool_option, int_option
from cgatrain.data.idx import idx_header, read_idx

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
    where = "Unpack the official tiny-imagenet-200.zip there" if name == "tinyimagenet" else "Put the data set there in torchvision's layout"
    return DataError(
        f"data={name}: missing {', '.join(files)} in {folder}. {where}, "
        f"point data.root at its parent, or set data.download=true to fetch it once"
    )


def _check_labels(name: str, source: Path, labels: np.ndarray, classes: int) -> np.ndarray:
    """`labels` as int64, refused unless they are 1-D integer class ids in [0, classes)."""
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"data={name}: {source} holds labels of dtype {labels.dtype} and shape {labels.shape}; expected 1-D integer class ids")
    labels = labels.astype(np.int64)
    outside = labels[(labels < 0) | (labels >= classes)]
    if len(outside):
        raise DataError(f"data={name}: {source} has {len(outside)} label(s) outside 0..{classes - 1} (first: {int(outside[0])}); "
                        f"{name} has {classes} classes")
    return labels


# ---- MNIST and Fashion-MNIST: <root>/<MNIST|FashionMNIST>/raw/*-ubyte[.gz] ----

_IDX_SIZE = (28, 28)


def _idx_file(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _idx_files(name: str, cfg: Mapping[str, Any]) -> dict[str, tuple[Path, Path]]:
    """split -> (images file, labels file); a DataError names exactly the files that are missing."""
    folder = data_root(cfg) / _IDX_FOLDERS[name] / "raw"
    found = {stem: _idx_file(folder, stem) for stems in _IDX_STEMS.values() for stem in stems}
    absent = [f"{stem}[.gz]" for stem, path in found.items() if path is None]
    if absent:
        raise _missing(name, folder, absent)
    return {split: (found[images], found[labels]) for split, (images, labels) in _IDX_STEMS.items()}  # type: ignore[misc]


def _check_idx_pair(name: str, images_path: Path, dtype: np.dtype, shape: tuple[int, ...], labels_path: Path, labels: np.ndarray) -> np.ndarray:
    """Refuse images that are not uint8 28x28 or whose count differs from the labels'; return the checked labels."""
    if dtype != np.uint8:
        raise DataError(f"data={name}: {images_path} holds {dtype} pixels; {name} images are uint8 (0..255)")
    if len(shape) != 3 or tuple(shape[1:]) != _IDX_SIZE:
        raise DataError(f"data={name}: {images_path} holds images of shape {shape}; {name} images are (N, 28, 28)")
    labels = _check_labels(name, labels_path, labels, 10)
    if shape[0] != len(labels):
        raise DataError(f"data={name}: {images_path} holds {shape[0]} images but {labels_path} {len(labels)} labels")
    return labels


def _named(name: str, read: Callable[[Path], Any], path: Path) -> Any:
    """`read(path)`, its DataError prefixed with `data=<name>`."""
    try:
        return read(path)
    except DataError as error:
        raise DataError(f"data={name}: {error}") from None


def _idx_labels(name: str, cfg: Mapping[str, Any], split: str) -> np.ndarray:
    """The labels of `split`, after checking every split's files: IDX headers, payload sizes, counts, labels' range."""
    labels = {}
    for part, (images_path, labels_path) in _idx_files(name, cfg).items():
        dtype, shape = _named(name, idx_header, images_path)  # the images are counted, not kept
        labels[part] = _check_idx_pair(name, images_path, dtype, shape, labels_path, _named(name, read_idx, labels_path))
    return labels[split]


def _load_idx(name: str, cfg: Mapping[str, Any]) -> DatasetSplit:
    arrays = {}
    for split, (images_path, labels_path) in _idx_files(name, cfg).items():
        images = _named(name, read_idx, images_path)
        labels = _check_idx_pair(name, images_path, images.dtype, images.shape, labels_path, _named(name, read_idx, labels_path))
        arrays[split] = (images[:, None], labels)
    return _image_split(name, arrays, 10)


# ---- CIFAR: <root>/cifar-10-batches-py/data_batch_1..5, test_batch; <root>/cifar-100-python/train, test ----

def _cifar_files(name: str, cfg: Mapping[str, Any]) -> dict[str, list[Path]]:
    folder_name, train_files, test_files, _, _ = _CIFAR[name]
    folder = data_root(cfg) / folder_name
    absent = [f for f in train_files + test_files if not (folder / f).is_file()]
    if absent:
        raise _missing(name, folder, absent)
    return {"train": [folder / f for f in train_files], "test": [folder / f for f in test_files]}


def _cifar_batch(name: str, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 3, 32, 32) uint8, labels) of one pickle, refused with the file's name when it is not a CIFAR batch."""
    key, classes = _CIFAR[name][3], _CIFAR[name][4]
    try:
        with open(path, "rb") as handle:
            batch = pickle.load(handle, encoding="latin1")
    except OSError as error:
        raise DataError(f"data={name}: {path} cannot be read ({error.strerror})") from None
    except Exception as error:  # a cut-short or corrupt pickle raises any of a dozen types (UnpicklingError, EOFError, ...)
        raise DataError(f"data={name}: {path} is not a readable pickle ({type(error).__name__}: {error}); download it again") from None
    if not isinstance(batch, dict):
        raise DataError(f"data={name}: {path} holds a {type(batch).__name__}, not a CIFAR batch (a dict with 'data' and {key!r})")
    for entry in ("data", key):
        if entry not in batch:
            bytes_keys = " (its keys are bytes, as a pickle re-saved after loading with encoding='bytes'; use the original files)" \
                if any(isinstance(k, bytes) for k in batch) else ""
            raise DataError(f"data={name}: {path} has no {entry!r} entry{bytes_keys}; its keys: {', '.join(map(repr, batch))}")
    data = np.asarray(batch["data"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DataError(f"data={name}: {path} 'data' is {data.dtype} of shape {data.shape}; CIFAR batches hold uint8 rows of "
                        f"3072 bytes (N, 3072): the red, green and blue 32x32 planes of each image")
    labels = _check_labels(name, path, np.asarray(batch[key]), classes)
    if len(labels) != len(data):
        raise DataError(f"data={name}: {path} holds {len(data)} images but {len(labels)} {key!r}")
    return data.reshape(-1, 3, 32, 32), labels


def _cifar_labels(name: str, cfg: Mapping[str, Any], split: str) -> np.ndarray:
    """The labels of `split`, after checking every batch of both splits (each pickle is read whole, one at a time)."""
    labels = {part: np.concatenate([_cifar_batch(name, path)[1] for path in paths]) for part, paths in _cifar_files(name, cfg).items()}
    return labels[split]


def _load_cifar(name: str, cfg: Mapping[str, Any]) -> DatasetSplit:
    arrays = {}
    for split, paths in _cifar_files(name, cfg).items():
        batches = [_cifar_batch(name, path) for path in paths]
        arrays[split] = (np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches]))
    return _image_split(name, arrays, _CIFAR[name][4])


# ---- TinyImageNet: <root>/tiny-imagenet-200/{wnids.txt, train/<wnid>/images/*.JPEG, val/images, val/val_annotations.txt} ----

_TINY_SIZE = (64, 64)


def _tiny_wnids(cfg: Mapping[str, Any]) -> list[str]:
    folder = data_root(cfg) / TINY_FOLDER
    needed = {"wnids.txt": "is_file", "train/": "is_dir", "val/images/": "is_dir", "val/val_annotations.txt": "is_file"}
    absent = [entry for entry, test in needed.items() if not getattr(folder / entry, test)()]
    if absent:
        raise _missing("tinyimagenet", folder, absent)
    wnids = [line.strip() for line in (folder / "wnids.txt").read_text().splitlines() if line.strip()]
    if not wnids or len(set(wnids)) != len(wnids):
        raise DataError(f"data=tinyimagenet: {folder / 'wnids.txt'} must list distinct class ids, one per line")
    return wnids


def _tiny_listing(cfg: Mapping[str, Any], split: str) -> tuple[list[Path], np.ndarray, int]:
    """(image files, labels, number of classes) from wnids.txt, folder names and val_annotations.txt alone."""
    folder = data_root(cfg) / TINY_FOLDER
    wnids = _tiny_wnids(cfg)
    index = {wnid: i for i, wnid in enumerate(wnids)}
    files: list[Path] = []
    labels: list[int] = []
    if split == "train":
        for wnid in wnids:
            images = sorted((folder / "train" / wnid / "images").glob("*.JPEG"))
            if not images:
                raise DataError(f"data=tinyimagenet: no .JPEG in {folder / 'train' / wnid / 'images'}, but wnids.txt lists {wnid}")
            files += images
            labels += [index[wnid]] * len(images)
    else:
        annotations = folder / "val" / "val_annotations.txt"
        for number, line in enumerate(annotations.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            fields = line.split("\t")
            if len(fields) < 2 or fields[1] not in index:
                raise DataError(f"data=tinyimagenet: {annotations} line {number} names no class of wnids.txt: {line[:80]!r}")
            files.append(folder / "val" / "images" / fields[0])
            labels.append(index[fields[1]])
    if not files:
        raise DataError(f"data=tinyimagenet: no {split} images found under {folder}")
    return files, np.asarray(labels, dtype=np.int64), len(wnids)


def _decode(files: list[Path]) -> np.ndarray:
    from PIL import Image

    images = np.empty((len(files), 3, *_TINY_SIZE), dtype=np.uint8)
    for i, path in enumerate(files):
        try:
            with Image.open(path) as image:
                pixels = np.asarray(image.convert("RGB"), dtype=np.uint8)
        except (OSError, ValueError, Image.DecompressionBombError) as error:  # missing, truncated, not an image
            raise DataError(f"data=tinyimagenet: cannot decode {path} ({error})") from None
        if pixels.shape[:2] != _TINY_SIZE:
            raise DataError(f"data=tinyimagenet: {path} is {pixels.shape[1]}x{pixels.shape[0]} pixels; TinyImageNet images are 64x64")
        images[i] = pixels.transpose(2, 0, 1)
    return images


def _tiny_cache(cfg: Mapping[str, Any], split: str, files: list[Path], labels: np.ndarray) -> Path:
    """The decode cache's name: a hash of the files (names, sizes, modification times) and of their labels (which
    encode wnids.txt's order and val_annotations.txt), so that changed files or labels never reuse stale pixels."""
    folder = data_root(cfg) / TINY_FOLDER
    digest = hashlib.sha256(labels.astype("<i8").tobytes())
    for path in files:
        try:
            stat = path.stat()
        except OSError as error:
            raise DataError(f"data=tinyimagenet: cannot read {path} ({error.strerror})") from None
        digest.update(f"{path.relative_to(folder)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return folder / f"cgatrain_{split}_{len(files)}_{digest.hexdigest()[:16]}.npy"


_WARNED: set[Path] = set()


def _tiny_images(cfg: Mapping[str, Any], split: str) -> tuple[np.ndarray, np.ndarray, int]:
    """(images, labels, classes) of a split: the cache memory-mapped, else decoded (and cached when the folder is writable)."""
    files, labels, classes = _tiny_listing(cfg, split)
    cache = _tiny_cache(cfg, split, files, labels)
    if cache.exists():
        # Copy-on-write memory map: an agent that keeps only its shard reads only those rows.
        return np.load(cache, mmap_mode="c"), labels, classes
    images = _decode(files)
    partial = cache.with_name(f"{cache.stem}.{os.getpid()}.partial.npy")  # per process: concurrent runs never share one
    try:
        np.save(partial, images)
        os.replace(partial, cache)  # atomic: a reader sees the whole file or none
    except OSError as error:
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)
        if cache not in _WARNED:
            _WARNED.add(cache)
            print(f"warning: data=tinyimagenet: cannot write the decode cache {cache} ({error.strerror or error}); "
                  "every process decodes the JPEGs itself (make the folder writable to decode once)", file=sys.stderr, flush=True)
        return images, labels, classes
    for stale in cache.parent.glob(f"cgatrain_{split}_*.npy"):  # caches of earlier contents of the folder
        if stale != cache and not stale.name.endswith(".partial.npy"):
            stale.unlink(missing_ok=True)
    return images, labels, classes


def _tiny_labels(name: str, cfg: Mapping[str, Any], split: str) -> np.ndarray:
    """The labels of `split`, after listing both splits (folders and val_annotations.txt; no image is decoded)."""
    return {part: _tiny_listing(cfg, part)[1] for part in ("train", "test")}[split]


def prepare_tinyimagenet(cfg: Mapping[str, Any]) -> None:
    """Decode every JPEG once into a uint8 .npy next to the data (the parent does this before spawn)."""
    for split in ("train", "test"):
        _tiny_images(cfg, split)


def _load_tinyimagenet(name: str, cfg: Mapping[str, Any]) -> DatasetSplit:
    arrays, classes = {}, 0
    for split in ("train", "test"):
        images, labels, classes = _tiny_images(cfg, split)
        arrays[split] = (images, labels)
    return _image_split(name, arrays, classes)


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
    """Fetch a data set into `data.root` once, in torchvision's layout; a no-op when every split's files are there
    and pass the parent's check (a missing or damaged file of either split is fetched)."""
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
    "tinyimagenet": (_load_tinyimagenet, _tiny_labels),
    "fake": (_load_fake, lambda name, cfg, split: _fake_labels(cfg, split)),
}
VISION_DATASETS = tuple(_READERS)


def load_vision(name: str, cfg: Mapping[str, Any]) -> DatasetSplit:
    """Read a whole image data set (uint8 images) from `data.root`."""
    return _READERS[name][0](name, cfg)


def train_labels(name: str, cfg: Mapping[str, Any]) -> np.ndarray:
    """The train labels, for checking partitions in the parent, after checking every split's files: their presence,
    sizes and counts, the image format and the labels' range (MNIST: IDX headers, the images counted but not kept;
    CIFAR: each pickle read whole; TinyImageNet: the folder listing, no image decoded)."""
    return _READERS[name][1](name, cfg, "train")


def image_shape(name: str, cfg: Mapping[str, Any]) -> tuple[int, ...]:
    """Per-sample (C, H, W) of a data set, without reading it."""
    known = {"mnist": (1, 28, 28), "fashion_mnist": (1, 28, 28), "cifar10": (3, 32, 32), "cifar100": (3, 32, 32), "tinyimagenet": (3, 64, 64)}
    return known[name] if name in known else _fake_options(cfg)[0]


def num_classes(name: str, cfg: Mapping[str, Any]) -> int:
    """Number of classes of a data set, without reading its images (TinyImageNet: the lines of wnids.txt)."""
    if name == "tinyimagenet":
        return len(_tiny_wnids(cfg))
    known = {"mnist": 10, "fashion_mnist": 10, "cifar10": 10, "cifar100": 100}
    return known[name] if name in known else _fake_options(cfg)[1]
