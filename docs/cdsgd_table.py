"""Tables and plots for the CDSGD reproduction (docs/reproduce_cdsgd.sh), on docs/cga_table.py's scanner.

    python docs/cdsgd_table.py SWEEP_ROOT [--out-dir DIR]

SWEEP_ROOT is searched recursively for job directories. Writes to DIR (default SWEEP_ROOT/report/):
- ``table.md``: section 5.1, one table per data set and partition (CDSGD, CDMSGD, FedAvg, SGD on one
  model, all-reduce SGD), and section 5.2 (CDMSGD, IID, by number of agents). Final-epoch values,
  mean ± std over seeds: the agents' mean test and training accuracy (each agent's model on the
  test set and on the whole training set, as the paper's Fig. 1 averages over agents), the
  generalization gap (train minus test, percentage points), the averaged model's test accuracy, the
  first epoch at which the agents' mean test accuracy reached 90% (mean over the seeds that reached
  it; "-" when none did), MB sent per agent, s per epoch;
- ``summary.json``: the same numbers;
- ``acc_<data>_<partition>.png``: per epoch, training (solid) and test (dashed) accuracy, the agents'
  mean, as in the paper's Fig. 1, and the generalization gap;
- ``scaling_<data>.png``: section 5.2, the same for 2 to 16 agents, with the spread (min to max) of
  the agents' test accuracy, as in the paper's Fig. 2(a).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cga_table as base  # the shared scanner, aggregation and table layout

SGD_ONE_MODEL = "SGD (one model, all data)"
LABEL_ORDER = ["CDSGD", "CDMSGD (Nesterov)", "CDMSGD (Nesterov, lr 0.01)", "CDMSGD (Polyak)", "FedAvg (E=1, C=1)", SGD_ONE_MODEL, "All-reduce SGD (5 agents)"]
GAP = "generalization_gap"
TO_90 = "epoch_to_90"
TRAIN = "agent_train_accuracy_mean"
LAST_3 = "agent_test_accuracy_last3"
METRICS: list[tuple[str, str, float, int]] = [
    ("agent_test_accuracy_mean", "Agents' test acc (%)", 100.0, 2),
    (LAST_3, "…mean of last 3 epochs (%)", 100.0, 2),
    (TRAIN, "Agents' train acc (%)", 100.0, 2),
    (GAP, "Gap train−test (pp)", 100.0, 2),
    ("consensus_test_accuracy", "Averaged-model test acc (%)", 100.0, 2),
    (TO_90, "Epoch to 90% test", 1.0, 1),
    ("mb_sent_per_agent", "MB sent / agent", 1.0, 1),
    ("train_seconds_per_epoch", "train s / epoch", 1.0, 2),
]


def label(cfg: dict[str, Any]) -> str:
    """The table's name for a job's algorithm."""
    algo = cfg.get("algorithm", {})
    name = algo.get("name", "?")
    if name == "cdsgd":
        return "CDSGD"
    if name == "cdmsgd":
        lr = float(cfg.get("optim", {}).get("lr", 0.1))
        return f"CDMSGD ({'Nesterov' if algo.get('nesterov', True) else 'Polyak'}{'' if lr == 0.1 else f', lr {lr:g}'})"
    if name == "fedavg":
        steps = algo.get("local_steps")
        rounds = f"{steps} steps" if steps else f"E={algo.get('local_epochs', 1)}"
        return f"FedAvg ({rounds}, C={float(algo.get('client_fraction', 1.0)):g})"
    if name == "local" and cfg.get("agents") == 1:
        return SGD_ONE_MODEL
    if name == "centralized":
        return f"All-reduce SGD ({cfg.get('agents')} agents)"
    return base.algorithm_label(cfg)


def agents_group(cfg: dict[str, Any]) -> str:
    return f"{cfg.get('agents')} agents"


PRESET_5_1 = base.Preset(
    name="cdsgd", title="CDSGD paper, section 5.1", group_key="partition", group_header="Partition", label=label,
    group=base.partition_label, group_sort=base.partition_key, label_order=LABEL_ORDER, metrics=METRICS,
)
PRESET_5_2 = dataclasses.replace(
    PRESET_5_1, title="CDSGD paper, section 5.2", group_key="network", group_header="Network", group=agents_group,
    group_sort=lambda value: int(value.split()[0]),
)


def add_derived(job: base.Job) -> None:
    """Final training accuracy, the gap, and the first epoch reaching 90% test accuracy, into the summary."""
    last = job.history[-1] if job.history else {}
    train, test = base.finite(last.get(TRAIN)), base.finite(last.get("agent_test_accuracy_mean"))
    job.summary[TRAIN] = train
    job.summary[GAP] = None if train is None or test is None else train - test
    reached = [int(row["epoch"]) for row in job.history if (base.finite(row.get("agent_test_accuracy_mean")) or 0.0) >= 0.9]
    job.summary[TO_90] = min(reached) if reached else None
    tail = [v for row in job.history[-3:] if (v := base.finite(row.get("agent_test_accuracy_mean"))) is not None]
    job.summary[LAST_3] = sum(tail) / len(tail) if tail else None


def section_5_1_jobs(jobs: list[base.Job]) -> list[base.Job]:
    """Every job except section 5.2's; the one-model SGD baseline joins every partition of its data set."""
    mine = [job for job in jobs if "5.2" not in job.path.parts]
    partitions = defaultdict(set)
    for job in mine:
        if job.label != SGD_ONE_MODEL:
            partitions[job.data].add(job.group)
    copies = [dataclasses.replace(job, group=group) for job in mine if job.label == SGD_ONE_MODEL
              for group in partitions[job.data] if group != job.group]
    return mine + copies


