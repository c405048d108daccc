"""Run lifecycle as users meet it: signals to the `cgatrain` parent, Ctrl-C, a stopped (hung) agent,
and a Slurm-style requeue (SIGUSR1 -> checkpoint -> restart) that ends where an uninterrupted run ends.

Every signal goes by pid to a process this test started; every wait is bounded.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from cgatrain.train import lifecycle

pytestmark = [pytest.mark.multiproc, pytest.mark.timeout(240)]

TINY = ["agents=3", "algorithm=dpmsgd", "model=mlp", "partition=iid", "train.batch_size=64", "train.progress_bar=false", "comm.timeout_s=30"]
ENDLESS = [*TINY, "train.steps_per_epoch=40", "train.epochs=100000"]
TIMING_KEYS = {"epoch_seconds", "comm_seconds_per_step", "compute_seconds_per_step"}


def start(args: list[str], cwd: Path, env: dict[str, str] | None = None, new_session: bool = False) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "cgatrain", *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=new_session
    )


STARTED_AGENTS: list[int] = []
# pid -> its start time: a pid the kernel reused for another process is not our agent, never kill it.
AGENT_START_TIMES: dict[int, str] = {}


@pytest.fixture(autouse=True)
def no_agent_left_behind() -> Iterator[None]:
    """Whatever a test asserts, the agents it saw are SIGKILLed at its end if they still run."""
    yield
    kill_leftovers(STARTED_AGENTS)
    STARTED_AGENTS.clear()
    AGENT_START_TIMES.clear()


def wait_for_training(process: subprocess.Popen[str], run_dir: Path, rows: int = 1, limit: float = 90) -> list[int]:
    """Block until metrics.jsonl has `rows` rows; return the agents' pids."""
    deadline = time.monotonic() + limit
    metrics = run_dir / "metrics.jsonl"
    while not (metrics.exists() and len(metrics.read_text().splitlines()) >= rows):
        assert process.poll() is None, process.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "the run never got going"
        time.sleep(0.1)
    pids = [agent["pid"] for agent in json.loads((run_dir / "agents.json").read_text())["agents"]]
    for pid in pids:
        fields = _stat_fields(pid)
        AGENT_START_TIMES.setdefault(pid, fields[19] if fields else "")
    STARTED_AGENTS.extend(pids)
    return pids


