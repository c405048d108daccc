"""Sparse-Push paper (Aketi et al.) Table 4: Sparse-Push against Skew-Compensated Sparse-Push (SCSP) at
top-k 100%, 1% and 0.1% on its 4-node directed ring, for CIFAR-10 ResNet-20, CIFAR-10 VGG-11 and
CIFAR-100 ResNet-110 (experiment=sp_<data>_<model>, IID data).

    python reproductions/sparse_push_table_4.py --data-root data
    python reproductions/sparse_push_table_4.py --smoke -- data=fake   # no files: random 32x32 images

With `-- data=fake` the CIFAR-100 rows have fake data's 10 classes (add `data.num_classes=100` for 100).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _sweep import Cell, run_table
from sparse_push_table_2 import TOP_K

SETTINGS = {"sp_cifar10_resnet20": "CIFAR-10 ResNet-20", "sp_cifar10_vgg11": "CIFAR-10 VGG-11", "sp_cifar100_resnet110": "CIFAR-100 ResNet-110"}
ALGORITHMS = {"sparse_push": "SP", "scsp": "SCSP"}


def cells() -> list[Cell]:
    result = []
    for experiment, label in SETTINGS.items():
        for level in ("100", "1", "0.1"):
            for algorithm, column in ALGORITHMS.items():
                overrides = [f"experiment={experiment}", f"algorithm={algorithm}", *TOP_K[level]]
                result.append(Cell(f"{label} top-{level}%", column, overrides, group=experiment))
    return result


def main(argv: list[str] | None = None) -> int:
    return run_table("sparse_push_table_4", "Sparse-Push Table 4: SP vs SCSP, 4-node directed ring", cells(), argv)


if __name__ == "__main__":
    raise SystemExit(main())
