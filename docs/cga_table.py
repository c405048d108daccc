"""Summarise a CGA reproduction sweep (docs/reproduce_cga.sh) as markdown tables and loss-curve PNGs.

    python docs/cga_table.py SWEEP_ROOT [--out-md FILE] [--out-dir DIR] [--json FILE]

SWEEP_ROOT is searched recursively for job directories (those holding ``config.yaml``), e.g.
``sweeps/cga/digits/main/<job>/`` and ``sweeps/cga/digits/cga_beta098/<job>/``. Jobs are grouped by
(data set, topology, algorithm label); over the seeds of a group the table reports mean ± std
(sample std, n seeds) of the final averaged-model test accuracy, the agents' own accuracies, the
worst agent's accuracy, the final train loss, MB sent per agent and seconds per epoch. Diverged jobs
count as "diverged", as the CGA paper's "Diverges". Jobs without ``summary.json`` (still running)
or with another status (failed, ...) are skipped and counted.

Writes one markdown table per data set (``--out-md``, default ``SWEEP_ROOT/table.md``; also printed),
one PNG per (data set, topology) with train loss and averaged-model test accuracy per epoch
(``--out-dir``, default ``SWEEP_ROOT/plots/``, named ``loss_<data>_<topology>.png``) and, with
``--json``, the aggregated numbers.

With ``--preset sparse_push`` (docs/reproduce_sparse_push.sh) jobs are labelled Sparse-Push (none / top-k%),
SCSP (top-k%) or SGP and grouped by (data set, partition: IID or skew s) instead; the table reports the
averaged-model and the agents' own test accuracy (the Sparse-Push paper's "average test accuracy" across
nodes), kB sent per step per agent, the compression factor against Sparse-Push (none) on the same data
set and partition (its Table 2), the parameter divergence 1/n sum_i ||x_i - x_bar||, the final train
loss and seconds per epoch, then the accuracy gain of SCSP over Sparse-Push per partition and top-k (its
Table 4). Plots are ``loss_<data>_<partition>.png`` (e.g. ``loss_digits_skew0.8.png``).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

LABEL_ORDER = ["DPMSGD", "SGP", "SwarmSGD", "CGA (β=0.9)", "CGA (β=0.98)", "CGA authors' preset", "CompCGA (sign)", "Centralized"]
TOPOLOGY_ORDER = ["complete", "ring", "bipartite"]
INCLUDED_STATUSES = ("completed", "diverged")

# (summary key, column header, scale factor, decimals)
METRICS: list[tuple[str, str, float, int]] = [
    ("consensus_test_accuracy", "Averaged-model acc (%)", 100.0, 2),
    ("agent_test_accuracy_mean", "Agents' acc mean (%)", 100.0, 2),
    ("agent_test_accuracy_min", "Min agent acc (%)", 100.0, 2),
    ("final_train_loss", "Final train loss", 1.0, 4),
    ("mb_sent_per_agent", "MB sent / agent", 1.0, 1),
    ("train_seconds_per_epoch", "train s / epoch", 1.0, 2),
]

SP_LABEL_ORDER = [
    "Sparse-Push (none)", "Sparse-Push (top-50%)", "Sparse-Push (top-10%)", "Sparse-Push (top-1%)",
    "SCSP (top-50%)", "SCSP (top-10%)", "SCSP (top-1%)", "SGP",
]
SP_UNCOMPRESSED = "Sparse-Push (none)"
# Not a summary key: Sparse-Push (none)'s bytes per step over the row's, filled in by add_compression_factors.
COMPRESSION_FACTOR = "compression_factor_vs_none"
SP_METRICS: list[tuple[str, str, float, int]] = [
    ("consensus_test_accuracy", "Averaged-model acc (%)", 100.0, 2),
    ("agent_test_accuracy_mean", "Agents' acc mean (%)", 100.0, 2),
    ("bytes_sent_per_step", "kB / step / agent", 1e-3, 2),
    (COMPRESSION_FACTOR, "Compression factor", 1.0, 1),
    ("parameter_divergence", "Param. divergence", 1.0, 4),
    ("final_train_loss", "Final train loss", 1.0, 4),
    ("train_seconds_per_epoch", "train s / epoch", 1.0, 2),
]


@dataclass
class Job:
    """One finished (completed or diverged) sweep job."""

    path: Path
    data: str
    group: str  # the second grouping key: topology (cga preset) or partition (sparse_push preset)
    label: str
    seed: int | None
    epochs: int | None
    agents: int | None
    status: str
    summary: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Scan:
    """Everything found under a sweep root: usable jobs and the skipped ones by status."""

    jobs: list[Job]
    skipped: Counter[str]
    skipped_paths: dict[str, list[str]]


def algorithm_label(cfg: dict[str, Any]) -> str:
    """The table's label for a job's algorithm configuration."""
    algo = cfg.get("algorithm", {})
    name = algo.get("name", "?")
    if name == "dpmsgd":
        return "DPMSGD"
    if name == "centralized":
        return "Centralized"
    if name in ("sgp", "swarmsgd"):
        return {"sgp": "SGP", "swarmsgd": "SwarmSGD"}[name]
    if name == "compcga":
        compressor = cfg.get("compressor", {}).get("name", "auto")
        return "CompCGA (sign)" if compressor in ("auto", "sign", "scaled_sign") else f"CompCGA ({compressor})"
    if name == "cga":
        if algo.get("momentum_form") == "nesterov" or algo.get("qp_scope") == "per_tensor":
            return "CGA authors' preset"
        return f"CGA (β={float(algo.get('momentum', 0.9)):g})"
    return str(name)


def percent(fraction: Any) -> str:
    """0.1 -> '10%', 0.005 -> '0.5%'."""
    return f"{round(float(fraction) * 100, 6):g}%"


def sparse_push_label(cfg: dict[str, Any]) -> str:
    """The sparse_push preset's label: Sparse-Push (none / top-k%), SCSP (top-k%), SGP, else the CGA label."""
    name = cfg.get("algorithm", {}).get("name", "?")
    if name == "sgp":
        return "SGP"
    if name not in ("sparse_push", "scsp"):
        return algorithm_label(cfg)
    compressor = cfg.get("compressor", {}) or {}
    kind = compressor.get("name", "auto")
    if kind == "auto":  # Sparse-Push's and SCSP's own default is top-k
        kind = "topk"
    if kind == "identity":
        what = "none"
    elif kind == "topk":
        what = f"top-{percent(compressor.get('fraction', 0.1))}"
    elif "fraction" in compressor:
        what = f"{kind} {percent(compressor['fraction'])}"
    else:
        what = str(kind)
    return f"{'SCSP' if name == 'scsp' else 'Sparse-Push'} ({what})"


