"""One agent's data: its shard and the test set on its device, batched and augmented per (agent, step).

In memory (the default when the shard fits `data.memory_budget_mb`): uint8 images live on the agent's
device; each step gathers a batch, crops/flips it with one gather and normalizes it there. Streaming:
a torch DataLoader with `data.workers` processes reads and augments the same samples with the same
draws, one image at a time, so both paths give the same batches.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from cgatrain.data.augment import Augmentation, NormalizedImages, Normalizer
from cgatrain.data.common import DataError, DatasetSplit, int_option
from cgatrain.data.label_skew import class_counts, format_class_counts
from cgatrain.data.sampler import AgentSampler
from cgatrain.data.vision import AUGMENTED, VISION_DATASETS
from cgatrain.transfer import to_device

IN_MEMORY = ("auto", "true", "false")


def augmentation_for(split: DatasetSplit, cfg: Mapping[str, Any]) -> Augmentation:
    """`data.augment`: auto (crop+flip for CIFAR/TinyImageNet, else none), none, crop_flip, crop, flip."""
    choice = str(cfg.get("augment") or "auto")
    if choice == "auto":
        choice = "crop_flip" if split.name in AUGMENTED else "none"
    padding = int_option(cfg, "crop_padding", 4, minimum=0) or 0
    table = {"none": Augmentation(), "crop_flip": Augmentation(padding, True), "crop": Augmentation(padding, False), "flip": Augmentation(0, True)}
    if choice not in table:
        raise DataError(f"data.augment must be one of auto, {', '.join(table)}; got {choice!r}")
    if choice != "none" and split.train_x.dtype != torch.uint8:
        raise DataError(f"data.augment={choice} needs an image data set held as uint8; data={split.name} is not")
    return table[choice]


def fits_in_memory(split: DatasetSplit, shard_size: int, cfg: Mapping[str, Any]) -> bool:
    """`data.in_memory`: true, false, or auto (shard plus test set within `data.memory_budget_mb`)."""
    choice = str(cfg.get("in_memory", "auto")).lower()
    if choice not in IN_MEMORY:
        raise DataError(f"data.in_memory must be one of {IN_MEMORY}, got {choice!r}")
    if choice != "auto":
        return choice == "true"
    per_sample = split.train_x[:1].numel() * split.train_x.element_size()
    return (shard_size + len(split.test_x)) * per_sample <= memory_budget_mb(cfg) * 1e6


def memory_budget_mb(cfg: Mapping[str, Any]) -> float:
    """`data.memory_budget_mb` (default 4096 when absent or null): a positive number of megabytes."""
    value = cfg.get("memory_budget_mb")
    if value is None:
        return 4096.0
    try:
        budget = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        budget = math.nan
    if not 0 < budget < math.inf:
        raise DataError(f"data.memory_budget_mb must be a positive number of megabytes, got {value!r}")
    return budget


class _StreamedShard(Dataset):
    """Items are (index in the shard, top, left, flip): the sample and its augmentation draws."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, augmentation: Augmentation) -> None:
        self.images, self.labels, self.augmentation = images, labels, augmentation

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, item: tuple[int, int, int, bool]) -> tuple[torch.Tensor, torch.Tensor]:
        index, top, left, flip = item
        image = torch.as_tensor(np.asarray(self.images[index]))
        return self.augmentation.apply_one(image, (top, left), flip), self.labels[index]


