"""`cgatrain report` on a real small sweep, and on hand-written records of diverged and failed runs."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from cgatrain.reporting import report
from cgatrain.reporting.schema import (
    METRICS_FILE,
    EpochRecord,
    RunSummary,
    load_summary,
    write_summary,
)

TINY = ["agents=4", "model=mlp", "train.epochs=1", "train.batch_size=64", "train.steps_per_epoch=3", "train.progress_bar=false",
        "checkpoint.enabled=false", "comm.timeout_s=30"]


def cgatrain(*args: str, cwd: Path, timeout: float = 200) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cgatrain", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.mark.multiproc
@pytest.mark.timeout(300)
def test_report_of_a_real_sweep_writes_tables_and_plots_with_the_runs_numbers(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from matplotlib.image import imread

    sweep = tmp_path / "sweep"
    ran = cgatrain("-m", "algorithm=dpsgd,centralized", "topology=ring,complete", *TINY, f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    result = cgatrain("report", str(sweep), "--metric", "parameter_divergence", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = sweep / "report"
    markdown = (out / "report.md").read_text()
    assert markdown in result.stdout + "\n"
    with open(out / "runs.csv") as stream:
        rows = list(csv.DictReader(stream))
    assert len(rows) == 4 and {row["status"] for row in rows} == {"completed"}
    assert {(row["method"], row["topology"]) for row in rows} == {(a, t) for a in ("dpsgd", "centralized") for t in ("ring", "complete")}
    for job in range(4):
        summary = load_summary(sweep / str(job))
        assert summary is not None and summary.status == "completed"
        row = next(r for r in rows if Path(r["run_dir"]).name == str(job))
        assert float(row["consensus_test_accuracy"]) == pytest.approx(summary.consensus_test_accuracy)
        assert float(row["mb_sent_per_agent"]) == pytest.approx(summary.mb_sent_per_agent)
        # One seed per group, so the table's mean is the run's own number.
        line = next(line for line in markdown.splitlines() if f"| {row['topology']} | class | {row['method']} |" in line)
        assert f"| {summary.consensus_test_accuracy * 100:.2f} |" in line
    ring_dpsgd = next(r for r in rows if r["method"] == "dpsgd" and r["topology"] == "ring")
    complete_dpsgd = next(r for r in rows if r["method"] == "dpsgd" and r["topology"] == "complete")
    assert float(complete_dpsgd["mb_sent_per_agent"]) == pytest.approx(1.5 * float(ring_dpsgd["mb_sent_per_agent"]))  # degree 3 vs 2
    with open(out / "summary.csv") as stream:
        assert len(list(csv.DictReader(stream))) == 4
    names = {"train_loss", "consensus_test_accuracy", "agent_test_accuracy_mean", "consensus_distance", "parameter_divergence", "per_agent_accuracy"}
    for name in names:
        image = imread(out / "plots" / f"{name}.png")
        assert image.shape[0] > 200 and image.shape[1] > 400 and image.std() > 0
        assert f"(plots/{name}.png)" in markdown


def _fake_run(folder: Path, algorithm: str, seed: int, status: str, accuracy: float | None, epochs: int = 2) -> None:
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(f"algorithm:\n  name: {algorithm}\ntopology:\n  graph: ring\nseed: {seed}\nagents: 2\n")
    rows = [EpochRecord(epoch=e + 1, lr=0.1, train_loss=1.0 / (e + 1), consensus_test_accuracy=accuracy, mb_sent_per_agent=float(e + 1)) for e in range(epochs)]
    (folder / METRICS_FILE).write_text("".join(json.dumps(r.to_dict()) + "\n" for r in rows))
    error = "run failed: agent 1 (pid 7) was killed by SIGKILL" if status == "failed" else None
    write_summary(folder, RunSummary(status=status, algorithm=algorithm, agents=2, epochs_completed=epochs, consensus_test_accuracy=accuracy, error=error))


def test_diverged_and_failed_runs_appear_as_such_and_tables_come_without_matplotlib(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    _fake_run(tmp_path / "a0", "cga", 0, "completed", 0.9)
    _fake_run(tmp_path / "a1", "cga", 1, "completed", 0.8)
    _fake_run(tmp_path / "b0", "dpsgd", 0, "diverged", None, epochs=1)
    _fake_run(tmp_path / "b1", "dpsgd", 1, "diverged", None, epochs=3)
    _fake_run(tmp_path / "c0", "local", 0, "failed", None, epochs=0)
    monkeypatch.setattr(report.plots, "matplotlib_available", lambda: False)
    assert report.main([str(tmp_path), "--by", "topology.graph", "--out", str(tmp_path / "out")]) == 0
    captured = capsys.readouterr()
    assert 'pip install -e ".[plot]"' in captured.err
    markdown = (tmp_path / "out" / "report.md").read_text()
    lines: dict[str, str] = {}
    for line in markdown.splitlines():  # the accuracy table comes first
        if line.startswith("| ring |"):
            lines.setdefault(line.split(" | ")[1], line)
    assert "| 85.00 ± 7.07 |" in lines["cga"] and "2 completed" in lines["cga"]
    assert "| Diverges |" in lines["dpsgd"] and "2 diverged (epoch 2, 4)" in lines["dpsgd"]
    assert "| failed |" in lines["local"] and "1 failed" in lines["local"]
    assert not (tmp_path / "out" / "plots").exists()
    with open(tmp_path / "out" / "runs.csv") as stream:
        failed = next(row for row in csv.DictReader(stream) if row["method"] == "local")
    assert "SIGKILL" in failed["error"]


def test_version_1_summaries_read_the_mean_over_agents(tmp_path: Path) -> None:
    (tmp_path / "summary.json").write_text('{"status": "completed", "mb_sent_per_agent": 34.0, "mb_sent_per_agent_mean": 17.0}')
    summary = load_summary(tmp_path)
    assert summary is not None and summary.mb_sent_per_agent == 17.0 and "mb_sent_per_agent_mean" not in summary.extra


def _run_dir(folder: Path, config: dict[str, object], overrides: list[str], rows: list[dict[str, object]], status: str = "completed") -> None:
    """A run directory as the trainer leaves it: config.yaml, .hydra/overrides.yaml, metrics.jsonl, summary.json."""
    from omegaconf import OmegaConf

    (folder / ".hydra").mkdir(parents=True)
    OmegaConf.save(OmegaConf.create(config), folder / "config.yaml")
    OmegaConf.save(OmegaConf.create(overrides), folder / ".hydra" / "overrides.yaml")
    records = [EpochRecord.from_dict({"lr": 0.1, "train_loss": 1.0, **row}) for row in rows]
    (folder / METRICS_FILE).write_text("".join(json.dumps(r.to_dict()) + "\n" for r in records))
    last = records[-1]
    write_summary(folder, RunSummary(status=status, algorithm=str(config["algorithm"]["name"]), epochs_completed=len(rows),  # type: ignore[index]
                                     consensus_test_accuracy=last.consensus_test_accuracy, agent_test_accuracy_mean=last.agent_test_accuracy_mean))


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path) as stream:
        return list(csv.DictReader(stream))


def test_derived_metrics_and_epoch_statistics_reach_tables_and_csv(tmp_path: Path) -> None:
    test_accuracy, train_accuracy = [0.5, 0.8, 0.92, 0.95], [0.6, 0.9, 0.97, 0.99]
    for seed in (0, 1):
        rows = [{"epoch": e + 1, "agent_test_accuracy_mean": test_accuracy[e] - 0.03 * seed, "agent_train_accuracy_mean": train_accuracy[e]}
                for e in range(4)]
        _run_dir(tmp_path / "sweep" / str(seed), {"algorithm": {"name": "cdsgd"}, "seed": seed, "agents": 5}, ["algorithm=cdsgd", f"seed={seed}"], rows)
    gap = "gap=agent_train_accuracy_mean-agent_test_accuracy_mean"
    out = tmp_path / "out"
    metrics = ["gap", "agent_test_accuracy_mean@last2", "agent_test_accuracy_mean@first>=0.9"]
    assert report.main([str(tmp_path / "sweep"), "--by", "data", "--derive", gap, "--metric", *metrics, "--no-plots", "--out", str(out)]) == 0
    [row] = _csv_rows(out / "summary.csv")
    assert float(row["gap_mean"]) == pytest.approx(0.055)  # the final epoch's gaps: 0.99 - 0.95 and 0.99 - 0.92
    assert float(row["agent_test_accuracy_mean@last2_mean"]) == pytest.approx((0.935 + 0.905) / 2)
    assert float(row["agent_test_accuracy_mean@first>=0.9_mean"]) == pytest.approx(3.5)  # seed 0 at epoch 3 (0.92), seed 1 at 4 (0.92)
    markdown = (out / "report.md").read_text()
    assert "| gap (pp) |" in markdown and "| 5.50 ± 2.12 |" in markdown  # percentage points of the gap
    runs = _csv_rows(out / "runs.csv")
    assert [float(r["gap"]) for r in runs] == pytest.approx([0.04, 0.07])


def test_bad_derive_and_where_are_refused_with_the_form(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _fake_run(tmp_path / "a", "cga", 0, "completed", 0.9)
    assert report.main([str(tmp_path), "--derive", "gap=a-", "--no-plots"]) == 2
    assert "NAME=KEY-KEY" in capsys.readouterr().err
    assert report.main([str(tmp_path), "--where", "algorithm", "--no-plots"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err
    assert report.main([str(tmp_path), "--where", "algorithm=dpsgd", "--no-plots"]) == 2
    assert "matching --where algorithm=dpsgd (1 runs in all)" in capsys.readouterr().err


def _gamma_sweep(root: Path, topology: str, accuracy_by_gamma: dict[float, float], diverged: float | None = None) -> None:
    for job, (gamma, accuracy) in enumerate(accuracy_by_gamma.items()):
        config = {"algorithm": {"name": "ngo", "gamma": gamma, "p": 0.75}, "topology": {"graph": topology}, "seed": 0, "agents": 5}
        rows = [{"epoch": 1, "consensus_test_accuracy": accuracy}]
        _run_dir(root / str(job), config, ["algorithm=ngo", f"algorithm.gamma={gamma}", f"topology={topology}"], rows,
                 "diverged" if gamma == diverged else "completed")


def test_several_sweeps_merge_and_where_and_best_pick_one_gamma_per_row(tmp_path: Path) -> None:
    _gamma_sweep(tmp_path / "ring", "ring", {0.05: 0.80, 0.2: 0.85, 1.0: 0.99}, diverged=1.0)
    _gamma_sweep(tmp_path / "complete", "complete", {0.05: 0.70, 0.2: 0.90, 1.0: 0.95})
    _gamma_sweep(tmp_path / "star", "star", {0.05: 0.5})
    out = tmp_path / "out"
    argv = [str(tmp_path / "ring"), str(tmp_path / "complete"), str(tmp_path / "star"), "--by", "topology.graph", "--where", "topology.graph=ring,complete",
            "--label", "algorithm", "algorithm.gamma", "--best", "algorithm.gamma", "consensus_test_accuracy", "--no-plots", "--out", str(out)]
    assert report.main(argv) == 0
    rows = {row["topology.graph"]: row for row in _csv_rows(out / "summary.csv")}
    assert set(rows) == {"ring", "complete"}  # star filtered out, the others merged from two sweeps
    assert rows["ring"]["method"] == "ngo, algorithm.gamma=0.2"  # 1.0 scored higher but diverged
    assert rows["complete"]["method"] == "ngo, algorithm.gamma=1.0"
    assert float(rows["complete"]["consensus_test_accuracy_mean"]) == pytest.approx(0.95)
    assert report.main([*argv[:-4], "min:consensus_test_accuracy", "--no-plots", "--out", str(out)]) == 0  # lowest instead
    assert {row["method"] for row in _csv_rows(out / "summary.csv")} == {"ngo, algorithm.gamma=0.05"}


def test_step_metric_curves_from_list_valued_rows(tmp_path: Path) -> None:
    from cgatrain.reporting.runs import load_run
    from cgatrain.reporting.step_plots import step_series

    for p in (0.5, 1.0):
        rows = [{"epoch": e + 1, "consensus_distance_by_step": [[s, 10.0 ** (-s * p)] for s in range(3 * e, 3 * e + 3)]} for e in range(2)]
        config = {"algorithm": {"name": "ngo", "p": p, "gamma": 0.1}, "seed": 0, "agents": 4}
        _run_dir(tmp_path / "sweep" / f"p{p}", config, ["algorithm=ngo", f"algorithm.p={p}"], rows)
    run = load_run(tmp_path / "sweep" / "p1.0")
    assert step_series(run, "consensus_distance_by_step") == [(s, pytest.approx(10.0 ** -s)) for s in range(6)]
    run.metrics[0].extra["plain"] = [3.0, 2.0]  # a plain list: one value per step, counted on across epochs
    run.metrics[1].extra["plain"] = [1.0]
    assert step_series(run, "plain") == [(1, 3.0), (2, 2.0), (3, 1.0)]
    pytest.importorskip("matplotlib")
    from matplotlib.image import imread

    out = tmp_path / "out"
    argv = [str(tmp_path / "sweep"), "--by", "algorithm.gamma", "--label", "algorithm.p", "--step-metric", "consensus_distance_by_step",
            "--plot", "consensus_distance_by_step", "--out", str(out)]
    assert report.main(argv) == 0
    assert sorted(path.name for path in (out / "plots").iterdir()) == ["consensus_distance_by_step.png"]
    image = imread(out / "plots" / "consensus_distance_by_step.png")
    assert image.shape[0] > 200 and image.std() > 0
    assert "(plots/consensus_distance_by_step.png)" in (out / "report.md").read_text()


def test_more_methods_than_colours_still_get_distinct_lines() -> None:
    from cgatrain.reporting.plots import line_styles
    from cgatrain.reporting.runs import Group

    groups = [Group(("ring",), f"method {i}", []) for i in range(25)]
    styles = line_styles(groups)
    assert len(set(styles.values())) == 25 and styles["method 0"] == ("C0", "-") and styles["method 10"] == ("C0", "--")


@pytest.mark.parametrize("script", ["reproduce_cga.sh", "reproduce_sparse_push.sh", "reproduce_cdsgd.sh", "reproduce_ngo.sh"])
def test_docs_reproduction_scripts_end_in_report_calls_that_parse(tmp_path: Path, script: str) -> None:
    """Each docs script, with a stand-in `cgatrain` that records its arguments, calls `cgatrain report` with valid options."""
    from cgatrain.reporting import derived

    root = Path(__file__).resolve().parents[1]
    calls = tmp_path / "calls.jsonl"
    fake = tmp_path / "bin" / "cgatrain"
    fake.parent.mkdir()
    fake.write_text(f"#!{sys.executable}\nimport json, sys\nopen({str(calls)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n")
    fake.chmod(0o755)
    env = {"PATH": f"{fake.parent}:/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run(["bash", str(root / "docs" / script), str(tmp_path / "out"), "all"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    reports = [args[1:] for args in map(json.loads, calls.read_text().splitlines()) if args[0] == "report"]
    assert reports, f"{script} never runs cgatrain report"
    for argv in reports:
        args = report.parse_args(argv)
        assert all(str(path).startswith(str(tmp_path / "out")) for path in args.paths), argv
        for spec in args.derive:
            derived.parse_derived(spec)
        derived.parse_where(args.where)


def _two_lr_runs(root: Path) -> None:
    """Two runs differing in optim.lr; the second alone has optim.momentum; both record a scalar and a per-step extra."""
    for job, lr in enumerate((0.01, 0.05)):
        config = {"algorithm": {"name": "cga"}, "optim": {"lr": lr, **({"momentum": 0.9} if job else {})}, "seed": job, "agents": 2}
        rows = [{"epoch": 1, "consensus_test_accuracy": 0.5, "qp_changed_fraction": 0.1, "consensus_distance_by_step": [[0, 1.0]]}]
        _run_dir(root / str(job), config, ["algorithm=cga", f"optim.lr={lr}"], rows)


@pytest.mark.parametrize(("argv", "expected"), [
    (["--by", "optim.lrr"], "--by optim.lrr: no run has config key optim.lrr (did you mean optim.lr"),
    (["--label", "algorithm", "optim.lrr"], "--label optim.lrr: no run has config key optim.lrr (did you mean optim.lr"),
    (["--where", "optim.lrr=0.01"], "--where optim.lrr: no run has config key optim.lrr (did you mean optim.lr"),
    (["--metric", "qp_changed_fractio"], "--metric qp_changed_fractio: no run has metric qp_changed_fractio (did you mean qp_changed_fraction"),
    (["--metric", "no_such_metric@last2"], "--metric no_such_metric@last2: no run has metric"),
    (["--metric", "consensus_distance_by_step"], "use --step-metric consensus_distance_by_step"),
    (["--derive", "gap=consensus_test_accuracy-qp_changed"], "qp_changed: no run has metric qp_changed (did you mean qp_changed_fraction"),
    (["--best", "optim.lr", "consensus_test_acc"], "--best consensus_test_acc: no run has metric consensus_test_acc (did you mean consensus_test_accuracy"),
    (["--step-metric", "consensus_distance_by_stp"], "(did you mean consensus_distance_by_step?)"),
    (["--plot", "no_such"], "--plot no_such: no plot named no_such"),
    (["--plot", "qp_changed_fraction"], "(add --metric qp_changed_fraction)"),
    (["--plot", "consensus_distance_by_step"], "(add --step-metric consensus_distance_by_step)"),
])
def test_keys_no_run_has_are_refused_naming_the_nearest_before_anything_is_written(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], expected: str) -> None:
    _two_lr_runs(tmp_path / "sweep")
    out = tmp_path / "out"
    assert report.main([str(tmp_path / "sweep"), *argv, "--no-plots", "--out", str(out)]) == 2
    assert expected in capsys.readouterr().err
    assert not out.exists()


def test_keys_some_runs_have_and_derived_names_are_accepted(tmp_path: Path) -> None:
    _two_lr_runs(tmp_path / "sweep")
    out = tmp_path / "out"
    argv = [str(tmp_path / "sweep"), "--by", "optim.momentum", "--where", "optim.lr=0.01,0.05", "--derive", "d=consensus_test_accuracy-qp_changed_fraction",
            "--metric", "d", "d@last1", "qp_changed_fraction", "--best", "optim.lr", "min:d", "--no-plots", "--out", str(out)]
    assert report.main(argv) == 0
    assert sorted(row["optim.momentum"] for row in _csv_rows(out / "summary.csv")) == ["", "0.9"]  # the run without it groups under None


def test_runs_without_config_add_no_none_seed_to_the_header(tmp_path: Path) -> None:
    _fake_run(tmp_path / "a0", "cga", 0, "completed", 0.9)
    _fake_run(tmp_path / "a10", "cga", 10, "completed", 0.8)
    _fake_run(tmp_path / "a2", "cga", 2, "completed", 0.8)
    (tmp_path / "r").mkdir()  # a resumed job that failed at its start: summary.json only
    write_summary(tmp_path / "r", RunSummary(status="failed", algorithm="cga", error="ConfigError: resume: no checkpoint"))
    out = tmp_path / "out"
    assert report.main([str(tmp_path), "--by", "topology.graph", "--no-plots", "--out", str(out)]) == 0
    header = (out / "report.md").read_text().splitlines()[2]
    assert "seeds 0, 2, 10; 1 run without config.yaml." in header and "None" not in header
    failed = next(row for row in _csv_rows(out / "runs.csv") if row["status"] == "failed")
    assert failed["method"] == "cga"  # named from its summary


def test_a_requested_plot_no_run_recorded_is_named_not_silently_skipped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    _two_lr_runs(tmp_path / "sweep")
    out = tmp_path / "out"
    argv = [str(tmp_path / "sweep"), "--by", "optim.lr", "--plot", "agent_train_accuracy_mean", "consensus_test_accuracy", "--out", str(out)]
    assert report.main(argv) == 0
    assert "plot agent_train_accuracy_mean not drawn: none of the selected runs recorded it" in capsys.readouterr().err
    assert sorted(path.name for path in (out / "plots").iterdir()) == ["consensus_test_accuracy.png"]


def test_resumed_runs_keep_their_own_choices_and_overrides(tmp_path: Path) -> None:
    """Hydra records the resume command's choices (today's defaults); the labels come from the run's own config."""
    import yaml

    from cgatrain.reporting.runs import load_run

    def run_dir(name: str, resume: str | None, choices: dict[str, str], overrides: list[str]) -> Path:
        path = tmp_path / name
        (path / ".hydra").mkdir(parents=True)
        config = {"algorithm": {"name": "dpmsgd"}, "topology": {"graph": "complete"}, "partition": {"name": "iid"},
                  "data": {"name": "digits"}, "optim": {"lr": 0.05}, "seed": 0, "resume": resume}
        (path / "config.yaml").write_text(yaml.safe_dump(config))
        (path / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump({"hydra": {"runtime": {"choices": choices}}}))
        (path / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
        return path

    own = {"algorithm": "dpmsgd", "topology": "complete", "partition": "iid", "data": "digits", "hydra/launcher": "basic"}
    defaults = {"algorithm": "cga", "topology": "ring", "partition": "class", "data": "digits", "hydra/launcher": "basic"}
    original = run_dir("a", None, own, ["algorithm=dpmsgd", "topology=complete", "partition=iid", "optim.lr=0.05"])
    moved = load_run(run_dir("b", str(original), defaults, [f"resume={original}", "train.epochs=3"]))
    in_place = load_run(run_dir("c", str(tmp_path / "c"), defaults, [f"resume={tmp_path / 'c'}", "train.epochs=3"]))
    for run in (moved, in_place):
        assert [run.value(key) for key in ("algorithm", "topology", "partition", "data")] == ["dpmsgd", "complete", "iid", "digits"]
    assert moved.overrides["optim.lr"] == "0.05" and moved.overrides["train.epochs"] == "3"  # the original's, then its own
    assert load_run(original).value("algorithm") == "dpmsgd"
    # Resumed in place: Hydra rewrote overrides.yaml; the overrides it started with were kept at its fresh start.
    from cgatrain.lifecycle_cli import keep_first_overrides

    kept = run_dir("d", None, own, ["algorithm=dpmsgd", "optim.lr=0.05"])
    keep_first_overrides({"resume": None}, kept)
    (kept / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"resume={kept}", "train.epochs=3"]))  # what Hydra writes then
    keep_first_overrides({"resume": str(kept)}, kept)  # the resumed job leaves the record alone
    resumed_in_place = load_run(kept)
    assert resumed_in_place.overrides == {"algorithm": "dpmsgd", "optim.lr": "0.05", "resume": str(kept), "train.epochs": "3"}