def partition_label(cfg: dict[str, Any]) -> str:
    """'IID', 'skew 0.8' or the partition's name."""
    partition = cfg.get("partition", {}) or {}
    name = str(partition.get("name", "?"))
    if name == "iid":
        return "IID"
    if name == "skew":
        return f"skew {float(partition.get('skew', 0.8)):g}"
    return name


def ngo_label(cfg: dict[str, Any]) -> str:
    """The ngo preset's label: 'Gossip (γ=…)' for p = 1, 'NGO (p=…, γ=…)', with τ when delayed; 'Local SGD (H=…)'."""
    algo = cfg.get("algorithm", {})
    name = algo.get("name", "?")
    if name == "local" and algo.get("average_every"):
        return f"Local SGD (H={algo['average_every']})"
    if name != "ngo":
        return algorithm_label(cfg)
    p, gamma, delay = float(algo.get("p", 0.75)), float(algo.get("gamma", 0.5)), int(algo.get("delay", 0) or 0)
    label = f"Gossip (γ={gamma:g}" if p == 1.0 else f"NGO (p={p:g}, γ={gamma:g}"
    return label + (f", τ={delay})" if delay else ")")


def ngo_group(cfg: dict[str, Any]) -> str:
    """'IID ring', 'class random' ...: the NGO paper's table 1 cells."""
    return f"{partition_label(cfg)} {cfg.get('topology', {}).get('graph', '?')}"


