"""Launcher detection: torchrun and srun variables map to rank, world size and local rank."""

from __future__ import annotations

import pytest

from cgatrain.comm import detect_launch_env, slurm_first_host


@pytest.mark.parametrize(
    ("nodelist", "first"),
    [("node07", "node07"), ("gpu[003-005,009]", "gpu003"), ("gpu[12,14],cpu01", "gpu12"), ("a-b[1-2]", "a-b1"), ("n1,n2", "n1")],
)
def test_slurm_first_host(nodelist: str, first: str) -> None:
    assert slurm_first_host(nodelist) == first


def test_plain_process_is_not_launched() -> None:
    assert detect_launch_env({}) is None


def test_torchrun_variables() -> None:
    env = detect_launch_env({"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2", "TORCHELASTIC_RUN_ID": "abc"})
    assert env is not None and (env.rank, env.world_size, env.local_rank, env.local_world_size) == (3, 8, 1, 2)
    assert env.launcher == "torchrun" and env.run_id == "abc"


def test_srun_variables() -> None:
    slurm = {"SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1", "SLURM_STEP_ID": "0", "SLURM_JOB_ID": "991",
             "SLURM_JOB_NODELIST": "gpu[010-013]", "SLURM_STEP_TASKS_PER_NODE": "4(x2)", "SLURM_NODEID": "1"}
    env = detect_launch_env(slurm)
    assert env is not None and (env.rank, env.world_size, env.local_rank, env.local_world_size) == (5, 8, 1, 4)
    assert env.launcher == "slurm" and env.master_addr == "gpu010" and env.run_id == "991.0"
    assert env.master_port == 15000 + 991 % 20000


def test_batch_script_without_srun_spawns_itself() -> None:
    batch = {"SLURM_PROCID": "0", "SLURM_NTASKS": "1", "SLURM_JOB_ID": "7", "SLURM_JOB_NODELIST": "n1"}
    assert detect_launch_env(batch) is None
    assert detect_launch_env({**batch, "SLURM_STEP_ID": "4294967294"}) is None
    assert detect_launch_env({**batch, "SLURM_STEP_ID": "0", "CGATRAIN_LAUNCHER": "spawn"}) is None


def test_srun_heterogeneous_layout_counts_tasks_on_this_node() -> None:
    slurm = {"SLURM_PROCID": "4", "SLURM_NTASKS": "5", "SLURM_LOCALID": "1", "SLURM_STEP_ID": "0", "SLURM_JOB_ID": "5",
             "SLURM_JOB_NODELIST": "n[1-2]", "SLURM_STEP_TASKS_PER_NODE": "3,2", "SLURM_NODEID": "1"}
    env = detect_launch_env(slurm)
    assert env is not None and env.local_world_size == 2
