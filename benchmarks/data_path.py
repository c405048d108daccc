"""The data path and the papers' CIFAR models, per agent (one process, one torch thread as an agent has).

1. Images per second delivered by one agent's data path for CIFAR-shaped uint8 data (3x32x32) with the
   papers' augmentation (random crop with 4-pixel padding, horizontal flip) and per-channel normalization:
   cgatrain's in-memory path (`AgentData`: one gather per batch on the agent's device) against a plain
   torchvision DataLoader with the same transforms on PIL images (RandomCrop, RandomHorizontalFlip,
   ToTensor, Normalize), with 0 and 2 worker processes; and on a GPU when one is available.
2. Forward+backward time per step of VGG11 and ResNet-20 on CPU at the papers' per-agent batch sizes.

    python benchmarks/data_path.py --json benchmarks/results/data_path.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from typing import Any

import numpy as np
import torch
from torch import nn

from cgatrain.data import load_dataset
from cgatrain.data.agent_data import AgentData
from cgatrain.models import build_model

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


class _PilCifar(torch.utils.data.Dataset):
    """What torchvision.datasets.CIFAR10 does per item: a PIL image from HWC bytes, then the transforms."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform: Any) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        return self.transform(Image.fromarray(self.images[index])), int(self.labels[index])


def _torchvision_rate(images: np.ndarray, labels: np.ndarray, batch: int, batches: int, workers: int) -> tuple[float, float | None]:
    from torchvision import transforms

    transform = transforms.Compose([
        transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(), transforms.ToTensor(), transforms.Normalize(MEAN, STD),
    ])
    dataset = _PilCifar(images.transpose(0, 2, 3, 1).copy(), labels, transform)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=workers, drop_last=True)
    iterator = iter(loader)
    next(iterator)  # worker start-up is not counted
    started, cpu_started = time.perf_counter(), time.thread_time()
    for _ in range(batches):
        next(iterator)
    return batch * batches / (time.perf_counter() - started), (batch * batches / (time.thread_time() - cpu_started) if workers == 0 else None)


def _in_memory_rate(split: Any, batch: int, batches: int, device: torch.device) -> tuple[float, float | None]:
    data = AgentData(split, np.arange(len(split.train_y)), batch, 0, 0, device, {"name": "cifar10", "augment": "crop_flip", "in_memory": True})
    next(iter(data.batches(0, 1)))
    if device.type == "cuda":
        torch.cuda.synchronize()
    started, cpu_started = time.perf_counter(), time.thread_time()
    for inputs, _ in data.batches(1, batches):  # noqa: B007 (the last batch is checked below)
        pass
    if device.type == "cuda":
        torch.cuda.synchronize()
    assert inputs.shape == (batch, 3, 32, 32) and inputs.dtype == torch.float32
    return batch * batches / (time.perf_counter() - started), (batch * batches / (time.thread_time() - cpu_started) if device.type == "cpu" else None)


def data_rates(args: argparse.Namespace) -> list[dict[str, Any]]:
    split = load_dataset({"name": "fake", "image_shape": [3, 32, 32], "num_classes": 10, "train_size": args.images, "test_size": 10})
    split = type(split)(**{**split.__dict__, "name": "cifar10", "mean": MEAN, "std": STD})
    images, labels = split.train_x.numpy(), split.train_y.numpy()
    methods: dict[str, Any] = {
        "cgatrain in-memory (cpu)": lambda: _in_memory_rate(split, args.batch, args.batches, torch.device("cpu")),
        "torchvision DataLoader, 0 workers": lambda: _torchvision_rate(images, labels, args.batch, args.batches, 0),
        "torchvision DataLoader, 2 workers": lambda: _torchvision_rate(images, labels, args.batch, args.batches, 2),
    }
    if torch.cuda.is_available():
        methods["cgatrain in-memory (cuda)"] = lambda: _in_memory_rate(split, args.batch, args.batches, torch.device("cuda"))
    rates: dict[str, list[tuple[float, float | None]]] = {name: [] for name in methods}
    for round_index in range(args.rounds):
        names = list(methods)
        for name in names[round_index % len(names) :] + names[: round_index % len(names)]:  # rotate the order
            rates[name].append(methods[name]())
    rows = []
    for name, values in rates.items():
        cpu = [c for _, c in values if c is not None]
        rows.append({"method": name, "images_per_s": statistics.median(w for w, _ in values), "images_per_cpu_s": statistics.median(cpu) if cpu else None, "runs": values})
    return rows


def model_steps(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    for name in ("vgg11", "resnet20"):
        model = build_model({"name": name}, (3, 32, 32), 10)
        loss = nn.CrossEntropyLoss()
        for batch in args.model_batches:
            inputs, targets = torch.randn(batch, 3, 32, 32), torch.randint(0, 10, (batch,))
            times, cpu_times = [], []
            for index in range(args.steps + 1):
                started, cpu_started = time.perf_counter(), time.thread_time()
                model.zero_grad(set_to_none=True)
                loss(model(inputs), targets).backward()
                if index:  # the first step warms up the allocator
                    times.append(time.perf_counter() - started)
                    cpu_times.append(time.thread_time() - cpu_started)
            parameters = sum(p.numel() for p in model.parameters())
            rows.append({
                "model": name, "params": parameters, "batch": batch, "ms_per_step": 1000 * statistics.median(times),
                "cpu_ms_per_step": 1000 * statistics.median(cpu_times), "images_per_cpu_s": batch / statistics.median(cpu_times),
            })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10000)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--model-batches", type=int, nargs="*", default=[32, 128])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)  # one thread per agent process, as the launcher sets it
    rates = data_rates(args)
    print(f"| data path (batch {args.batch}, CIFAR-shaped, crop+flip+normalize) | images/s per agent (wall) | images per CPU s |\n|---|---:|---:|")
    for row in rates:
        cpu = "-" if row["images_per_cpu_s"] is None else f"{row['images_per_cpu_s']:,.0f}"
        print(f"| {row['method']} | {row['images_per_s']:,.0f} | {cpu} |")
    steps = model_steps(args)
    print("\n| model | params | batch | forward+backward wall ms/step | CPU ms/step (1 thread) | images per CPU s |\n|---|---:|---:|---:|---:|---:|")
    for row in steps:
        print(f"| {row['model']} | {row['params']:,} | {row['batch']} | {row['ms_per_step']:.0f} | {row['cpu_ms_per_step']:.0f} | {row['images_per_cpu_s']:.0f} |")
    if args.json:
        machine = {"python": platform.python_version(), "torch": torch.__version__, "cpus": torch.get_num_threads(), "platform": platform.platform()}
        with open(args.json, "w") as handle:
            json.dump({"options": vars(args), "machine": machine, "data_path": rates, "model_steps": steps}, handle, indent=2)


if __name__ == "__main__":
    main()
