"""The NGO reproduction's tables and figures from a docs/reproduce_ngo.sh sweep (docs/ngo.md).

    python docs/ngo_plots.py SWEEP_ROOT OUT_DIR

Jobs are read and labelled with docs/cga_table.py's `ngo` preset (one loader for every reproduction).
Writes to OUT_DIR: table1.md (per cell, centralized and the best gamma of linear gossip and of NGO,
mean ± std over seeds, every gamma alongside), delay.md (ring: accuracy and synchronization index by
tau), fig3_consensus.png, fig6_local_vs_gossip.png, sync_index_class.png and results.json.
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cga_table
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

PRESET = cga_table.PRESETS["ngo"]
CELLS = [f"{part} {graph}" for part in ("IID", "class") for graph in ("ring", "random", "complete")]


def algo(job: cga_table.Job) -> dict[str, Any]:
    return cga_table.read_yaml(job.path / "config.yaml").get("algorithm", {})


def stats(jobs: list[cga_table.Job], key: str) -> dict[str, Any]:
    values = [v for job in jobs if job.status == "completed" and (v := cga_table.finite(job.summary.get(key))) is not None]
    return cga_table.mean_std(values)


def fmt(entry: dict[str, Any], scale: float = 100.0, decimals: int = 2) -> str:
    if entry["mean"] is None:
        return "diverged"
    std = f" ± {entry['std'] * scale:.{decimals}f}" if entry["std"] is not None else ""
    return f"{entry['mean'] * scale:.{decimals}f}{std}"


def by_setting(jobs: list[cga_table.Job]) -> dict[tuple[str, float, float, int], list[cga_table.Job]]:
    """NGO jobs keyed by (cell, p, gamma, delay)."""
    grouped: dict[tuple[str, float, float, int], list[cga_table.Job]] = defaultdict(list)
    for job in jobs:
        a = algo(job)
        if a.get("name") == "ngo" and job.agents == 5:
            grouped[(job.group, float(a["p"]), float(a["gamma"]), int(a.get("delay") or 0))].append(job)
    return grouped


def best(grouped: dict, cell: str, p: float, delay: int = 0) -> tuple[float, list[cga_table.Job]] | None:
    """The gamma with the highest mean averaged-model accuracy (diverged runs count as 0)."""
    options = [(gamma, jobs) for (c, pp, gamma, d), jobs in grouped.items() if c == cell and pp == p and d == delay]
    if not options:
        return None
    def score(item: tuple[float, list]) -> float:
        return statistics.fmean(float(j.summary.get("consensus_test_accuracy") or 0.0) if j.status == "completed" else 0.0 for j in item[1])
    return max(options, key=score)


def table1(jobs: list[cga_table.Job], grouped: dict) -> tuple[str, list[dict[str, Any]]]:
    ps = sorted({p for (_, p, _, d) in grouped if p != 1.0 and d == 0}, reverse=True)
    lines = ["| Partition, topology | Centralized | Gossip (best γ) | " + " | ".join(f"NGO p={p:g} (best γ)" for p in ps)
             + " | V gossip | " + " | ".join(f"V NGO p={p:g}" for p in ps) + " |",
             "|---|" + "---:|" * (3 + 2 * len(ps))]
    rows = []
    central = defaultdict(list)
    for job in jobs:
        if algo(job).get("name") == "centralized":
            central[job.group.split()[0]].append(job)
    for cell in CELLS:
        linear = best(grouped, cell, 1.0)
        nonlinear = {p: best(grouped, cell, p) for p in ps}
        if linear is None:
            continue
        c = stats(central[cell.split()[0]], "consensus_test_accuracy")
        g, vg = stats(linear[1], "consensus_test_accuracy"), stats(linear[1], "consensus_distance")
        row = {"cell": cell, "centralized": c, "gossip": {"gamma": linear[0], "accuracy": g, "sync_index": vg}}
        accs, syncs = [], []
        for p, chosen in nonlinear.items():
            if chosen is None:
                accs.append("–")
                syncs.append("–")
                continue
            n, vn = stats(chosen[1], "consensus_test_accuracy"), stats(chosen[1], "consensus_distance")
            accs.append(f"{fmt(n)} (γ={chosen[0]:g})")
            syncs.append(fmt(vn, 1.0, 4))
            row[f"ngo_p{p:g}"] = {"gamma": chosen[0], "accuracy": n, "sync_index": vn}
        lines.append(f"| {cell} | {fmt(c)} | {fmt(g)} (γ={linear[0]:g}) | " + " | ".join(accs)
                     + f" | {fmt(vg, 1.0, 4)} | " + " | ".join(syncs) + " |")
        rows.append(row)
    every = ["", "Every γ (averaged-model accuracy %, mean ± std over seeds; V = final synchronization index):", "",
             "| Partition, topology | p | γ | accuracy | V |", "|---|---:|---:|---:|---:|"]
    for (cell, p, gamma, delay), group in sorted(grouped.items()):
        if delay == 0:
            every.append(f"| {cell} | {p:g} | {gamma:g} | {fmt(stats(group, 'consensus_test_accuracy'))} | "
                         f"{fmt(stats(group, 'consensus_distance'), 1.0, 4)} |")
    return "\n".join(lines + every) + "\n", rows


def delay_table(grouped: dict) -> tuple[str, list[dict[str, Any]]]:
    delays = sorted({d for (_, _, _, d) in grouped})
    lines = ["| Partition | p | γ | " + " | ".join(f"τ={d} acc (V)" for d in delays) + " |",
             "|---|---:|---:|" + "---:|" * len(delays)]
    rows = []
    for cell in ("IID ring", "class ring"):
        for p in (1.0, 0.75):
            for gamma in sorted({g for (c, pp, g, _) in grouped if c == cell and pp == p}):
                cells, row = [], {"cell": cell, "p": p, "gamma": gamma}
                for d in delays:
                    group = grouped.get((cell, p, gamma, d), [])
                    acc, v = stats(group, "consensus_test_accuracy"), stats(group, "consensus_distance")
                    cells.append(f"{fmt(acc)} ({fmt(v, 1.0, 3)})" if group else "–")
                    row[f"tau{d}"] = {"accuracy": acc, "sync_index": v}
                lines.append(f"| {cell.split()[0]} | {p:g} | {gamma:g} | " + " | ".join(cells) + " |")
                rows.append(row)
    return "\n".join(lines) + "\n", rows


def sync_curve(job: cga_table.Job) -> tuple[list[float], list[float]]:
    points = [pt for row in job.history for pt in row.get("consensus_distance_by_step", [])]
    return [pt[0] for pt in points], [pt[1] for pt in points]


def figure3(jobs: list[cga_table.Job], out: Path) -> None:
    runs = [j for j in jobs if j.agents == 10]
    gammas = sorted({float(algo(j)["gamma"]) for j in runs}, reverse=True)
    fig, axes = plt.subplots(1, max(len(gammas), 1), figsize=(5.2 * max(len(gammas), 1), 3.8), squeeze=False)
    for ax, gamma in zip(axes[0], gammas):
        for job in sorted((j for j in runs if float(algo(j)["gamma"]) == gamma), key=lambda j: float(algo(j)["p"])):
            p = float(algo(job)["p"])
            ax.semilogy(*sync_curve(job), label=f"p = {p:g} ({'sub' if p < 1 else 'super' if p > 1 else ''}linear)")
        ax.set(xlabel="step (lr = 0: gossip only)", title=f"10 agents, ring, γ = {gamma:g}")
        ax.legend()
    axes[0][0].set_ylabel("synchronization index 1/n Σ‖x_i − x̄‖²")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def figure6(jobs: list[cga_table.Job], grouped: dict, out: Path) -> None:
    cell = "class complete"
    series: list[tuple[str, list[cga_table.Job]]] = []
    for h in (2, 5):
        local = [j for j in jobs if algo(j).get("name") == "local" and algo(j).get("average_every") == h]
        if local:
            series.append((f"local SGD, H = {h}", local))
    for p, name in ((1.0, "gossip SGD (H = 1)"), (0.75, "NGO p = 0.75"), (0.9, "NGO p = 0.9")):
        chosen = best(grouped, cell, p)
        if chosen:
            series.append((f"{name}, γ = {chosen[0]:g}", chosen[1]))
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    for label, group in series:
        job = min(group, key=lambda j: j.seed or 0)  # seed 0's curves
        epochs = [row["epoch"] for row in job.history]
        left.plot(epochs, [100 * row["consensus_test_accuracy"] for row in job.history], label=label)
        right.semilogy(*sync_curve(job), label=label)
    left.set(xlabel="epoch", ylabel="averaged-model test accuracy (%)", title="non-IID digits, complete graph, seed 0")
    right.set(xlabel="step", ylabel="synchronization index", title="synchronization")
    left.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def sync_panels(grouped: dict, out: Path) -> None:
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), sharey=True)
    for ax, graph in zip(axes, ("ring", "random", "complete")):
        for p, name in ((1.0, "gossip"), (0.75, "NGO p=0.75"), (0.9, "NGO p=0.9")):
            chosen = best(grouped, f"class {graph}", p)
            if chosen:
                ax.semilogy(*sync_curve(min(chosen[1], key=lambda j: j.seed or 0)), label=f"{name}, γ={chosen[0]:g}")
        ax.set(title=f"non-IID, {graph}", xlabel="step")
        ax.legend(fontsize=8)
    axes[0].set_ylabel("synchronization index (seed 0)")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main(argv: list[str]) -> int:
    root, out = Path(argv[0]), Path(argv[1])
    out.mkdir(parents=True, exist_ok=True)
    jobs = cga_table.scan(root, PRESET).jobs
    grouped = by_setting(jobs)
    text1, rows1 = table1(jobs, grouped)
    textd, rowsd = delay_table(grouped)
    (out / "table1.md").write_text(text1)
    (out / "delay.md").write_text(textd)
    figure3(jobs, out / "fig3_consensus.png")
    figure6(jobs, grouped, out / "fig6_local_vs_gossip.png")
    sync_panels(grouped, out / "sync_index_class.png")
    (out / "results.json").write_text(json.dumps({"root": str(root), "table1": rows1, "delay": rowsd}, indent=1) + "\n")
    print(text1, "\n", textd)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
