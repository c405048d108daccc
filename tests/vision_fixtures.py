"""Tiny data sets written in the real on-disk formats, so that the real readers run without downloads.

CIFAR-10/100: python pickles (protocol 2, as the originals) in cifar-10-batches-py / cifar-100-python;
MNIST and Fashion-MNIST: gzipped IDX files in <MNIST|FashionMNIST>/raw; TinyImageNet: the official
archive's folders (wnids.txt, train/<wnid>/images/*.JPEG, val/images + val/val_annotations.txt).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from cgatrain.data import write_idx


def _images(rng: np.random.Generator, count: int, shape: tuple[int, ...]) -> np.ndarray:
    return rng.integers(0, 256, size=(count, *shape), dtype=np.uint8)


def write_cifar(root: Path, name: str = "cifar10", per_batch: int = 20, test: int = 20, seed: int = 0) -> dict[str, np.ndarray]:
    """Five train batches and a test batch (CIFAR-10) or train/test files (CIFAR-100); returns the arrays."""
    rng = np.random.default_rng(seed)
    classes = 10 if name == "cifar10" else 100
    arrays: dict[str, list[np.ndarray]] = {"train_x": [], "train_y": [], "test_x": [], "test_y": []}
    if name == "cifar10":
        folder = root / "cifar-10-batches-py"
        files = [(f"data_batch_{i}", "train", per_batch) for i in range(1, 6)] + [("test_batch", "test", test)]
        key = "labels"
    else:
        folder = root / "cifar-100-python"
        files = [("train", "train", 5 * per_batch), ("test", "test", test)]
        key = "fine_labels"
    folder.mkdir(parents=True, exist_ok=True)
    for file_name, split, count in files:
        images = _images(rng, count, (3, 32, 32))
        labels = [int(c) for c in np.arange(count) % classes]
        batch = {"data": images.reshape(count, -1), key: labels, "batch_label": file_name, "filenames": [f"{i}.png" for i in range(count)]}
        if key == "fine_labels":
            batch["coarse_labels"] = [label // 5 for label in labels]
        with open(folder / file_name, "wb") as handle:
            pickle.dump(batch, handle, protocol=2)
        arrays[f"{split}_x"].append(images)
        arrays[f"{split}_y"].append(np.asarray(labels))
    return {k: np.concatenate(v) for k, v in arrays.items()}


def write_mnist(root: Path, folder: str = "MNIST", train: int = 60, test: int = 20, seed: int = 0) -> dict[str, np.ndarray]:
    """torchvision's raw MNIST layout (gzipped IDX); returns the arrays."""
    rng = np.random.default_rng(seed)
    raw = root / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split, prefix, count in (("train", "train", train), ("test", "t10k", test)):
        images, labels = _images(rng, count, (28, 28)), (np.arange(count) % 10).astype(np.uint8)
        write_idx(raw / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte.gz", labels)
        arrays[f"{split}_x"], arrays[f"{split}_y"] = images[:, None], labels.astype(np.int64)
    return arrays


def write_tinyimagenet(root: Path, classes: int = 3, per_class: int = 4, val: int = 6, seed: int = 0) -> list[str]:
    """The official archive's folders with lossless-enough JPEGs of flat colours; returns the wnids."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder = root / "tiny-imagenet-200"
    wnids = [f"n{index:08d}" for index in range(classes)]
    (folder / "val" / "images").mkdir(parents=True, exist_ok=True)
    (folder / "wnids.txt").write_text("\n".join(wnids) + "\n")
    for wnid in wnids:
        images = folder / "train" / wnid / "images"
        images.mkdir(parents=True, exist_ok=True)
        boxes = []
        for index in range(per_class):
            colour = tuple(int(v) for v in rng.integers(0, 256, 3))
            Image.new("RGB", (64, 64), colour).save(images / f"{wnid}_{index}.JPEG", quality=95)
            boxes.append(f"{wnid}_{index}.JPEG\t0\t0\t63\t63")
        (folder / "train" / wnid / f"{wnid}_boxes.txt").write_text("\n".join(boxes) + "\n")
    annotations = []
    for index in range(val):
        Image.new("RGB", (64, 64), (index * 20, 0, 0)).save(folder / "val" / "images" / f"val_{index}.JPEG", quality=95)
        annotations.append(f"val_{index}.JPEG\t{wnids[index % classes]}\t0\t0\t63\t63")
    (folder / "val" / "val_annotations.txt").write_text("\n".join(annotations) + "\n")
    return wnids


def rewrite_cifar(root: Path, file_name: str, name: str = "cifar10", **entries: object) -> None:
    """Rewrite one CIFAR pickle with some entries replaced (a key mapped to None is removed)."""
    path = root / ("cifar-10-batches-py" if name == "cifar10" else "cifar-100-python") / file_name
    with open(path, "rb") as handle:
        batch = pickle.load(handle, encoding="latin1")
    batch.update(entries)
    batch = {key: value for key, value in batch.items() if value is not None}
    with open(path, "wb") as handle:
        pickle.dump(batch, handle, protocol=2)
