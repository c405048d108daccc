"""The sbatch scripts' requeue logic, run with stand-in `srun` and `scontrol` commands: SIGUSR1
(what `#SBATCH --signal=USR1@120` sends) ends in a checkpoint and `scontrol requeue <job>`, and the
requeued job resumes from its own run directory by itself."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from test_lifecycle import finish, no_agent_left_behind, wait_for_training  # noqa: F401 (no_agent_left_behind: autouse fixture)

pytestmark = [pytest.mark.multiproc, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[1]
TINY = ["model=mlp", "partition=iid", "train.batch_size=64", "train.progress_bar=false", "comm.timeout_s=30",
        "train.steps_per_epoch=100", "train.log_every=1", "train.epochs=4"]  # 300 steps left when the signal comes


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def stand_ins(folder: Path) -> Path:
    """`scontrol` that records its arguments, `srun` that starts SLURM_NTASKS tasks and returns the worst status."""
    folder.mkdir()
    (folder / "scontrol").write_text(f'#!/bin/bash\necho "$@" >> {folder}/scontrol.log\n')
    (folder / "srun").write_text(
        '#!/bin/bash\nwhile [[ "$1" == --* ]]; do shift; done\npids=()\n'
        'for ((i = 0; i < SLURM_NTASKS; i++)); do SLURM_PROCID=$i SLURM_LOCALID=$i SLURM_STEP_ID=0 "$@" & pids+=($!); done\n'
        'status=0\nfor p in "${pids[@]}"; do wait "$p"; s=$?; if [ "$s" -gt "$status" ]; then status=$s; fi; done\nexit "$status"\n'
    )
    (folder / "python").write_text(f'#!/bin/bash\nexec {sys.executable} "$@"\n')  # this venv's python
    for name in ("scontrol", "srun", "python"):
        (folder / name).chmod(0o755)
    return folder


def slurm_env(bin_dir: Path, restarts: int) -> dict[str, str]:
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(ROOT), "SLURM_JOB_ID": "777",
            "SLURM_NTASKS": "2", "SLURM_JOB_NODELIST": "localhost", "SLURM_CPUS_PER_TASK": "1", "MASTER_PORT": str(_free_port()),
            "SLURM_RESTART_COUNT": str(restarts)}


def test_cgatrain_sbatch_requeues_on_sigusr1_and_the_requeued_job_resumes(tmp_path: Path) -> None:
    bin_dir = stand_ins(tmp_path / "bin")
    script = [str(ROOT / "slurm" / "cgatrain.sbatch"), "algorithm=dpmsgd", *TINY]
    run_dir = tmp_path / "outputs" / "slurm" / "777.0"
    job = subprocess.Popen(["bash", *script], cwd=tmp_path, env=slurm_env(bin_dir, 0), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for agent in wait_for_training(job, run_dir):
        os.kill(agent, signal.SIGUSR1)  # Slurm signals every task of every step
    _, err, _ = finish(job, timeout=60)
    assert job.returncode == 0, err[-3000:]
    assert (bin_dir / "scontrol.log").read_text().split() == ["requeue", "777"]
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "interrupted"

    again = subprocess.run(["bash", *script], cwd=tmp_path, env=slurm_env(bin_dir, 1), capture_output=True, text=True, check=False, timeout=150)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resumed from" in again.stdout
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "completed"
    assert len((bin_dir / "scontrol.log").read_text().splitlines()) == 1


def test_sweep_sbatch_forwards_sigusr1_and_requeues(tmp_path: Path) -> None:
    bin_dir = stand_ins(tmp_path / "bin")
    env = slurm_env(bin_dir, 0)  # no SLURM_PROCID: the batch shell of a sweep is no srun task
    script = [str(ROOT / "slurm" / "sweep.sbatch"), "agents=2", "algorithm=dpsgd", *TINY, "seed=0,1"]
    job = subprocess.Popen(["bash", *script], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sweep = tmp_path / "multirun" / "slurm-777"
    wait_for_training(job, sweep / "0")
    job.send_signal(signal.SIGUSR1)  # --signal=B:USR1 signals the batch shell only
    _, err, _ = finish(job, timeout=60)
    assert job.returncode == 0, err[-3000:]
    assert (bin_dir / "scontrol.log").read_text().split() == ["requeue", "777"]
    assert json.loads((sweep / "0" / "summary.json").read_text())["stopped_by"] == "SIGUSR1"
    assert not (sweep / "1").exists()

    again = subprocess.run(["bash", *script], cwd=tmp_path, env=slurm_env(bin_dir, 1), capture_output=True, text=True, check=False, timeout=200)
    assert again.returncode == 0, again.stderr[-3000:]
    assert [json.loads((sweep / job_id / "summary.json").read_text())["status"] for job_id in ("0", "1")] == ["completed", "completed"]


@pytest.mark.parametrize("script", ["cgatrain.sbatch", "sweep.sbatch"])
def test_sbatch_script_run_outside_slurm_refuses_before_starting_anything(tmp_path: Path, script: str) -> None:
    bin_dir = stand_ins(tmp_path / "bin")
    for name in ("srun", "python"):  # record any start: nothing may start outside a job
        (bin_dir / name).write_text(f'#!/bin/bash\necho {name} >> {bin_dir}/started.log\n')
    env = {key: value for key, value in slurm_env(bin_dir, 0).items() if not key.startswith("SLURM_")}
    done = subprocess.run(["bash", str(ROOT / "slurm" / script), "algorithm=dpmsgd"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 2, done.stderr
    assert "not inside a Slurm job (SLURM_JOB_ID is unset); submit it with: sbatch" in done.stderr
    assert "unbound variable" not in done.stderr and not (bin_dir / "started.log").exists()