def _stat_fields(pid: int) -> list[str]:
    """/proc/PID/stat after the command name (state first, start time at index 19), or [] if gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def running(pid: int) -> bool:
    """True while the agent `pid` exists and is no zombie (a reused pid is another process: False)."""
    fields = _stat_fields(pid)
    if not fields or fields[0] == "Z":
        return False
    return AGENT_START_TIMES.get(pid, fields[19]) == fields[19]


def kill_leftovers(pids: list[int]) -> None:
    """SIGKILL whichever of these agents still runs (a failing test must not leave them behind)."""
    for pid in pids:
        if running(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def assert_all_gone(pids: list[int], within: float = 10) -> None:
    deadline = time.monotonic() + within
    while any(running(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [pid for pid in pids if running(pid)]
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, f"agents {left} outlived the run"


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def finish(process: subprocess.Popen[str], timeout: float) -> tuple[str, str, float]:
    """(stdout, stderr, seconds) of a process asked to stop; killed if it overstays."""
    started = time.monotonic()
    try:
        out, err = process.communicate(timeout=timeout)
    finally:
        process.kill()
    return out, err, time.monotonic() - started


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_to_the_parent_stops_every_agent_and_records_the_stop(tmp_path: Path, stop: signal.Signals) -> None:
    run_dir = tmp_path / "run"
    process = start([*ENDLESS, f"hydra.run.dir={run_dir}"], tmp_path)
    pids = wait_for_training(process, run_dir)
    process.send_signal(stop)  # to the parent alone (kill, an IDE's stop button): it must reach every agent
    _, stderr, seconds = finish(process, timeout=40)
    assert process.returncode == 128 + stop, stderr[-3000:]
    assert seconds < 15, f"took {seconds:.1f} s to stop"
    assert_all_gone(pids)
    result = summary(run_dir)
    assert result["status"] == "interrupted" and result["stopped_by"] == stop.name
    assert result["checkpoint"] and Path(result["checkpoint"]).is_dir()
    hint = [line for line in stderr.splitlines() if f"resume={run_dir}" in line]
    assert len(hint) == 1 and "Traceback" not in stderr, stderr[-3000:]


def test_sigterm_to_a_sweep_parent_stops_the_sweep(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    process = start(["-m", *ENDLESS, "optim.lr=0.01,0.02", f"hydra.sweep.dir={sweep}"], tmp_path)
    pids = wait_for_training(process, sweep / "0")
    process.send_signal(signal.SIGTERM)
    stdout, stderr, _ = finish(process, timeout=40)
    assert process.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    assert_all_gone(pids)
    assert summary(sweep / "0")["status"] == "interrupted"
    assert not (sweep / "1" / "agents.json").exists(), "the sweep went on to its next job"
    # The hint continues the whole sweep in place (README: the same command plus resume=auto and the sweep dir).
    assert stderr.count(f"to continue the whole sweep: cgatrain -m {' '.join(ENDLESS)} optim.lr=0.01,0.02 resume=auto hydra.sweep.dir={sweep}") == 1
    # ...after the table of its jobs so far.
    assert f"the sweep was stopped; its jobs so far:\nsweep of 2 jobs in {sweep}: 1 interrupted, 1 no summary" in stdout, stdout[-2000:]
    never = [line for line in stderr.splitlines() if line.startswith("job 1 (") and line.endswith("has no folder: it never started")]
    assert len(never) == 1 and "optim.lr=0.02" in never[0], stderr[-2000:]


def test_ctrl_c_stops_quietly_with_a_summary(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    # Ctrl-C signals the terminal's whole foreground process group: the parent and every agent.
    process = start([*ENDLESS, f"hydra.run.dir={run_dir}"], tmp_path, new_session=True)
    pids = wait_for_training(process, run_dir)
    os.killpg(process.pid, signal.SIGINT)
    _, stderr, _ = finish(process, timeout=40)
    assert process.returncode == 128 + signal.SIGINT, stderr[-3000:]
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr[-3000:]
    assert_all_gone(pids)
    assert summary(run_dir)["status"] == "interrupted"


def test_a_stopped_agent_ends_the_run_within_the_timeout_naming_it(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    timeout_s = 10
    process = start([*ENDLESS, f"comm.timeout_s={timeout_s}", "checkpoint.enabled=false", f"hydra.run.dir={run_dir}"], tmp_path)
    pids = wait_for_training(process, run_dir)
    os.kill(pids[2], signal.SIGSTOP)
    try:
        _, _, seconds = finish(process, timeout=timeout_s + 40)
    finally:
        with contextlib.suppress(ProcessLookupError):  # the parent has normally killed it already
            os.kill(pids[2], signal.SIGKILL)
    assert process.returncode == 1
    assert seconds < timeout_s + 8, f"the run took {seconds:.1f} s to end"
    error = summary(run_dir)["error"]
    assert error.startswith(f"run failed: agent 2 (pid {pids[2]}) stopped responding"), error
    assert "stopped, e.g. by SIGSTOP" in error
    assert_all_gone(pids)


def _final_params(run_dir: Path, agents: int = 3) -> list[torch.Tensor]:
    folder = run_dir / "checkpoints" / json.loads((run_dir / "checkpoints" / "latest.json").read_text())["dir"]
    return [torch.load(folder / f"agent_{rank:03d}.pt", weights_only=True)["params"] for rank in range(agents)]


def _rows(run_dir: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if k not in TIMING_KEYS} for row in rows]


def test_requeue_round_trip_ends_where_an_uninterrupted_run_ends(tmp_path: Path) -> None:
    # log_every=1: the checkpoint request is honoured at the very next step, so it lands mid-epoch;
    # consensus_every: the epoch's consensus samples taken before the stop must survive it.
    args = [*TINY, "train.steps_per_epoch=100", "train.log_every=1", "train.epochs=4", "train.consensus_every=10"]
    job = tmp_path / "job"
    first = start([*args, f"hydra.run.dir={job}"], tmp_path)
    wait_for_training(first, job)
    first.send_signal(signal.SIGUSR1)  # what Slurm's --signal=USR1@120 sends before the time limit
    _, stderr, _ = finish(first, timeout=60)
    assert first.returncode == 75, stderr[-3000:]
    latest = json.loads((job / "checkpoints" / "latest.json").read_text())
    assert latest["step"] > 0, latest  # a mid-epoch checkpoint
    assert summary(job)["status"] == "interrupted" and summary(job)["stopped_by"] == "SIGUSR1"
    # Its bytes are those sent up to the stop, as its per-round counters say (not the last epoch end's).
    stopped = summary(job)
    assert stopped["mb_sent_per_agent"] * 1e6 == pytest.approx(sum(stopped["bytes_sent_by_round"].values()))
    assert stopped["bytes_sent_per_step"] * (latest["epoch"] * 100 + latest["step"]) == pytest.approx(stopped["mb_sent_per_agent"] * 1e6)
    assert all(agent["test_accuracy"] is None for agent in stopped["per_agent"])  # not measured mid-epoch

    # The requeued job: the same command line, SLURM_RESTART_COUNT=1, so it resumes on its own.
    requeued = start([*args, f"hydra.run.dir={job}"], tmp_path, env={**os.environ, "SLURM_RESTART_COUNT": "1"})
    out, err, _ = finish(requeued, timeout=120)
    assert requeued.returncode == 0, err[-3000:]
    assert f"step {latest['step']}/100" in out and summary(job)["status"] == "completed"

    reference = tmp_path / "reference"
    uninterrupted = subprocess.run([sys.executable, "-m", "cgatrain", *args, f"hydra.run.dir={reference}"], cwd=tmp_path, capture_output=True, text=True, check=False, timeout=120)
    assert uninterrupted.returncode == 0, uninterrupted.stderr[-3000:]
    for rank, (expected, got) in enumerate(zip(_final_params(reference), _final_params(job))):
        assert torch.equal(expected, got), f"agent {rank} differs after the requeue"
    assert _rows(job) == _rows(reference)


def srun_tasks(cwd: Path, args: list[str], tasks: int = 2, started: int | None = None, port: int | None = None,
               job_id: str = "5151") -> list[subprocess.Popen[str]]:
    """`srun -n tasks python -m cgatrain ARGS` as Slurm would start it, on this machine; only the first `started`
    tasks when given (the others never start); rank 0's store on `port` (a free one by default)."""
    import socket

    if port is None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
    processes = []
    for rank in range(tasks if started is None else started):
        env = {**os.environ, "SLURM_PROCID": str(rank), "SLURM_NTASKS": str(tasks), "SLURM_LOCALID": str(rank), "SLURM_STEP_ID": "0",
               "SLURM_JOB_ID": job_id, "SLURM_JOB_NODELIST": "localhost", "MASTER_PORT": str(port)}
        processes.append(start(args, cwd, env=env))
    return processes


