"""How `cgatrain report` shows its numbers: threshold columns (KEY@first>=X) and the precision of a std."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from cgatrain.reporting import report
from cgatrain.reporting.schema import METRICS_FILE, EpochRecord, RunSummary, write_summary

THRESHOLD = "consensus_test_accuracy@first>=0.12"


def _run(folder: Path, algorithm: str, seed: int, accuracies: list[float], **final: float) -> None:
    """A completed run directory: config.yaml, one metrics row per accuracy, summary.json with FINAL numbers."""
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(f"algorithm:\n  name: {algorithm}\ntopology:\n  graph: ring\nseed: {seed}\nagents: 2\n")
    rows = [EpochRecord(epoch=e + 1, lr=0.1, train_loss=1.0, consensus_test_accuracy=a) for e, a in enumerate(accuracies)]
    (folder / METRICS_FILE).write_text("".join(json.dumps(row.to_dict()) + "\n" for row in rows))
    write_summary(folder, RunSummary(status="completed", algorithm=algorithm, agents=2, epochs_completed=len(accuracies),
                                     consensus_test_accuracy=accuracies[-1], **final))


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path) as stream:
        return list(csv.DictReader(stream))


def _table_line(markdown: str, section: str, method: str) -> str:
    """The row of METHOD in the table under the heading SECTION."""
    table = markdown.split(f"## {section}")[1].split("##")[0]
    return next(line for line in table.splitlines() if line.startswith(f"| ring | {method} |"))


@pytest.fixture
def threshold_report(tmp_path: Path) -> tuple[str, Path]:
    """ngo: one seed of two reaches 12% (epoch 3); cga: none does; dpsgd: both do (epochs 2 and 3)."""
    _run(tmp_path / "runs" / "a0", "ngo", 0, [0.05, 0.10, 0.13])
    _run(tmp_path / "runs" / "a1", "ngo", 1, [0.05, 0.10, 0.11])
    _run(tmp_path / "runs" / "b0", "cga", 0, [0.05, 0.10, 0.11])
    _run(tmp_path / "runs" / "b1", "cga", 1, [0.05, 0.11, 0.11])
    _run(tmp_path / "runs" / "c0", "dpsgd", 0, [0.05, 0.12, 0.13])
    _run(tmp_path / "runs" / "c1", "dpsgd", 1, [0.05, 0.10, 0.13])
    out = tmp_path / "out"
    assert report.main([str(tmp_path / "runs"), "--by", "topology.graph", "--metric", THRESHOLD, "--no-plots", "--out", str(out)]) == 0
    return (out / "report.md").read_text(), out


def test_a_threshold_column_says_how_many_seeds_reached_it(threshold_report: tuple[str, Path]) -> None:
    markdown, _ = threshold_report
    assert "| 2 | 3.0 (1/2 reached) |" in _table_line(markdown, "Other metrics", "ngo")
    assert "| 2 | not reached (0/2) |" in _table_line(markdown, "Other metrics", "cga")
    assert "| 2 | 2.5 ± 0.7 |" in _table_line(markdown, "Other metrics", "dpsgd")  # all reached: no count
    assert '"(k/n reached)" counts them when some did not' in markdown


def test_threshold_columns_in_the_csvs_count_and_flag_the_runs_that_reached_it(threshold_report: tuple[str, Path]) -> None:
    _, out = threshold_report
    summary = {row["method"]: row for row in _rows(out / "summary.csv")}
    assert [(summary[m][f"{THRESHOLD}_reached"], summary[m][f"{THRESHOLD}_recorded"]) for m in ("ngo", "cga", "dpsgd")] == [
        ("1", "2"), ("0", "2"), ("2", "2")]
    assert summary["ngo"][f"{THRESHOLD}_mean"] == "3.0" and summary["cga"][f"{THRESHOLD}_mean"] == ""
    runs = {Path(row["run_dir"]).name: row for row in _rows(out / "runs.csv")}
    assert [(runs[name][THRESHOLD], runs[name][f"{THRESHOLD}_reached"]) for name in ("a0", "a1", "b0")] == [
        ("3.0", "true"), ("", "false"), ("", "false")]
    assert "parameter_divergence_reached" not in runs["a0"]  # only threshold columns get one


def test_a_threshold_on_a_key_a_run_never_recorded_is_not_counted_as_missed(tmp_path: Path) -> None:
    from cgatrain.reporting.derived import threshold_reached

    rows = [EpochRecord(epoch=1, lr=0.1, train_loss=1.0)]
    assert threshold_reached(rows, THRESHOLD) is None
    assert threshold_reached([EpochRecord(epoch=1, lr=0.1, train_loss=1.0, consensus_test_accuracy=0.2)], THRESHOLD) is True


def test_the_std_shows_to_the_same_digit_as_its_mean_in_every_column(tmp_path: Path) -> None:
    _run(tmp_path / "runs" / "a0", "ngo", 0, [0.5], final_train_loss=2.311, consensus_distance=1.23e-3)
    _run(tmp_path / "runs" / "a1", "ngo", 1, [0.5], final_train_loss=2.311, consensus_distance=1.33e-3)
    _run(tmp_path / "runs" / "b0", "cga", 0, [0.5], final_train_loss=2.3, consensus_distance=0.5)
    _run(tmp_path / "runs" / "b1", "cga", 1, [0.6], final_train_loss=2.4, consensus_distance=0.5)
    out = tmp_path / "out"
    assert report.main([str(tmp_path / "runs"), "--by", "topology.graph", "--no-plots", "--out", str(out)]) == 0
    markdown = (out / "report.md").read_text()
    ngo, cga = _table_line(markdown, "Accuracy", "ngo"), _table_line(markdown, "Accuracy", "cga")
    assert "| 50.00 ± 0.00 |" in ngo and "| 2.311 ± 0.000 |" in ngo and "| 1.28e-03 ± 0.07e-03 |" in ngo
    assert "| 55.00 ± 7.07 |" in cga and "| 2.350 ± 0.071 |" in cga and "| 5.00e-01 ± 0.00e-01 |" in cga


@pytest.mark.parametrize(("mean", "std", "spec", "expected"), [
    (2.311, 0.0, "#.4g", "2.311 ± 0.000"),
    (2.0, 0.01234, "#.4g", "2.000 ± 0.012"),
    (105842.8984, 2100.0, "#.4g", "1.058e+05 ± 0.021e+05"),
    (1.234e-3, 5.1e-5, ".2e", "1.23e-03 ± 0.05e-03"),
    (85.0, 7.0711, ".2f", "85.00 ± 7.07"),
    (-3.5, 1.0, ".1f", "-3.5 ± 1.0"),
    (3.0, None, ".1f", "3.0"),
])
def test_mean_std_text(mean: float, std: float | None, spec: str, expected: str) -> None:
    from cgatrain.reporting.tables import mean_std_text

    assert mean_std_text(mean, std, spec) == expected