def section_5_2_jobs(jobs: list[base.Job]) -> list[base.Job]:
    """CDMSGD on IID data at every network size (5 agents from section 5.1), grouped by agents."""
    chosen = [job for job in jobs if job.label == "CDMSGD (Nesterov)" and base.partition_label(base.read_yaml(job.path / "config.yaml")) == "IID"]
    return [dataclasses.replace(job, group=f"{job.agents} agents") for job in chosen]


def plot_accuracy(title: str, groups: dict[str, list[base.Job]], out: Path, spread: bool = False) -> None:
    """Left: train (solid) and test (dashed) accuracy per epoch, agents' mean; right: the gap."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, (ax_acc, ax_gap) = plt.subplots(1, 2, figsize=(11, 5))
    for index, (name, jobs) in enumerate(groups.items()):
        color = base.label_color(name, LABEL_ORDER) if name in LABEL_ORDER else f"C{index % 10}"
        epochs, train = base.epoch_means(jobs, TRAIN)
        test_epochs, test = base.epoch_means(jobs, "agent_test_accuracy_mean")
        ax_acc.plot(epochs, [100 * a for a in train], color=color, label=f"{name} (n={len(jobs)})")
        ax_acc.plot(test_epochs, [100 * a for a in test], color=color, linestyle="--")
        if spread:
            _, low = base.epoch_means(jobs, "agent_test_accuracy_min")
            _, high = base.epoch_means(jobs, "agent_test_accuracy_max")
            ax_acc.fill_between(test_epochs, [100 * a for a in low], [100 * a for a in high], color=color, alpha=0.15)
        both = sorted(set(epochs) & set(test_epochs))
        gap = [100 * (train[epochs.index(e)] - test[test_epochs.index(e)]) for e in both]
        ax_gap.plot(both, gap, color=color, marker=".", label=name)
    ax_acc.plot([], [], color="gray", label="train (solid)")
    ax_acc.plot([], [], color="gray", linestyle="--", label="test (dashed)")
    ax_acc.set(xlabel="epoch", ylabel="accuracy, mean over agents (%)", title="Train and test accuracy")
    ax_gap.set(xlabel="epoch", ylabel="train − test accuracy (pp)", title="Generalization gap")
    ax_gap.axhline(0.0, color="black", linewidth=0.6)
    for ax in (ax_acc, ax_gap):
        ax.grid(True, alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    handles, names = ax_acc.get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=4, fontsize=8)
    fig.suptitle(f"{title} (mean over seeds{'; band: min to max agent test accuracy' if spread else ''})")
    fig.tight_layout(rect=(0, 0.13, 1, 1))
    fig.savefig(out, dpi=110)
    plt.close(fig)


def report(jobs: list[base.Job], preset: base.Preset, heading: str) -> tuple[str, list[dict[str, Any]], dict]:
    groups = base.group_jobs(jobs, preset)
    rows = [base.aggregate(key, group, preset) for key, group in groups.items()]
    parts = [f"# {heading}\n"]
    for data in sorted({row["data"] for row in rows}):
        parts.append(base.dataset_table(data, [row for row in rows if row["data"] == data], preset))
    return "\n".join(parts), rows, groups


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--out-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    out: Path = args.out_dir or args.root / "report"
    out.mkdir(parents=True, exist_ok=True)
    scanned = base.scan(args.root, PRESET_5_1)
    for job in scanned.jobs:
        add_derived(job)
    text_1, rows_1, groups_1 = report(section_5_1_jobs(scanned.jobs), PRESET_5_1, PRESET_5_1.title)
    text_2, rows_2, groups_2 = report(section_5_2_jobs(scanned.jobs), PRESET_5_2, PRESET_5_2.title)
    text = "\n".join([text_1, text_2, base.skipped_note(scanned)])
    (out / "table.md").write_text(text)
    (out / "summary.json").write_text(json.dumps({"section_5_1": rows_1, "section_5_2": rows_2}, indent=2) + "\n")
    print(text)
    panels: dict[tuple[str, str], dict[str, list[base.Job]]] = defaultdict(dict)
    for (data, group, name), jobs in groups_1.items():
        panels[(data, group)][name] = jobs
    for (data, group), by_label in panels.items():
        path = out / f"acc_{data}_{base.file_slug(group)}.png"
        plot_accuracy(f"{data}, {group}, section 5.1", by_label, path)
        print(f"wrote {path}")
    by_data: dict[str, dict[str, list[base.Job]]] = defaultdict(dict)
    for (data, group, _), jobs in groups_2.items():
        by_data[data][group] = jobs
    for data, by_agents in by_data.items():
        path = out / f"scaling_{data}.png"
        plot_accuracy(f"{data}, CDMSGD, IID, section 5.2", by_agents, path, spread=True)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
