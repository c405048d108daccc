"""Sparse-Push paper (Aketi et al.) Table 2: CIFAR-10 test accuracy of ResNet-20, ResNet-110 and VGG11
trained with Sparse-Push on its 4-node directed ring at top-k 100%, 10%, 1%, 0.1% and 0 (no communication),
each top-k with its Table 5 averaging rate (experiment=sp_cifar10_<model>).

    python reproductions/sparse_push_table_2.py --data-root data
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _sweep import Cell, run_table

# top-k % -> overrides (Table 5's eta; 100% sends dense models, 0% is local SGD with no communication)
TOP_K = {
    "100": ["compressor=identity", "~compressor.fraction", "algorithm.eta=1.0"],
    "10": ["compressor.fraction=0.1", "algorithm.eta=0.01"],
    "1": ["compressor.fraction=0.01", "algorithm.eta=0.005"],
    "0.1": ["compressor.fraction=0.001", "algorithm.eta=0.001"],
    "0": ["algorithm=local", "~algorithm.eta", "compressor=identity", "~compressor.fraction"],
}
MODELS = {"resnet20": ("ResNet-20", ["100", "10", "1", "0.1", "0"]), "resnet110": ("ResNet-110", ["100", "1", "0.1", "0"]), "vgg11": ("VGG11", ["100", "10", "1", "0.1", "0"])}


def cells() -> list[Cell]:
    result = []
    for model, (label, levels) in MODELS.items():
        for level in levels:
            result.append(Cell(f"{label} top-{level}%", "Sparse-Push", [f"experiment=sp_cifar10_{model}", *TOP_K[level]], group=model))
    return result


def main(argv: list[str] | None = None) -> int:
    return run_table("sparse_push_table_2", "Sparse-Push Table 2: CIFAR-10, 4-node directed ring", cells(), argv)


if __name__ == "__main__":
    raise SystemExit(main())
