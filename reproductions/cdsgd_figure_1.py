"""CDSGD paper (Jiang et al., NeurIPS 2017) figure 1 on CIFAR-10: (a) CDSGD against centralized SGD,
(b) CDMSGD against federated averaging; 5 agents, fully connected, uniform weights, batch 128, step 0.01
(experiment=cdsgd_cifar10). Centralized SGD is run twice: the paper's baseline, one model on all the
data (algorithm=local agents=1, momentum 0; --agents leaves it at 1), and all-reduce SGD over the 5 agents. The figure's curves are each run's metrics.jsonl (one row per epoch);
table.md holds the final accuracies.

    python reproductions/cdsgd_figure_1.py --data-root data
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _sweep import Cell, run_table

# row -> (panel, overrides, agents); the paper's centralized SGD is one model on all the data (see
# docs/cdsgd.md), the all-reduce run averages the 5 agents' gradients every step
RUNS = {
    "CDSGD": ("1(a)", ["algorithm=cdsgd"], 5),
    "SGD (one model, all data)": ("1(a)", ["algorithm=local", "algorithm.momentum=0", "agents=1"], None),
    "All-reduce SGD (5 agents)": ("1(a)", ["algorithm=centralized", "algorithm.momentum=0.0"], 5),
    "CDMSGD": ("1(b)", ["algorithm=cdmsgd"], 5),
    "FedAvg": ("1(b)", ["algorithm=fedavg"], 5),
}


def cells() -> list[Cell]:
    return [Cell(row, f"figure {panel}", ["experiment=cdsgd_cifar10", *overrides], group="cifar10", agents=agents) for row, (panel, overrides, agents) in RUNS.items()]


def main(argv: list[str] | None = None) -> int:
    return run_table("cdsgd_figure_1", "CDSGD figure 1: CIFAR-10, CNN, 5 agents", cells(), argv)


if __name__ == "__main__":
    raise SystemExit(main())
