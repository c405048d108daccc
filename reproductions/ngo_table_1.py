"""NGO paper Table 1, CIFAR-10 and TinyImageNet rows: linear gossip (D-PSGD) against nonlinear gossip (NGO)
and centralized training, i.i.d. and non-i.i.d., on the ring, random (edge probability 0.2) and complete
graphs with 10 workers (experiment=ngo_cifar10, experiment=ngo_tinyimagenet).

    python reproductions/ngo_table_1.py --data-root data
    python reproductions/ngo_table_1.py --smoke --agents 2 -- data=fake   # no files: random 32x32 images

With `-- data=fake` the TinyImageNet rows train ResNet-18 on fake data's 32x32 images of 10 classes; add
`data.image_shape=[3,64,64] data.num_classes=200` for TinyImageNet's shapes (every row then takes them).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _sweep import Cell, run_table

DATASETS = {
    "ngo_cifar10": ("CIFAR10", ["partition=shards", "partition.shards_per_agent=4"]),
    "ngo_tinyimagenet": ("TinyImagenet", ["partition=dirichlet", "partition.alpha=0.5"]),
}
TOPOLOGIES = {"ring": ("Ring", []), "random": ("Random", ["topology.edge_prob=0.2"]), "complete": ("Complete", [])}
GOSSIP = {"dpsgd": "Gossip", "ngo": "NGO"}


def cells() -> list[Cell]:
    result = []
    for experiment, (label, non_iid) in DATASETS.items():
        for split, partition in (("i.i.d.", ["partition=iid"]), ("non i.i.d.", non_iid)):
            base = [f"experiment={experiment}", *partition]
            result.append(Cell(f"{label} {split} Centralized", "(10)", [*base, "algorithm=centralized"], group=f"{experiment}-{split}", agents=10))
            for topology, (row, extra) in TOPOLOGIES.items():
                for algorithm, column in GOSSIP.items():
                    overrides = [*base, f"topology={topology}", *extra, f"algorithm={algorithm}"]
                    result.append(Cell(f"{label} {split} {row}", f"{column} (10)", overrides, group=f"{experiment}-{split}", agents=10))
    return result


def main(argv: list[str] | None = None) -> int:
    return run_table("ngo_table_1", "NGO Table 1: CIFAR-10 and TinyImageNet, 10 workers", cells(), argv)


if __name__ == "__main__":
    raise SystemExit(main())