SRUN_ARGS = [arg for arg in ENDLESS if not arg.startswith("agents=")]


def test_sigterm_to_each_srun_task_stops_the_run_with_a_checkpoint(tmp_path: Path) -> None:
    tasks = srun_tasks(tmp_path, SRUN_ARGS)
    run_dir = tmp_path / "outputs" / "slurm" / "5151.0"
    wait_for_training(tasks[0], run_dir)
    for task in tasks:
        task.send_signal(signal.SIGTERM)
    results = [finish(task, timeout=40) for task in tasks]
    assert [task.returncode for task in tasks] == [143, 143], [err[-2000:] for _, err, _ in results]
    result = summary(run_dir)
    assert result["status"] == "interrupted" and (tmp_path / result["checkpoint"]).is_dir()
    assert "resume=outputs/slurm/5151.0" in results[0][1]


def test_a_stopped_srun_task_is_named_by_the_agent_that_gave_up(tmp_path: Path) -> None:
    timeout_s = 10
    tasks = srun_tasks(tmp_path, [*SRUN_ARGS, f"comm.timeout_s={timeout_s}", "checkpoint.enabled=false"])
    run_dir = tmp_path / "outputs" / "slurm" / "5151.0"
    pids = wait_for_training(tasks[0], run_dir)
    os.kill(pids[1], signal.SIGSTOP)
    try:
        _, stderr, seconds = finish(tasks[0], timeout=timeout_s + 40)
    finally:
        tasks[1].kill()  # what srun --kill-on-bad-exit does once rank 0 failed
        tasks[1].communicate()
    assert tasks[0].returncode != 0 and seconds < timeout_s + 10, f"{seconds:.1f} s"
    assert "agent 0: agent 1 stopped responding (no liveness beat for" in stderr, stderr[-3000:]


