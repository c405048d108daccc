"""The surface a new user meets: MB sent/agent, per-agent results, the run log, compressor options, presets, messages, warnings."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_config import composed

from cgatrain.algorithms import get_algorithm, resolve_compressor
from cgatrain.capacity import oversubscription_warning
from cgatrain.compression.base import COMPRESSORS, compressor_options
from cgatrain.config import ConfigError, validate
from cgatrain.reporting.schema import SCHEMA_VERSION, load_metrics, load_summary

TINY = ["model=mlp", "partition=iid", "train.batch_size=64", "train.steps_per_epoch=3", "train.progress_bar=false", "comm.timeout_s=30"]


def cgatrain(*args: str, cwd: Path, timeout: float = 150) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cgatrain", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)


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


def problems(*overrides: str) -> str:
    with pytest.raises(ConfigError) as error:
        validate(composed(*overrides))
    return str(error.value)


def test_compressor_options_under_auto_are_settable_without_plus_and_used() -> None:
    cfg = composed("algorithm=sparse_push", "compressor.fraction=0.3")
    validate(cfg)
    assert resolve_compressor(cfg["compressor"], get_algorithm("sparse_push")) == {"name": "topk", "fraction": 0.3}
    assert resolve_compressor(composed("algorithm=sparse_push")["compressor"], get_algorithm("sparse_push")) == {"name": "topk"}


def test_compressor_options_the_algorithms_compressor_would_ignore_are_refused() -> None:
    message = problems("algorithm=compcga", "compressor.fraction=0.3")
    assert "compressor=auto is sign for algorithm=compcga, which would ignore compressor.fraction; it takes no options" in message
    assert "ignore compressor.bits" in problems("algorithm=sparse_push", "compressor.bits=2")
    assert "ignore compressor.fraction" in problems("algorithm=cga", "compressor.fraction=0.5")
    assert "has no option(s) ['bits']" in problems("algorithm=sparse_push", "compressor=topk", "+compressor.bits=2")


def test_auto_lists_every_option_of_every_compressor() -> None:
    listed = set(composed()["compressor"]) - {"name"}
    assert listed == {option for name in COMPRESSORS for option in compressor_options(COMPRESSORS.get(name))}


@pytest.mark.parametrize("experiment", ["sp_none", "sp_top50", "sp_top10", "sp_top1"])
def test_sparse_push_experiments_run_alone_and_take_another_algorithm(experiment: str) -> None:
    cfg = composed(f"experiment={experiment}")
    validate(cfg)
    assert cfg["algorithm"]["name"] == "sparse_push" and cfg["agents"] == 4
    for order in ([f"experiment={experiment}", "algorithm=scsp"], ["algorithm=scsp", f"experiment={experiment}"]):
        cfg = composed(*order)
        validate(cfg)
        assert cfg["algorithm"]["name"] == "scsp"


def test_custom_example_with_the_default_agents_says_it_has_4_nodes_in_config_keys() -> None:
    message = problems("topology=custom_example")
    assert "topology.edges names 4 agents (0..3) but agents=5" in message and "set agents=4" in message
    hint = problems("topology=custom_example", "agents=4", "algorithm=dpsgd")
    assert "require=" not in hint and "topology.weights=metropolis_hastings" in hint and "algorithm=sgp" in hint
    validate(composed("topology=custom_example", "agents=4", "algorithm=sgp"))


def test_oversubscription_warning_names_the_numbers() -> None:
    assert oversubscription_warning(agents=5, threads_per_agent=1, cores=2, gpus=0) is None
    warning = oversubscription_warning(agents=16, threads_per_agent=1, cores=2, gpus=0)
    assert warning is not None and "agents=16" in warning and "2 CPU core(s)" in warning
    gpu_warning = oversubscription_warning(agents=8, threads_per_agent=1, cores=64, gpus=2)
    assert gpu_warning is not None and "agents=8 but 2 GPU(s)" in gpu_warning


@pytest.mark.multiproc
@pytest.mark.timeout(120)
def test_oversubscription_warning_is_shown_before_spawn_and_logged(tmp_path: Path) -> None:
    if shutil.which("taskset") is None:
        pytest.skip("taskset not available")
    run = tmp_path / "run"
    args = ["taskset", "-c", "0", sys.executable, "-m", "cgatrain", "agents=5", "algorithm=dpsgd", *TINY, "train.epochs=1", f"hydra.run.dir={run}"]
    result = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=100, check=False)
    assert result.returncode == 0, result.stderr
    assert "warning: agents=5 x comm.threads_per_agent=1 = 5 threads on 1 CPU core(s)" in result.stderr
    log = (run / "cgatrain.log").read_text()
    assert log.index("warning: agents=5") < log.index("cgatrain: dpsgd | 5 agents")


def test_the_progress_bar_is_drawn_only_on_a_terminal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cgatrain.reporting import Reporter

    cfg = {"logger": {"wandb": {"mode": "disabled"}}}
    for terminal in (True, False):
        monkeypatch.setattr(sys.stderr, "isatty", lambda terminal=terminal: terminal)
        assert Reporter(tmp_path, True, cfg, progress_bar=True).show_bar is terminal
    assert not Reporter(tmp_path, True, cfg, progress_bar=False).show_bar