def partition_key(value: str) -> tuple[int, float, str]:
    """IID first, then skew by increasing value, then anything else alphabetically."""
    if value == "IID":
        return (0, 0.0, "")
    if value.startswith("skew "):
        try:
            return (1, float(value.split()[1]), "")
        except ValueError:
            pass
    return (2, 0.0, value)


def file_slug(value: str) -> str:
    """A partition or topology as part of a file name: 'skew 0.8' -> 'skew0.8', 'IID' -> 'iid'."""
    return "".join(ch for ch in value.lower() if ch.isalnum() or ch in "._-")


@dataclass(frozen=True)
class Preset:
    """What a sweep is grouped, labelled and measured by."""

    name: str
    title: str
    group_key: str  # the JSON key of the second grouping level
    group_header: str
    label: Callable[[dict[str, Any]], str]
    group: Callable[[dict[str, Any]], str]
    group_sort: Callable[[str], Any]
    label_order: list[str]
    metrics: list[tuple[str, str, float, int]]


PRESETS = {
    "cga": Preset(
        name="cga", title="CGA reproduction", group_key="topology", group_header="Topology",
        label=algorithm_label, group=lambda cfg: str(cfg.get("topology", {}).get("graph", "?")),
        group_sort=lambda value: order_key(TOPOLOGY_ORDER, value), label_order=LABEL_ORDER, metrics=METRICS,
    ),
    "sparse_push": Preset(
        name="sparse_push", title="Sparse-Push reproduction", group_key="partition", group_header="Partition",
        label=sparse_push_label, group=partition_label, group_sort=partition_key,
        label_order=SP_LABEL_ORDER, metrics=SP_METRICS,
    ),
    "ngo": Preset(
        name="ngo", title="NGO reproduction", group_key="cell", group_header="Partition, topology",
        label=ngo_label, group=ngo_group, group_sort=lambda value: value, label_order=["Centralized"],
        metrics=[("consensus_test_accuracy", "Averaged-model acc (%)", 100.0, 2),
                 ("agent_test_accuracy_mean", "Agents' acc mean (%)", 100.0, 2),
                 ("consensus_distance", "Sync. index V", 1.0, 4),
                 ("final_train_loss", "Final train loss", 1.0, 4),
                 ("mb_sent_per_agent", "MB sent / agent", 1.0, 2)],
    ),
}


def read_yaml(path: Path) -> dict[str, Any]:
    """Parse a YAML file into a dict (empty if the file is empty)."""
    return yaml.safe_load(path.read_text()) or {}


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The per-epoch rows of metrics.jsonl, skipping a partly written last line."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def load_job(path: Path, preset: Preset) -> tuple[str, Job | None]:
    """Read one job directory; returns (status, job) with job None when it is to be skipped."""
    summary_path = path / "summary.json"
    if not summary_path.exists():
        return "running (no summary.json)", None
    try:
        summary = json.loads(summary_path.read_text())
        cfg = read_yaml(path / "config.yaml")
    except (json.JSONDecodeError, yaml.YAMLError):
        return "unreadable", None
    status = str(summary.get("status", "unknown"))
    if status not in INCLUDED_STATUSES:
        return status, None
    history = read_metrics(path / "metrics.jsonl")
    # Training steps only (metrics.jsonl's epoch_seconds), not the per-epoch evaluation.
    epoch_times = [float(row["epoch_seconds"]) for row in history if row.get("epoch_seconds") is not None]
    if epoch_times:
        summary["train_seconds_per_epoch"] = sum(epoch_times) / len(epoch_times)
    job = Job(
        path=path,
        data=str(cfg.get("data", {}).get("name", "?")),
        group=preset.group(cfg),
        label=preset.label(cfg),
        seed=cfg.get("seed"),
        epochs=cfg.get("train", {}).get("epochs"),
        agents=cfg.get("agents"),
        status=status,
        summary=summary,
        history=history,
    )
    return status, job