def group_members(pgid: int) -> list[int]:
    """Pids of the live (non-zombie) processes in process group `pgid`."""
    members = []
    for entry in Path("/proc").iterdir():
        fields = _stat_fields(int(entry.name)) if entry.name.isdigit() else []
        if len(fields) > 2 and fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def assert_group_gone(pgid: int, within: float = 10) -> None:
    """Nothing of a process group this test created outlives the run (killed if it does)."""
    deadline = time.monotonic() + within
    while group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = group_members(pgid)
    if left:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
    assert not left, f"processes {left} outlived the run"


@pytest.mark.parametrize(("stop", "status"), [(signal.SIGTERM, 143), (signal.SIGUSR1, 75)], ids=["SIGTERM", "SIGUSR1"])
def test_a_signal_to_the_whole_process_group_stops_cleanly(tmp_path: Path, stop: signal.Signals, status: int) -> None:
    run_dir = tmp_path / "run"
    # scancel, docker stop, systemd and IDEs signal every process: the parent, its helpers, every agent.
    process = start([*ENDLESS, f"hydra.run.dir={run_dir}"], tmp_path, new_session=True)
    pids = wait_for_training(process, run_dir)
    os.killpg(process.pid, stop)
    _, stderr, _ = finish(process, timeout=40)
    assert process.returncode == status, stderr[-3000:]
    assert "run failed" not in stderr and "Traceback" not in stderr, stderr[-3000:]
    assert_all_gone(pids)
    assert_group_gone(process.pid)
    result = summary(run_dir)
    assert result["status"] == "interrupted" and result["stopped_by"] == stop.name
    assert result["checkpoint"] and Path(result["checkpoint"]).is_dir()


def test_a_group_signal_then_one_to_the_command_is_one_stop_with_a_checkpoint(tmp_path: Path) -> None:
    """scancel and a batch script's trap, or `timeout`, signal the group and then cgatrain, milliseconds apart."""
    run_dir = tmp_path / "run"
    process = start([*ENDLESS, f"hydra.run.dir={run_dir}"], tmp_path, new_session=True)
    pids = wait_for_training(process, run_dir)
    os.kill(pids[2], signal.SIGSTOP)  # holds the others at their next exchange: the stop takes a while
    os.killpg(process.pid, signal.SIGTERM)
    time.sleep(0.05)
    os.kill(process.pid, signal.SIGTERM)
    time.sleep(1.5)
    os.kill(pids[2], signal.SIGCONT)
    _, stderr, _ = finish(process, timeout=40)
    assert process.returncode == 143, stderr[-3000:]
    assert_all_gone(pids)
    result = summary(run_dir)
    # Rank 0 wrote it after the agreed step's checkpoint: the agents were not killed by the second signal.
    assert result["status"] == "interrupted" and result["agents"] == 3 and Path(result["checkpoint"]).is_dir(), result