class _EpochPlan:
    """The streaming loader's batch sampler: the batches of the epoch being read. Set before each epoch, so that one
    DataLoader, and its persistent worker processes, serves every epoch."""

    def __init__(self) -> None:
        self.batches: list[list[tuple[int, int, int, bool]]] = []

    def __iter__(self) -> Iterator[list[tuple[int, int, int, bool]]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class AgentData:
    """Batches of one agent's shard; `test_inputs`/`test_targets` hold the test set on the device."""

    def __init__(self, split: DatasetSplit, shard: np.ndarray, batch_size: int, seed: int, agent: int,
                 device: torch.device, cfg: Mapping[str, Any]) -> None:
        self.sampler = AgentSampler(shard, batch_size, seed, agent)
        self.shard = self.sampler.indices
        self.seed, self.agent, self.device = int(seed), int(agent), device
        self.augmentation = augmentation_for(split, cfg)
        self.normalizer = Normalizer(split.mean, split.std, device) if split.mean is not None else None
        self.in_memory = fits_in_memory(split, len(self.shard), cfg)
        self.workers = int_option(cfg, "workers", 2, minimum=0) or 0
        # Only this agent's shard is kept (on the device, or in host memory when streaming); the rest of the
        # train set is dropped with `split`.
        rows = torch.from_numpy(self.shard)
        if self.in_memory:
            self.train_x = split.train_x[rows].to(device)
            self.train_y = split.train_y[rows].to(device)
        else:
            self.streamed = _StreamedShard(split.train_x[rows], split.train_y[rows], self.augmentation)
            self.plan = _EpochPlan()
            self.loader = DataLoader(self.streamed, batch_sampler=self.plan, num_workers=self.workers,
                                     pin_memory=device.type == "cuda", persistent_workers=self.workers > 0)
        test_x = split.test_x.to(device)
        self.test_inputs: torch.Tensor | NormalizedImages = NormalizedImages(test_x, self.normalizer) if self.normalizer else test_x
        self.test_targets = split.test_y.to(device)

    def batches(self, epoch: int, steps: int, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(inputs, targets) for steps `start..steps-1` of `epoch`; step numbers are epoch*steps + index."""
        plan = self.sampler.epoch_batches(epoch, steps)[start:]
        draws = [self.augmentation.draw(self.seed, self.agent, epoch * steps + start + i, len(b)) for i, b in enumerate(plan)]
        if self.in_memory:
            for batch, (offsets, flips) in zip(plan, draws):
                rows = to_device(np.searchsorted(self.shard, batch), self.device)
                images = self.augmentation.apply_batch(self.train_x[rows], offsets, flips)
                yield self._finish(images, self.train_y[rows])
            return
        self.plan.batches = [[(int(i), int(o[0]), int(o[1]), bool(f)) for i, o, f in zip(np.searchsorted(self.shard, batch), offsets, flips)]
                             for batch, (offsets, flips) in zip(plan, draws)]
        for images, targets in self.loader:  # the same workers every epoch; an epoch left half-read is discarded
            yield self._finish(images.to(self.device, non_blocking=True), targets.to(self.device, non_blocking=True))

    def shard_eval_set(self) -> tuple[torch.Tensor | NormalizedImages, torch.Tensor]:
        """This agent's shard, unaugmented and normalized like the test set (for train-set scores)."""
        if not self.in_memory:
            raise ValueError("train.eval_train scores the shard in memory; this shard streams (raise data.memory_budget_mb)")
        return (NormalizedImages(self.train_x, self.normalizer) if self.normalizer else self.train_x), self.train_y

    def _finish(self, images: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return (self.normalizer(images) if self.normalizer else images), targets


def drop_images(split: DatasetSplit) -> DatasetSplit:
    """The split without its images (labels and metadata stay), once the agent has taken its shard."""
    return replace(split, train_x=split.train_x[:0], test_x=split.test_x[:0])


def shard_class_counts(split: DatasetSplit, shards: list[np.ndarray]) -> np.ndarray | None:
    """Per-agent class counts for a classification data set, else None."""
    if split.task != "classification":
        return None
    return class_counts(split.train_y.numpy(), shards, split.num_classes)


def write_class_counts(run_dir: Path, counts: np.ndarray) -> str:
    """Save the table as class_counts.csv and class_counts.json in the run dir; return it as text."""
    run_dir.mkdir(parents=True, exist_ok=True)
    header = "agent," + ",".join(f"class_{c}" for c in range(counts.shape[1])) + ",total"
    lines = [header] + [f"{a}," + ",".join(str(int(n)) for n in row) + f",{int(row.sum())}" for a, row in enumerate(counts)]
    (run_dir / "class_counts.csv").write_text("\n".join(lines) + "\n")
    (run_dir / "class_counts.json").write_text(json.dumps({"class_counts": counts.tolist()}))
    return format_class_counts(counts)


def check_data_options(cfg: Mapping[str, Any], name: str, eval_train: bool = False) -> None:
    """Reject bad `data.augment`/`data.in_memory`/`data.memory_budget_mb`/`data.workers`/`data.crop_padding` values
    in the parent, every problem in one DataError (one per line). `eval_train`: `train.eval_train`, which needs the
    shard in memory, so `data.in_memory=false` is refused with it."""
    problems: list[str] = []

    def attempt(check: Callable[[], Any]) -> None:
        try:
            check()
        except DataError as error:
            problems.append(re.sub(r"option '(\w+)'", r"data.\1", str(error)))

    choice = str(cfg.get("augment") or "auto")
    if choice not in ("auto", "none", "crop_flip", "crop", "flip"):
        problems.append(f"data.augment must be one of auto, none, crop_flip, crop, flip; got {choice!r}")
    elif choice not in ("auto", "none") and name not in VISION_DATASETS:
        problems.append(f"data.augment={choice} needs an image data set held as uint8 ({', '.join(VISION_DATASETS)}); data={name} is not")
    in_memory = str(cfg.get("in_memory", "auto")).lower()
    if in_memory not in IN_MEMORY:
        problems.append(f"data.in_memory must be one of {IN_MEMORY}, got {cfg.get('in_memory')!r}")
    elif in_memory == "false" and eval_train:
        problems.append("train.eval_train scores each agent's shard in memory, but data.in_memory=false streams it: "
                        "set data.in_memory=auto or true, or train.eval_train=false")
    attempt(lambda: memory_budget_mb(cfg))
    attempt(lambda: int_option(cfg, "workers", 2, minimum=0))
    attempt(lambda: int_option(cfg, "crop_padding", 4, minimum=0))
    if problems:
        raise DataError("\n  - ".join(problems))
