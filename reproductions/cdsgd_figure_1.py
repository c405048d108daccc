"""CDSGD paper (Jiang et al., NeurIPS 2017) figure 1 on CIFAR-10: (a) CDSGD against centralized SGD,
(b) CDMSGD against federated averaging; 5 agents, fully connected, uniform weights, batch 128, step 0.01
(experiment=cdsgd_cifar10). The figure's curves are each run's metrics.jsonl (one row per epoch);
table.md holds the final accuracies.

    python reproductions/cdsgd_figure_1.py --data-root data
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _sweep import Cell, run_table

RUNS = {
    "CDSGD": ("1(a)", ["algorithm=cdsgd"]),
    "centralized SGD": ("1(a)", ["algorithm=centralized", "algorithm.momentum=0.0"]),
    "CDMSGD": ("1(b)", ["algorithm=cdmsgd"]),
    "FedAvg": ("1(b)", ["algorithm=fedavg"]),
}


def cells() -> list[Cell]:
    return [Cell(row, f"figure {panel} (5)", ["experiment=cdsgd_cifar10", *overrides], group="cifar10", agents=5) for row, (panel, overrides) in RUNS.items()]


def main(argv: list[str] | None = None) -> int:
    return run_table("cdsgd_figure_1", "CDSGD figure 1: CIFAR-10, CNN, 5 agents", cells(), argv)


if __name__ == "__main__":
    raise SystemExit(main())