def scan(root: Path, preset: Preset) -> Scan:
    """Find every job directory (one holding config.yaml) under root and load it."""
    jobs: list[Job] = []
    skipped: Counter[str] = Counter()
    skipped_paths: dict[str, list[str]] = defaultdict(list)
    for config in sorted(root.rglob("config.yaml")):
        if config.parent.name == ".hydra":
            continue
        status, job = load_job(config.parent, preset)
        if job is None:
            skipped[status] += 1
            skipped_paths[status].append(str(config.parent))
        else:
            jobs.append(job)
    return Scan(jobs, skipped, dict(skipped_paths))


def order_key(order: list[str], value: str) -> tuple[int, str]:
    """Sort key placing known values in the given order and unknown ones after, alphabetically."""
    return (order.index(value), "") if value in order else (len(order), value)


def group_jobs(jobs: list[Job], preset: Preset) -> dict[tuple[str, str, str], list[Job]]:
    """Jobs keyed by (data, topology or partition, label), in table order."""
    groups: dict[tuple[str, str, str], list[Job]] = defaultdict(list)
    for job in jobs:
        groups[(job.data, job.group, job.label)].append(job)
    keys = sorted(groups, key=lambda k: (k[0], preset.group_sort(k[1]), order_key(preset.label_order, k[2])))
    return {key: sorted(groups[key], key=lambda j: (j.seed is None, j.seed)) for key in keys}