def test_a_second_ctrl_c_kills_the_agents_and_keeps_the_last_checkpoint(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    process = start([*ENDLESS, f"hydra.run.dir={run_dir}"], tmp_path, new_session=True)
    pids = wait_for_training(process, run_dir)
    deadline = time.monotonic() + 30
    while lifecycle.last_checkpoint(run_dir) is None:
        assert time.monotonic() < deadline, "no epoch checkpoint was written"
        time.sleep(0.1)
    saved = lifecycle.last_checkpoint(run_dir)
    # A stopped agent keeps the others from finishing the first stop, so the second Ctrl-C must act.
    os.kill(pids[2], signal.SIGSTOP)
    os.killpg(process.pid, signal.SIGINT)
    time.sleep(1)
    os.killpg(process.pid, signal.SIGINT)
    _, stderr, _ = finish(process, timeout=40)
    assert process.returncode == 128 + signal.SIGINT, stderr[-3000:]
    assert "run failed" not in stderr and "Traceback" not in stderr, stderr[-3000:]
    assert_all_gone(pids)
    assert_group_gone(process.pid)
    result = summary(run_dir)
    assert result["status"] == "interrupted" and result["stopped_by"] == "SIGINT" and result["epochs_completed"] >= 1, result
    assert result["checkpoint"] and Path(result["checkpoint"]).is_dir()
    hint = [line for line in stderr.splitlines() if line.startswith("interrupted by SIGINT") and f"resume={run_dir}" in line]
    assert len(hint) == 1 and str(run_dir / "checkpoints") in hint[0], stderr[-3000:]
    assert "leaked semaphore" not in stderr, stderr[-3000:]
    assert Path(result["checkpoint"]) >= saved


def _fork_server_started(pgid: int) -> bool:
    for pid in group_members(pgid):
        with contextlib.suppress(OSError):
            if b"multiprocessing.forkserver" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return True
    return False




@pytest.mark.parametrize("moment", [
    "while-importing",
    "while-the-fork-server-starts",
])
def test_ctrl_c_before_the_agents_are_up_exits_130_without_a_traceback(tmp_path: Path, moment: str) -> None:
    run_dir = tmp_path / "run"
    process = start([*ENDLESS, f"hydra.run.dir={run_dir}"], tmp_path, new_session=True)
    deadline = time.monotonic() + 60
    if moment == "while-importing":
        time.sleep(1)
    else:  # the fork server imports torch for a second or more before any agent exists
        while not _fork_server_started(process.pid):
            assert process.poll() is None and time.monotonic() < deadline, "the fork server never started"
            time.sleep(0.02)
        time.sleep(0.3)  # into its torch import (the parent ignores signals for the milliseconds it takes to start it)
    os.killpg(process.pid, signal.SIGINT)
    _, stderr, _ = finish(process, timeout=40)
    assert process.returncode == 128 + signal.SIGINT, stderr[-3000:]
    assert "Traceback" not in stderr and "run failed" not in stderr, stderr[-3000:]
    assert_group_gone(process.pid)
    assert not (run_dir / "summary.json").exists() or summary(run_dir)["status"] == "interrupted"


def test_a_stop_before_any_summary_is_recorded_as_interrupted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Agents killed before they wrote summary.json (a second Ctrl-C): the parent writes the interrupted record."""
    from cgatrain import cli, launcher
    from cgatrain.compose import compose_config
    from cgatrain.reporting.schema import load_summary

    monkeypatch.setattr(launcher, "spawn_agents", lambda cfg, run_dir: "SIGINT")
    with pytest.raises(SystemExit) as stopped:
        cli.run_job(compose_config(["train.epochs=1"]), tmp_path / "run")
    assert stopped.value.code == 130
    summary = load_summary(tmp_path / "run")
    assert summary is not None and summary.status == "interrupted" and summary.extra["stopped_by"] == "SIGINT"


@pytest.mark.parametrize("status", ["completed", "diverged"])
def test_a_stop_signal_after_the_last_step_leaves_the_runs_own_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                      capsys: pytest.CaptureFixture[str], status: str) -> None:
    """A Ctrl-C during the final evaluation or checkpoint: the agents finished and wrote their summary; it stands."""
    from cgatrain import cli, launcher
    from cgatrain.compose import compose_config
    from cgatrain.reporting.schema import RunSummary, load_summary, write_summary

    def finished_then_signalled(cfg: dict, run_dir: Path) -> str:
        write_summary(run_dir, RunSummary(status=status, algorithm="cga", run_dir=str(run_dir), epochs_completed=1,
                                          consensus_test_accuracy=0.5 if status == "completed" else None))
        return "SIGINT"

    monkeypatch.setattr(launcher, "spawn_agents", finished_then_signalled)
    with pytest.raises(SystemExit) as stopped:
        cli.run_job(compose_config(["train.epochs=1"]), tmp_path / "run")
    assert stopped.value.code == 130  # the command was interrupted (a sweep stops), the run was not
    summary = load_summary(tmp_path / "run")
    assert summary.status == status and summary.epochs_completed == 1 and "stopped_by" not in summary.extra
    err = capsys.readouterr().err
    assert f"SIGINT came after the run's last step: it {status}; stopping here" in err and "continue with" not in err
    # Slurm's SIGUSR1 after a single run's last step: exit 0, so the batch script does not requeue a finished run;
    # in a sweep, exit 75 requeues the sweep's remaining jobs.
    monkeypatch.setattr(launcher, "spawn_agents", lambda cfg, run_dir: (finished_then_signalled(cfg, run_dir), "SIGUSR1")[1])
    assert cli.run_job(compose_config(["train.epochs=1"]), tmp_path / "single") is True
    with pytest.raises(SystemExit) as requeued:
        cli.run_job(compose_config(["train.epochs=1"]), tmp_path / "job", sweep_group="multirun/x")
    assert requeued.value.code == 75 and load_summary(tmp_path / "job").status == status
