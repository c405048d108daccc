"""The surface a new user meets: one meaning of "MB sent/agent", per-agent results, the run log."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cgatrain.reporting.schema import SCHEMA_VERSION, load_metrics, load_summary

TINY = ["model=mlp", "partition=iid", "train.batch_size=64", "train.steps_per_epoch=3", "train.progress_bar=false", "comm.timeout_s=30"]


def cgatrain(*args: str, cwd: Path, timeout: float = 150) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cgatrain", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


@pytest.mark.multiproc
@pytest.mark.timeout(200)
def test_mb_sent_is_the_mean_over_agents_everywhere_and_per_agent_results_are_kept(tmp_path: Path) -> None:
    # On a star the hub sends to every leaf, so rank 0's own figure is twice the mean over agents.
    run = tmp_path / "run"
    result = cgatrain("agents=3", "topology=star", "algorithm=dpsgd", "train.epochs=2", *TINY, f"hydra.run.dir={run}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary, rows = load_summary(run), load_metrics(run)
    assert summary is not None and summary.status == "completed"
    raw = json.loads((run / "summary.json").read_text())
    assert raw["schema_version"] == SCHEMA_VERSION and json.loads((run / "metrics.jsonl").read_text().splitlines()[0])["schema_version"] == SCHEMA_VERSION
    per_agent = [agent.mb_sent for agent in summary.per_agent]
    assert len(per_agent) == 3 and per_agent[0] == pytest.approx(2 * per_agent[1])
    assert summary.mb_sent_per_agent == pytest.approx(sum(per_agent) / 3) == pytest.approx(rows[-1].mb_sent_per_agent)
    assert (summary.mb_sent_per_agent_min, summary.mb_sent_per_agent_max) == (pytest.approx(min(per_agent)), pytest.approx(max(per_agent)))
    assert f"MB sent/agent (mean) {summary.mb_sent_per_agent:.2f} (min {min(per_agent):.2f}, max {max(per_agent):.2f})" in result.stdout
    assert summary.bytes_sent_per_step == pytest.approx(summary.mb_sent_per_agent * 1e6 / 6)
    # The per-agent table: each agent's own accuracy, loss, bytes and time, on the console and in summary.json.
    assert "agent  test acc  test loss  train loss   MB sent  compute s  comm s" in result.stdout
    for rank, agent in enumerate(summary.per_agent):
        assert agent.rank == rank and 0.0 <= agent.test_accuracy <= 1.0 and agent.test_loss > 0 and agent.compute_seconds > 0 and agent.comm_seconds > 0
    accuracies = [agent.test_accuracy for agent in summary.per_agent]
    assert summary.agent_test_accuracy_mean == pytest.approx(sum(accuracies) / 3) and summary.agent_test_accuracy_min == min(accuracies)
    # cgatrain.log holds what the console showed.
    log = (run / "cgatrain.log").read_text()
    assert "avg-model acc" in log and "status: completed" in log and "agent  test acc" in log