def finite(value: Any) -> float | None:
    """value as a float when it is a finite number, else None."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def mean_std(values: list[float]) -> dict[str, float | int | None]:
    """Mean, sample standard deviation (None for one value) and count."""
    if not values:
        return {"mean": None, "std": None, "n": 0}
    std = statistics.stdev(values) if len(values) > 1 else None
    return {"mean": statistics.fmean(values), "std": std, "n": len(values)}


def summary_value(job: Job, key: str) -> float | None:
    """One metric of a job's summary; MB sent falls back to the agents' mean from metrics."""
    value = finite(job.summary.get(key))
    if value is None and key == "mb_sent_per_agent":
        value = finite(job.summary.get("mb_sent_per_agent_mean"))
    return value


def aggregate(key: tuple[str, str, str], jobs: list[Job], preset: Preset) -> dict[str, Any]:
    """Mean ± std over the completed seeds of one group, with status counts."""
    completed = [job for job in jobs if job.status == "completed"]
    metrics = {name: mean_std([v for j in completed if (v := summary_value(j, name)) is not None])
               for name, *_ in preset.metrics if name != COMPRESSION_FACTOR}
    return {
        "data": key[0],
        preset.group_key: key[1],
        "algorithm": key[2],
        "seeds": [job.seed for job in jobs],
        "statuses": dict(Counter(job.status for job in jobs)),
        "epochs": sorted({job.epochs for job in jobs if job.epochs is not None}),
        "agents": sorted({job.agents for job in jobs if job.agents is not None}),
        "diverged_epochs": [job.summary.get("epochs_completed") for job in jobs if job.status == "diverged"],
        "metrics": metrics,
    }


def add_compression_factors(rows: list[dict[str, Any]], group_key: str) -> None:
    """Each row's compression factor: Sparse-Push (none)'s mean bytes per step over the row's, on the same
    data set and partition (a ratio of seed means, so no std; n is the row's seed count)."""
    dense = {(row["data"], row[group_key]): row["metrics"]["bytes_sent_per_step"]["mean"]
             for row in rows if row["algorithm"] == SP_UNCOMPRESSED}
    for row in rows:
        sent = row["metrics"]["bytes_sent_per_step"]
        reference = dense.get((row["data"], row[group_key]))
        factor = reference / sent["mean"] if reference and sent["mean"] else None
        row["metrics"][COMPRESSION_FACTOR] = {"mean": factor, "std": None, "n": sent["n"] if factor else 0}


def scsp_gains(rows: list[dict[str, Any]], group_key: str) -> list[dict[str, Any]]:
    """Per (data, partition, compressor) with both SCSP and Sparse-Push rows: the agents' mean test
    accuracy of each (mean over completed seeds) and SCSP's gain over Sparse-Push, as in Table 4."""
    by_key = {(row["data"], row[group_key], row["algorithm"]): row for row in rows}
    gains = []
    for row in rows:
        if not row["algorithm"].startswith("SCSP ("):
            continue
        compressor = row["algorithm"][len("SCSP ("):-1]
        base = by_key.get((row["data"], row[group_key], f"Sparse-Push ({compressor})"))
        if base is None:
            continue
        scsp, sp = row["metrics"]["agent_test_accuracy_mean"], base["metrics"]["agent_test_accuracy_mean"]
        gain = scsp["mean"] - sp["mean"] if scsp["mean"] is not None and sp["mean"] is not None else None
        gains.append({"data": row["data"], group_key: row[group_key], "compressor": compressor,
                      "sparse_push": sp["mean"], "scsp": scsp["mean"], "gain": gain,
                      "n_sparse_push": sp["n"], "n_scsp": scsp["n"]})
    return gains


def format_cell(stats: dict[str, Any], scale: float, decimals: int) -> str:
    """'mean ± std' (just 'mean' for one seed, '-' for none)."""
    if stats["mean"] is None:
        return "-"
    text = f"{stats['mean'] * scale:.{decimals}f}"
    if stats["std"] is not None:
        text += f" ± {stats['std'] * scale:.{decimals}f}"
    return text


def status_cell(statuses: dict[str, int], diverged_epochs: list[Any]) -> str:
    """Status counts such as '2 completed' or '1 completed, 1 diverged (epoch 6)'."""
    text = ", ".join(f"{count} {name}" for name, count in sorted(statuses.items()))
    if diverged_epochs:
        text += f" (epoch {join_values(diverged_epochs)})"
    return text


def table_row(row: dict[str, Any], preset: Preset) -> str:
    """One markdown row; a group with no completed seed reads 'diverged' in every metric."""
    n_completed = row["statuses"].get("completed", 0)
    if n_completed == 0:
        cells = ["**diverged**"] * len(preset.metrics)
    else:
        cells = [format_cell(row["metrics"][name], scale, dec) for name, _, scale, dec in preset.metrics]
    head = [row[preset.group_key], row["algorithm"], str(n_completed)]
    status = status_cell(row["statuses"], row["diverged_epochs"])
    return "| " + " | ".join(head + cells + [status]) + " |"


def join_values(values: list[Any]) -> str:
    """Comma-separated values, or '?' when there are none."""
    return ", ".join(str(v) for v in values) if values else "?"


SP_NOTE = (
    "Agents' acc mean is the mean of the agents' own test accuracies (the Sparse-Push paper's \"average test "
    "accuracy\"). kB / step / agent is summary.json's bytes_sent_per_step / 1000; for SCSP it includes the "
    "final uncompressed gossip steps. Compression factor: Sparse-Push (none)'s kB / step over the row's, same "
    "data set and partition (ratio of seed means; the paper's Table 2). Param. divergence: "
    "1/n sum_i ||x_i - x_bar|| at the last epoch."
)


def dataset_table(data: str, rows: list[dict[str, Any]], preset: Preset) -> str:
    """The markdown section for one data set."""
    seeds = sorted({s for row in rows for s in row["seeds"] if s is not None})
    epochs = sorted({e for row in rows for e in row["epochs"]})
    agents = sorted({a for row in rows for a in row["agents"]})
    header = [preset.group_header, "Algorithm", "n"] + [title for _, title, *_ in preset.metrics] + ["Status"]
    lines = [
        f"## {data}",
        "",
        f"{join_values(agents)} agents, seeds {join_values(seeds)}, {join_values(epochs)} epochs. "
        "Final-epoch values, mean ± std (sample) over the n completed seeds; diverged seeds are left out "
        "of the statistics and counted under Status.",
        "",
    ]
    if preset.name == "sparse_push":
        lines += [SP_NOTE, ""]
    lines += [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] * 3 + ["---:"] * len(preset.metrics) + ["---"]) + "|",
    ]
    lines += [table_row(row, preset) for row in rows]
    return "\n".join(lines) + "\n"


