"""The supervisor's reading of exit codes it cannot trust: the fork server that reports them died (255)."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from cgatrain.supervisor import LOST_EXIT_CODE, AgentFailure, Supervisor

pytestmark = pytest.mark.timeout(30)


def _agent_whose_fork_server_died(pid: int) -> SimpleNamespace:
    """What multiprocessing shows for an agent once its fork server is gone: exit code 255, whatever it does."""
    return SimpleNamespace(pid=pid, exitcode=LOST_EXIT_CODE, sentinel=None, join=lambda timeout=None: None)


def test_a_lost_exit_code_after_a_stop_is_waited_for_and_read_as_that_stop() -> None:
    agent = subprocess.Popen(["sleep", "30"])  # still running although multiprocessing says 255
    try:
        supervisor = Supervisor([_agent_whose_fork_server_died(agent.pid)], store=None, timeout_s=60, poll_seconds=0.05)
        assert supervisor._exit_codes() == [None]
        supervisor.signals.append(signal.SIGTERM)
        assert supervisor._watch() == "SIGTERM"  # forwarded SIGTERM ended it: a clean stop, no failure
        assert agent.wait(timeout=5) == -signal.SIGTERM
    finally:
        agent.kill()
        agent.wait(timeout=5)


def test_a_lost_exit_code_without_a_stop_is_a_failure() -> None:
    agent = subprocess.Popen(["true"])
    agent.wait(timeout=10)
    supervisor = Supervisor([_agent_whose_fork_server_died(agent.pid)], store=None, timeout_s=60, poll_seconds=0.05)
    with pytest.raises(AgentFailure, match="exited with code 255"):
        supervisor._watch()


def test_the_resume_hint_names_the_launcher_that_started_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cgatrain.train import lifecycle

    monkeypatch.setattr(lifecycle, "last_checkpoint", lambda run_dir: run_dir / "checkpoints" / "epoch_0001")
    for name in ("RANK", "WORLD_SIZE", "TORCHELASTIC_RUN_ID", "SLURM_PROCID", "CGATRAIN_LAUNCHER"):
        monkeypatch.delenv(name, raising=False)
    assert lifecycle.resume_hint(tmp_path).endswith(f"continue with: cgatrain resume={tmp_path}")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "abc")
    assert lifecycle.resume_hint(tmp_path).endswith(f"continue with: the same torchrun command plus resume={tmp_path}")


def test_the_agent_with_an_error_of_its_own_is_named_not_the_neighbour_that_lost_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Agent 0 exits first on a closed connection; agent 1, whose IndexError was the cause, is still printing."""
    agents = [SimpleNamespace(pid=4000 + rank, exitcode=1, sentinel=None) for rank in range(2)]
    supervisor = Supervisor(agents, store=None, timeout_s=60, poll_seconds=0.05)
    polls = iter([[1, None]] * 4 + [[1, 1]] * 100)
    errors = {0: "PeerError: agent 0: round 'model' with neighbours [1] failed: Connection closed by peer", 1: "IndexError: Target 10 is out of bounds"}
    monkeypatch.setattr(supervisor, "_exit_codes", lambda: next(polls))
    monkeypatch.setattr(supervisor, "_agent_error", errors.get)
    monkeypatch.setattr(supervisor, "_check_liveness", lambda: None)
    with pytest.raises(AgentFailure, match=r"agent 1 \(pid 4001\) failed: IndexError: Target 10") as failure:
        supervisor._watch()
    assert failure.value.agent == 1


def test_a_neighbours_lost_connection_alone_is_named_after_a_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    agents = [SimpleNamespace(pid=4000 + rank, exitcode=1, sentinel=None) for rank in range(2)]
    supervisor = Supervisor(agents, store=None, timeout_s=60, poll_seconds=0.05)
    monkeypatch.setattr(supervisor, "_exit_codes", lambda: [1, None])
    monkeypatch.setattr(supervisor, "_agent_error", lambda rank: "PeerError: agent 0: round 'model' failed")
    monkeypatch.setattr(supervisor, "_check_liveness", lambda: None)
    with pytest.raises(AgentFailure, match=r"agent 0 \(pid 4000\) failed: PeerError"):
        supervisor._watch()
