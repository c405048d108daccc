"""CGA paper (Esfandiari et al., ICML 2021) Tables 2 and 3: CIFAR-10 test accuracy of the consensus model,
IID (Table 2) and non-IID by class (Table 3), for DPMSGD, SGP, SwarmSGD, CGA and CompCGA on the fully
connected, ring and bipartite graphs with 5, 10 and 40 agents (experiment=cga_cifar10).

    python reproductions/cga_tables_2_3.py --data-root data            # the paper's 90 runs
    python reproductions/cga_tables_2_3.py --agents 5 --epochs 20      # a smaller version
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _sweep import Cell, run_table

ALGORITHMS = {"dpmsgd": "DPMSGD", "sgp": "SGP", "swarmsgd": "SwarmSGD", "cga": "CGA", "compcga": "CompCGA"}
TOPOLOGIES = {"complete": "Fully-connected", "ring": "Ring", "bipartite": "Bipartite"}
TABLES = {"2": ["partition=iid"], "3": ["partition=class", "partition.assignment=random"]}


def cells() -> list[Cell]:
    result = []
    for table, partition in TABLES.items():
        for algorithm, row in ALGORITHMS.items():
            for topology, label in TOPOLOGIES.items():
                for agents in (5, 10, 40):
                    overrides = ["experiment=cga_cifar10", f"algorithm={algorithm}", f"topology={topology}", *partition]
                    result.append(Cell(row, f"T{table} {label} ({agents})", overrides, group=f"table{table}", agents=agents))
    return result


def main(argv: list[str] | None = None) -> int:
    return run_table("cga_tables_2_3", "CGA Tables 2 (IID) and 3 (non-IID): CIFAR-10, CNN", cells(), argv)


if __name__ == "__main__":
    raise SystemExit(main())