def gains_table(data: str, gains: list[dict[str, Any]], group_key: str) -> str:
    """The Table 4 style lines for one data set: SCSP's agents' accuracy minus Sparse-Push's."""
    lines = [
        f"### {data}: accuracy gain of SCSP over Sparse-Push",
        "",
        "Mean over completed seeds of the agents' own test accuracy (%), SCSP minus Sparse-Push with the same "
        "compressor, data set and partition.",
        "",
    ]
    mine = [g for g in gains if g["data"] == data]
    if not mine:
        return "\n".join(lines + ["No partition has both SCSP and Sparse-Push with the same compressor yet."]) + "\n"

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.2f}"

    lines += [
        f"| {group_key.capitalize()} | Compressor | Sparse-Push (%) | SCSP (%) | Gain (pp) | n (SP / SCSP) |",
        "|---|---|---:|---:|---:|---|",
    ]
    for g in mine:
        gain = "-" if g["gain"] is None else f"**{100 * g['gain']:+.2f}**"
        lines.append(f"| {g[group_key]} | {g['compressor']} | {pct(g['sparse_push'])} | {pct(g['scsp'])} | {gain} "
                     f"| {g['n_sparse_push']} / {g['n_scsp']} |")
    return "\n".join(lines) + "\n"


def skipped_note(scanned: Scan) -> str:
    """A markdown line listing the jobs left out, by status."""
    if not scanned.skipped:
        return "All job directories found were completed or diverged.\n"
    counts = ", ".join(f"{count} {status}" for status, count in sorted(scanned.skipped.items()))
    return f"Skipped job directories: {counts}.\n"


def markdown(root: Path, rows: list[dict[str, Any]], scanned: Scan, preset: Preset,
             gains: list[dict[str, Any]] | None = None) -> str:
    """The whole markdown document: a heading, one table per data set (with the SCSP gains for the
    sparse_push preset), the skipped-jobs note."""
    parts = [f"# {preset.title}: {root}\n", skipped_note(scanned)]
    for data in sorted({row["data"] for row in rows}):
        parts.append(dataset_table(data, [row for row in rows if row["data"] == data], preset))
        if gains is not None:
            parts.append(gains_table(data, gains, preset.group_key))
    if not rows:
        parts.append("No completed or diverged jobs found.\n")
    return "\n".join(parts)


def epoch_means(jobs: list[Job], key: str) -> tuple[list[int], list[float]]:
    """Per-epoch mean over seeds of a metrics.jsonl column, finite values only."""
    by_epoch: dict[int, list[float]] = defaultdict(list)
    for job in jobs:
        for record in job.history:
            value = finite(record.get(key))
            if value is not None and "epoch" in record:
                by_epoch[int(record["epoch"])].append(value)
    epochs = sorted(by_epoch)
    return epochs, [statistics.fmean(by_epoch[e]) for e in epochs]


def label_color(label: str, order: list[str] = LABEL_ORDER) -> str:
    """A fixed colour per label, so one algorithm has the same colour in every PNG."""
    index = order_key(order, label)[0]
    return f"C{index % 10}" if label in order else f"C{(len(order) + len(label)) % 10}"


