"""Sweeps through hydra-submitit-launcher (local processes; the Slurm job script) and wandb offline runs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from test_cli import failing_script

from cgatrain.compose import compose_config
from cgatrain.reporting.schema import load_summary

TINY = ["agents=2", "model=mlp", "partition=iid", "train.epochs=1", "train.batch_size=64", "train.steps_per_epoch=2",
        "train.progress_bar=false", "checkpoint.enabled=false", "comm.timeout_s=30"]


def cgatrain(*args: str, cwd: Path, timeout: float = 200, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cgatrain", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env, check=False)


@pytest.mark.multiproc
@pytest.mark.timeout(300)
def test_submitit_local_sweep_runs_each_point_as_its_own_job(tmp_path: Path) -> None:
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    sweep = tmp_path / "sweep"
    result = cgatrain("-m", "hydra/launcher=submitit_local", "algorithm=dpsgd,local", *TINY, f"hydra.sweep.dir={sweep}", cwd=tmp_path, timeout=280)
    assert result.returncode == 0, result.stderr
    for job, algorithm in enumerate(("dpsgd", "local")):
        summary = load_summary(sweep / str(job))
        assert summary is not None and summary.status == "completed" and summary.algorithm == algorithm and summary.epochs_completed == 1
    assert len(list((sweep / ".submitit").glob("*/*_result.pkl"))) == 2  # two submitit jobs, one per sweep point


@pytest.mark.multiproc
@pytest.mark.timeout(300)
def test_a_failed_submitit_job_fails_the_sweep_after_every_job_ran(tmp_path: Path) -> None:
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    sweep, script = tmp_path / "sweep", failing_script(tmp_path / "user")  # boom: its agents fail in their second step
    result = subprocess.run([*script, "-m", "hydra/launcher=submitit_local", "algorithm=dpsgd", "algorithm.name=dpsgd,boom", *TINY,
                             f"hydra.sweep.dir={sweep}"], cwd=tmp_path, capture_output=True, text=True, timeout=280)
    # The parent reads the jobs' summary.json files: a table, the failed job and why, exit 1, no traceback.
    assert result.returncode == 1 and f"1 of the sweep's jobs failed: {sweep / '1'}" in result.stderr, result.stderr[-3000:]
    assert "job 1 failed: run failed: agent " in result.stderr and "Traceback" not in result.stderr
    assert f"sweep of 2 jobs in {sweep}: 1 completed, 1 failed" in result.stdout
    assert re.search(r"\n +0  completed +1 .* algorithm.name=dpsgd\n +1  failed +0 .* algorithm.name=boom\n", result.stdout), result.stdout
    completed, failed = load_summary(sweep / "0"), load_summary(sweep / "1")
    assert completed is not None and completed.status == "completed"
    assert failed is not None and failed.status == "failed" and "boom at step 1" in (failed.error or "")


def test_submitit_slurm_job_takes_tasks_gpus_and_time_from_the_slurm_group(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    import submitit
    from hydra.utils import instantiate
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

    fake_bin = tmp_path / "bin"  # submitit's Slurm executor only needs to find srun to write the job script
    fake_bin.mkdir()
    (fake_bin / "srun").write_text("#!/bin/sh\nexit 0\n")
    (fake_bin / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake_bin}{os.pathsep}{os.environ['PATH']}")
    overrides = ["hydra/launcher=submitit_slurm", "agents=8", "slurm.nodes=2", "slurm.partition=gpu", "slurm.gpus_per_node=4",
                 "slurm.time=90", "slurm.account=proj1", "comm.threads_per_agent=2", f"hydra.sweep.dir={tmp_path}/sweep"]
    cfg = compose_config(overrides, return_hydra_config=True)
    launcher = instantiate(cfg.hydra.launcher)
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    params = {k if k in base else f"slurm_{k}": v for k, v in launcher.params.items() if k not in ("submitit_folder", "max_num_timeout")}
    executor = submitit.AutoExecutor(folder=str(tmp_path / "submitit"), cluster="slurm")
    executor.update_parameters(**params)
    script = executor._executor._make_submission_file_text("python -m cgatrain", "uid")
    for line in ("--nodes=2", "--ntasks-per-node=4", "--gpus-per-node=4", "--time=90", "--partition=gpu", "--account=proj1", "--cpus-per-task=2"):
        assert f"#SBATCH {line}\n" in script
    assert "\nsrun " in script


def test_agents_that_do_not_split_over_slurm_nodes_are_refused() -> None:
    cfg = compose_config(["hydra/launcher=submitit_slurm", "agents=5", "slurm.nodes=2"], return_hydra_config=True)
    with pytest.raises(Exception, match=r"agents=5 cannot be spread evenly over slurm.nodes=2"):
        OmegaConf.to_container(cfg.hydra.launcher, resolve=True)


@pytest.mark.multiproc
@pytest.mark.timeout(300)
def test_wandb_offline_makes_one_run_per_experiment_grouped_by_sweep_with_config_tags(tmp_path: Path) -> None:
    pytest.importorskip("wandb")
    sweep = tmp_path / "mysweep"
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    result = cgatrain("-m", "algorithm=dpsgd,local", *TINY, "train.epochs=2", "logger.wandb.mode=offline", f"hydra.sweep.dir={sweep}",
                      cwd=tmp_path, env=env, timeout=280)
    assert result.returncode == 0, result.stderr
    for job, algorithm in enumerate(("dpsgd", "local")):
        runs = list((sweep / str(job) / "wandb").glob("offline-run-*/run-*.wandb"))
        assert len(runs) == 1, f"job {job}: {runs}"
        # The run log is wandb's binary record stream; its protobuf strings are stored verbatim.
        records = runs[0].read_bytes()
        for expected in (b"mysweep", f"algorithm={algorithm}".encode(), b"agents=2", b"train_loss", b"consensus_test_accuracy",
                         b"mb_sent_per_agent", b"agent_1/test_accuracy", b"completed"):
            assert expected in records, f"job {job}: {expected!r} missing from the wandb run"
