"""Dataset loaders: scikit-learn digits, MNIST from IDX files, synthetic regression."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cgatrain.data.common import DataError, DatasetSplit, check_split, float_option, int_option
from cgatrain.data.idx import read_idx
from cgatrain.data.vision import (
    VISION_DATASETS,
    download,
    image_shape,
    load_vision,
    num_classes,
    train_labels,
    wants_download,
)
from cgatrain.registry import Registry, failure, origin, require_name

MNIST_MEAN = 0.1307
MNIST_STD = 0.3081
_MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


Loader = Callable[[Mapping[str, Any]], DatasetSplit]
"""``loader(data_cfg) -> DatasetSplit``: the whole train/test split, in memory."""

DATASETS: Registry[Loader] = Registry("dataset", DataError)


def register_dataset(name: str) -> Callable[[Loader], Loader]:
    """Decorator: make the loader selectable as `data=name` (the image data sets of `vision.py` keep their names)."""
    require_name(name, "register_dataset")
    if name in VISION_DATASETS:
        raise DataError(f"dataset {name!r} is one of the image data sets in cgatrain/data/vision.py; pick another name")
    return DATASETS.register(name)


def known_datasets() -> tuple[str, ...]:
    """Every selectable data set: the registered loaders and the image data sets, sorted."""
    return tuple(sorted((*DATASETS, *VISION_DATASETS)))


def _digits_file() -> Path:
    """scikit-learn's bundled digits.csv.gz, found without importing scikit-learn (slow to import)."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or spec.origin is None:
        raise DataError("digits: scikit-learn is not installed (pip install scikit-learn)")
    return Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz"