def plot_topology(data: str, topology: str, groups: dict[str, list[Job]], out: Path, preset: Preset = PRESETS["cga"]) -> None:
    """Two panels (train loss on a log axis, averaged-model test accuracy) for one data set and topology
    (partition for the sparse_push preset, which also draws the agents' mean accuracy, dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4.2))
    for label, jobs in groups.items():
        seeds = len(jobs)
        legend = f"{label} (n={seeds})" + (" diverged" if all(j.status == "diverged" for j in jobs) else "")
        epochs, loss = epoch_means(jobs, "train_loss")
        positive = [(e, v) for e, v in zip(epochs, loss) if v > 0]
        color = label_color(label, preset.label_order)
        if positive:
            ax_loss.plot(*zip(*positive), marker=".", color=color, label=legend)
        epochs, acc = epoch_means(jobs, "consensus_test_accuracy")
        if epochs:
            ax_acc.plot(epochs, [100 * a for a in acc], marker=".", color=color, label=legend)
        if preset.name == "sparse_push":
            epochs, acc = epoch_means(jobs, "agent_test_accuracy_mean")
            if epochs:
                ax_acc.plot(epochs, [100 * a for a in acc], marker=".", linestyle="--", color=color)
    ax_loss.set_yscale("log")
    ax_loss.set(xlabel="epoch", ylabel="train loss (mean over agents, log scale)", title="Train loss")
    if preset.name == "sparse_push":
        ax_acc.set(xlabel="epoch", ylabel="test accuracy (%)", title="Test accuracy")
        ax_acc.plot([], [], color="gray", label="averaged model")
        ax_acc.plot([], [], color="gray", linestyle="--", label="agents' mean")
    else:
        ax_acc.set(xlabel="epoch", ylabel="averaged-model test accuracy (%)", title="Averaged-model test accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(True, which="both", alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_acc.legend(fontsize=8, loc="best")
    where = f"{topology} partition" if preset.name == "sparse_push" else f"{topology} topology"
    fig.suptitle(f"{data}, {where} (mean over seeds)")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def write_plots(groups: dict[tuple[str, str, str], list[Job]], out_dir: Path, preset: Preset = PRESETS["cga"]) -> list[Path]:
    """One PNG per (data set, topology or partition); returns the paths written."""
    by_panel: dict[tuple[str, str], dict[str, list[Job]]] = defaultdict(dict)
    for (data, topology, label), jobs in groups.items():
        by_panel[(data, topology)][label] = jobs
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for (data, topology), labels in by_panel.items():
        name = file_slug(topology) if preset.name in ("sparse_push", "ngo") else topology
        path = out_dir / f"loss_{data}_{name}.png"
        plot_topology(data, topology, labels, path, preset)
        written.append(path)
    return written


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line arguments."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="sweep root, e.g. sweeps/cga (searched recursively for jobs)")
    parser.add_argument("--out-md", type=Path, default=None, help="markdown output (default ROOT/table.md)")
    parser.add_argument("--out-dir", type=Path, default=None, help="PNG folder (default ROOT/plots/)")
    parser.add_argument("--json", type=Path, default=None, help="also write the aggregated numbers here")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNGs")
    parser.add_argument("--merge", type=Path, action="append", default=[],
                        help="also tabulate the groups of an earlier --json output (runs no longer on disk); ROOT's groups win")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cga",
                        help="cga: group by topology, CGA labels (default); sparse_push: group by partition, "
                             "Sparse-Push / SCSP / SGP labels, bytes per step, compression factor, SCSP gains; "
                             "ngo: group by partition and topology, gossip / NGO / local SGD labels, sync. index")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Scan, aggregate, write the table, plots and JSON; print the table."""
    args = parse_args(argv)
    root: Path = args.root
    if not root.is_dir():
        raise SystemExit(f"error: {root} is not a directory")
    preset = PRESETS[args.preset]
    scanned = scan(root, preset)
    groups = group_jobs(scanned.jobs, preset)
    rows = [aggregate(key, jobs, preset) for key, jobs in groups.items()]
    present = {(row["data"], row[preset.group_key], row["algorithm"]) for row in rows}
    for earlier in args.merge:
        rows += [row for row in json.loads(earlier.read_text())["groups"]
                 if (row["data"], row[preset.group_key], row["algorithm"]) not in present]
    rows.sort(key=lambda r: (r["data"], preset.group_sort(r[preset.group_key]), order_key(preset.label_order, r["algorithm"])))
    gains = None
    if preset.name == "sparse_push":
        add_compression_factors(rows, preset.group_key)
        gains = scsp_gains(rows, preset.group_key)
    text = markdown(root, rows, scanned, preset, gains)
    out_md = args.out_md or root / "table.md"
    out_md.parent.mkdir(parents=True, exist_ok=True)
    out_md.write_text(text)
    print(text)
    print(f"wrote {out_md}")
    if not args.no_plots:
        for path in write_plots(groups, args.out_dir or root / "plots", preset):
            print(f"wrote {path}")
    if args.json:
        payload = {"root": str(root), "skipped": dict(scanned.skipped), "skipped_jobs": scanned.skipped_paths,
                   "groups": rows}
        if gains is not None:
            payload["preset"] = preset.name
            payload["scsp_gains"] = gains
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