def test_a_label_that_merges_methods_is_warned_about(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _fake_run(tmp_path / "a0", "cga", 0, "completed", 0.9)
    _fake_run(tmp_path / "b0", "dpsgd", 0, "completed", 0.7)
    out = tmp_path / "out"
    assert report.main([str(tmp_path), "--by", "topology.graph", "--label", "seed", "--no-plots", "--out", str(out)]) == 0
    assert "warning: row '0' averages runs that differ in algorithm (cga, dpsgd) as if they were seeds; add --label algorithm" in capsys.readouterr().err
    assert report.main([str(tmp_path), "--by", "topology.graph", "--no-plots", "--out", str(out)]) == 0
    assert "warning" not in capsys.readouterr().err


def test_a_resumed_run_takes_its_origins_choice_names(tmp_path: Path) -> None:
    """Choices whose names differ from the config's (cga_authors runs cga) come from the run it resumed."""
    import yaml

    from cgatrain.reporting.runs import load_run

    def run_dir(name: str, resume: str | None, choices: dict[str, str], topology: dict) -> Path:
        path = tmp_path / name
        (path / ".hydra").mkdir(parents=True)
        (path / "config.yaml").write_text(yaml.safe_dump({"algorithm": {"name": "cga"}, "topology": topology, "resume": resume}))
        (path / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump({"hydra": {"runtime": {"choices": choices}}}))
        return path

    schedule = {"schedule": [{"graph": "ring"}, {"graph": "complete"}]}
    original = run_dir("a", None, {"algorithm": "cga_authors", "topology": "time_varying_example"}, schedule)
    moved = load_run(run_dir("b", str(original), {"algorithm": "cga", "topology": "ring"}, schedule))
    assert (moved.value("algorithm"), moved.value("topology")) == ("cga_authors", "time_varying_example")
    in_place = load_run(run_dir("c", str(tmp_path / "c"), {"algorithm": "cga", "topology": "ring"}, schedule))
    assert (in_place.value("algorithm"), in_place.value("topology")) == ("cga", "schedule")  # all config.yaml can tell
    # resume_override=true topology=ring: that group is the run's own new choice; a chain keeps the first overrides.
    switched = run_dir("d", str(tmp_path / "b"), {"algorithm": "cga", "topology": "ring"}, {"graph": "ring"})
    (original / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(["algorithm=cga_authors", "optim.lr=0.05"]))
    (switched / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"resume={tmp_path / 'b'}", "topology=ring"]))
    chained = load_run(switched)
    assert (chained.value("algorithm"), chained.value("topology")) == ("cga_authors", "ring")
    assert chained.overrides["optim.lr"] == "0.05" and chained.overrides["topology"] == "ring"