def _stratified_split(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) index arrays holding each class in the same proportion, seeded."""
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    # Largest-remainder rounding: ceil(fraction * N) test samples in all, as scikit-learn gives.
    exact = test_fraction * counts
    cuts = np.floor(exact).astype(int)
    shortfall = int(np.ceil(test_fraction * len(labels))) - cuts.sum()
    cuts[np.argsort(-(exact - cuts), kind="stable")[:shortfall]] += 1
    train, test = [], []
    for label, cut in zip(classes, cuts):
        members = rng.permutation(np.flatnonzero(labels == label))
        test.append(members[:cut])
        train.append(members[cut:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


@register_dataset("digits")
def _load_digits(cfg: Mapping[str, Any]) -> DatasetSplit:
    """scikit-learn's bundled 8x8 digits, standardized with the train pixels' mean/std, stratified split."""
    test_fraction = float_option(cfg, "test_fraction", 0.2)
    if not 0.0 < test_fraction < 1.0:
        raise DataError(f"data.test_fraction must be in (0, 1), got {test_fraction}")
    table = np.loadtxt(_digits_file(), delimiter=",", dtype=np.float32)
    images, labels = table[:, :-1].reshape(-1, 1, 8, 8) / 16.0, table[:, -1].astype(np.int64)
    train, test = _stratified_split(labels, test_fraction, int_option(cfg, "split_seed", 0))
    # Standardized inputs let the deep CNN leave its initial plateau within a few dozen steps.
    mean, std = float(images[train].mean()), float(images[train].std())
    images = (images - mean) / std
    return DatasetSplit(
        name="digits",
        train_x=torch.from_numpy(np.ascontiguousarray(images[train])),
        train_y=torch.from_numpy(labels[train]),
        test_x=torch.from_numpy(np.ascontiguousarray(images[test])),
        test_y=torch.from_numpy(labels[test]),
        num_classes=10,
        input_shape=(1, 8, 8),
        task="classification",
    )


def _find_idx(directory: Path, stem: str) -> Path | None:
    """Return ``stem`` or ``stem.gz`` inside ``directory``, preferring the raw file."""
    for candidate in (directory / stem, directory / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _read_mnist_pair(directory: Path, images_stem: str, labels_stem: str) -> tuple[np.ndarray, np.ndarray]:
    """Read one images/labels pair and check they agree in length and shape."""
    images_path, labels_path = _find_idx(directory, images_stem), _find_idx(directory, labels_stem)
    assert images_path is not None and labels_path is not None  # caller checked existence
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataError(
            f"mnist_idx: {images_path.name} {images.shape} and {labels_path.name} {labels.shape} do not match"
        )
    return images, labels


def _normalize_mnist(images: np.ndarray) -> torch.Tensor:
    """Scale uint8 pixels to [0, 1], standardize with the usual MNIST mean/std, add a channel dim."""
    scaled = images.astype(np.float32) / 255.0
    return torch.from_numpy((scaled - MNIST_MEAN) / MNIST_STD).unsqueeze(1)


@register_dataset("mnist_idx")
def _load_mnist_idx(cfg: Mapping[str, Any]) -> DatasetSplit:
    """MNIST from IDX files; with only the t10k pair present, split it into train/test."""
    # relative paths are resolved against the current working directory
    directory = (Path.cwd() / str(cfg.get("path") or "../shared/data/mnist-t10k")).resolve()
    expected = ", ".join(f"{stem}[.gz]" for stem in _MNIST_FILES.values())
    if _find_idx(directory, _MNIST_FILES["test_images"]) is None or _find_idx(directory, _MNIST_FILES["test_labels"]) is None:
        raise DataError(f"mnist_idx: no MNIST IDX files in {directory} (data.path={cfg.get('path')!r}, resolved against the current "
                        f"directory); expected {expected} (train-* optional). Point data.path at the folder that holds them")
    test_images, test_labels = _read_mnist_pair(directory, _MNIST_FILES["test_images"], _MNIST_FILES["test_labels"])
    has_train = all(_find_idx(directory, _MNIST_FILES[key]) is not None for key in ("train_images", "train_labels"))
    if has_train:
        train_images, train_labels = _read_mnist_pair(directory, _MNIST_FILES["train_images"], _MNIST_FILES["train_labels"])
    else:
        train_count = int_option(cfg, "train_count", 8000, minimum=1)
        assert train_count is not None
        if train_count >= len(test_images):
            raise DataError(
                f"mnist_idx: train_count={train_count} leaves no test images (t10k has {len(test_images)})"
            )
        # only the t10k pair exists: its head becomes train, its tail test
        train_images, train_labels = test_images[:train_count], test_labels[:train_count]
        test_images, test_labels = test_images[train_count:], test_labels[train_count:]
    limit_train = int_option(cfg, "limit_train", None, minimum=1)
    limit_test = int_option(cfg, "limit_test", None, minimum=1)
    train_images, train_labels = train_images[:limit_train], train_labels[:limit_train]
    test_images, test_labels = test_images[:limit_test], test_labels[:limit_test]
    height, width = train_images.shape[1:]
    return DatasetSplit(
        name="mnist_idx",
        train_x=_normalize_mnist(train_images),
        train_y=torch.from_numpy(train_labels.astype(np.int64)),
        test_x=_normalize_mnist(test_images),
        test_y=torch.from_numpy(test_labels.astype(np.int64)),
        num_classes=10,
        input_shape=(1, int(height), int(width)),
        task="classification",
    )


def _float_tensor(array: np.ndarray) -> torch.Tensor:
    """Contiguous float32 tensor from a numpy array."""
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))


@register_dataset("synthetic_regression")
def _load_synthetic_regression(cfg: Mapping[str, Any]) -> DatasetSplit:
    """Linear regression y = x @ w_true + noise with x ~ N(0, I); 80/20 split, exact optimum."""
    num_samples = int_option(cfg, "num_samples", 1000, minimum=5)
    dim = int_option(cfg, "dim", 10, minimum=1)
    seed = int_option(cfg, "seed", 0, minimum=0)
    noise = float_option(cfg, "noise", 0.1)
    assert num_samples is not None and dim is not None
    if noise < 0:
        raise DataError(f"synthetic_regression: noise must be >= 0, got {noise}")
    num_train = round(0.8 * num_samples)
    if num_train < dim:
        raise DataError(
            f"synthetic_regression: {num_train} train samples < dim={dim}; the least-squares optimum is not unique"
        )
    rng = np.random.default_rng(seed)
    w_true = rng.standard_normal(dim)
    features = rng.standard_normal((num_samples, dim))
    targets = features @ w_true + noise * rng.standard_normal(num_samples)
    # solve in float64 so the reference optimum is as exact as possible
    optimum, *_ = np.linalg.lstsq(features[:num_train], targets[:num_train], rcond=None)
    return DatasetSplit(
        name="synthetic_regression",
        train_x=_float_tensor(features[:num_train]),
        train_y=_float_tensor(targets[:num_train]),
        test_x=_float_tensor(features[num_train:]),
        test_y=_float_tensor(targets[num_train:]),
        num_classes=0,
        input_shape=(dim,),
        task="regression",
        optimum=_float_tensor(optimum),
    )


def _known_name(cfg: Mapping[str, Any]) -> str:
    """`data.name`, refused unless it is a registered or image data set."""
    name = cfg.get("name")
    if name is None:
        raise DataError(f"data.name is missing: a data config names its data set; known: {', '.join(known_datasets())}")
    if name not in DATASETS and name not in VISION_DATASETS:
        raise DataError(f"unknown dataset {name!r}; known: {', '.join(known_datasets())}")
    return str(name)


def load_dataset(cfg: Mapping[str, Any]) -> DatasetSplit:
    """Load the dataset named by ``cfg["name"]`` (see known_datasets())."""
    name = _known_name(cfg)
    return load_vision(name, cfg) if name in VISION_DATASETS else _load_registered(name, cfg)


def _load_registered(name: str, cfg: Mapping[str, Any]) -> DatasetSplit:
    """A registered loader's split, checked (`check_split`); whatever else it raises becomes a DataError naming it."""
    loader = DATASETS.get(name)
    try:
        split = loader(cfg)
    except DataError:
        raise
    except Exception as error:  # a plugin's bug: named with its type and line, not a bare traceback
        raise DataError(f"data={name}: the loader {origin(loader)} raised {failure(error)}") from error
    return check_split(split, name)


@dataclass(frozen=True)
class DatasetInfo:
    """What the parent needs to check a config: train labels, sample shape, classes, task."""

    name: str
    train_labels: np.ndarray
    input_shape: tuple[int, ...]
    num_classes: int
    task: str


def describe_dataset(cfg: Mapping[str, Any]) -> DatasetInfo:
    """Labels and metadata of a data set; image data sets are not decoded (labels files, folder names)."""
    name = _known_name(cfg)
    if name in VISION_DATASETS:
        return DatasetInfo(name, train_labels(name, cfg), image_shape(name, cfg), num_classes(name, cfg), "classification")
    split = _load_registered(name, cfg)
    return DatasetInfo(name, split.train_y.numpy(), split.input_shape, split.num_classes, split.task)


def prepare_dataset(cfg: Mapping[str, Any]) -> None:
    """Parent-side, before any agent starts: download when `data.download=true`, decode TinyImageNet once."""
    name = _known_name(cfg)
    if name in VISION_DATASETS and name != "fake":
        if wants_download(cfg):
            download(name, cfg)
        if name == "tinyimagenet":
            from cgatrain.data.vision import prepare_tinyimagenet

            prepare_tinyimagenet(cfg)
