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
