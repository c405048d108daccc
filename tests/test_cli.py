"""`cgatrain` run as a user runs it: a subprocess that spawns real agent processes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

pytestmark = [pytest.mark.multiproc, pytest.mark.timeout(240)]

TINY = ["model=mlp", "partition=iid", "train.batch_size=64", "train.steps_per_epoch=4", "train.progress_bar=false", "comm.timeout_s=30"]


def cgatrain(*args: str, cwd: Path, timeout: float = 150, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cgatrain", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def final_params(run_dir: Path, epoch: int, agents: int) -> list[torch.Tensor]:
    folder = run_dir / "checkpoints" / f"epoch_{epoch:04d}"
    return [torch.load(folder / f"agent_{r:03d}.pt", weights_only=True)["params"] for r in range(agents)]


def test_run_writes_files_and_resume_matches_uninterrupted_run(tmp_path: Path) -> None:
    common = ["agents=3", "algorithm=dpmsgd", *TINY]
    full = cgatrain(*common, "train.epochs=3", f"hydra.run.dir={tmp_path}/full", cwd=tmp_path)
    assert full.returncode == 0, full.stderr
    assert "avg-model acc" in full.stdout and f"run files: {tmp_path}/full" in full.stdout
    first = cgatrain(*common, "train.epochs=2", f"hydra.run.dir={tmp_path}/first", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    resumed = cgatrain(*common, "train.epochs=3", f"resume={tmp_path}/first", f"hydra.run.dir={tmp_path}/resumed", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from" in resumed.stdout

    run = tmp_path / "full"
    assert (run / "config.yaml").exists() and (run / "agents.json").exists()
    assert json.loads((run / "checkpoints" / "latest.json").read_text())["epoch"] == 3
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3]
    result = summary(run)
    assert result["status"] == "completed" and 0.0 <= result["consensus_test_accuracy"] <= 1.0
    assert result["agent_test_accuracy_min"] <= result["agent_test_accuracy_mean"]
    assert result["mb_sent_per_agent"] > 0 and result["final_train_loss"] == records[-1]["train_loss"]

    for rank, (uninterrupted, continued) in enumerate(zip(final_params(run, 3, 3), final_params(tmp_path / "resumed", 3, 3))):
        assert torch.equal(uninterrupted, continued), f"agent {rank} differs after resume"
    resumed_records = [json.loads(line) for line in (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in resumed_records] == [1, 2, 3]
    assert summary(tmp_path / "resumed")["mb_sent_per_agent"] == pytest.approx(result["mb_sent_per_agent"])


def test_a_fresh_run_replaces_an_earlier_runs_metrics_and_never_starts_over_its_checkpoints(tmp_path: Path) -> None:
    run_dir, args = tmp_path / "run", ["agents=2", "algorithm=dpsgd", *TINY, "train.epochs=1"]
    for _ in range(2):
        assert cgatrain(*args, "checkpoint.enabled=false", f"hydra.run.dir={run_dir}", cwd=tmp_path).returncode == 0
    assert [json.loads(line)["epoch"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()] == [1]

    first = cgatrain(*args, f"hydra.run.dir={run_dir}", cwd=tmp_path)  # now with a checkpoint
    assert first.returncode == 0, first.stderr
    again = cgatrain(*args, "algorithm=cga", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert again.returncode != 0 and "holds an earlier run's checkpoint: continue it with resume=auto" in again.stderr, again.stderr
    record = summary(run_dir)  # the earlier run's, with the refusal beside it
    assert record["status"] == "completed" and record["algorithm"] == "dpsgd" and "resume=auto" in record["refused"]
    assert OmegaConf.load(run_dir / "config.yaml").algorithm.name == "dpsgd"


def test_killed_agent_fails_the_run_naming_it(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    args = ["agents=3", "algorithm=dpsgd", *TINY, "train.epochs=100000", f"hydra.run.dir={run_dir}"]
    process = subprocess.Popen([sys.executable, "-m", "cgatrain", *args], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while not (run_dir / "checkpoints" / "latest.json").exists():  # written after the epoch's metrics
            assert time.monotonic() < deadline and process.poll() is None, "the run never got going"
            time.sleep(0.2)
        victim = json.loads((run_dir / "agents.json").read_text())["agents"][1]["pid"]
        os.kill(victim, signal.SIGKILL)
        _stdout, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode != 0
    assert "agent 1" in stderr and "SIGKILL" in stderr, stderr[-2000:]
    record = summary(run_dir)
    assert record["status"] == "failed"
    # Nothing is lost: the record and the message say where the last checkpoint is and how to go on from it.
    assert record["epochs_completed"] >= 1 and record["checkpoint"].endswith(f"epoch_{record['epochs_completed']:04d}")
    assert f"continue with: cgatrain resume={run_dir}" in stderr and record["resume"] in stderr


def test_an_agent_killed_under_srun_leaves_a_failed_record_with_its_checkpoint(tmp_path: Path) -> None:
    from test_lifecycle import srun_tasks

    run_dir = tmp_path / "outputs" / "slurm" / "4343.0"
    processes = srun_tasks(tmp_path, ["algorithm=dpsgd", *TINY, "train.epochs=100000"], tasks=3, job_id="4343")
    try:
        deadline = time.monotonic() + 90
        while not (run_dir / "checkpoints" / "latest.json").exists():
            assert time.monotonic() < deadline and all(p.poll() is None for p in processes), "the run never got going"
            time.sleep(0.2)
        processes[1].kill()  # rank 0 hosts the store: the others lose a neighbour, not the rendezvous
        outputs = [process.communicate(timeout=90) for process in processes]
    finally:
        for process in processes:
            process.kill()
    survivors = [processes[0], processes[2]]
    assert [p.returncode for p in survivors] == [1, 1], [out[1][-1500:] for out in outputs]
    for _stdout, stderr in (outputs[0], outputs[2]):
        assert stderr.count("Traceback (most recent call last)") <= 2, stderr  # run_agent's, with its cause; not again from main()
        assert "error: run failed: agent " in stderr and "continue with: the same slurm command plus resume=" in stderr, stderr[-1500:]
    record = summary(run_dir)
    assert record["status"] == "failed" and record["error"].startswith("run failed: agent "), record
    assert record["epochs_completed"] >= 1 and (tmp_path / record["checkpoint"]).is_dir()  # relative, as the run dir is


def failing_script(folder: Path) -> list[str]:
    """A user's script whose algorithm `boom` (D-PSGD with one more check) raises in its second step.

    A failure only the agents can meet: the parent's checks of data, model and options all pass.
    """
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "boom_plugin.py").write_text(
        "from cgatrain.algorithms import register\n"
        "from cgatrain.algorithms.dpsgd import DPSGD\n\n\n"
        "@register\n"
        "class Boom(DPSGD):\n"
        "    name = 'boom'\n\n"
        "    def step(self, lr, step, epoch):\n"
        "        if step >= 1:\n"
        "            raise RuntimeError(f'boom at step {step}')\n"
        "        return super().step(lr, step, epoch)\n")
    (folder / "run.py").write_text("import boom_plugin  # noqa: F401\nfrom cgatrain.entry import main\n\n"
                                   "if __name__ == '__main__':\n    main()\n")
    return [sys.executable, str(folder / "run.py")]


def test_multirun_sweep_survives_diverged_and_failed_jobs(tmp_path: Path) -> None:
    sweep, script = tmp_path / "sweep", failing_script(tmp_path / "user")
    result = subprocess.run([*script, "-m", "agents=2", *TINY, "algorithm=dpsgd", "train.epochs=2", "optim.lr=0.01,1e9",
                             "algorithm.name=dpsgd,boom", "hydra.sweep.dir=sweep"],  # relative, as the default multirun/... is
                            cwd=tmp_path, capture_output=True, text=True, timeout=150)
    statuses = [summary(sweep / str(job))["status"] for job in range(4)]
    assert statuses == ["completed", "failed", "diverged", "failed"], result.stderr[-3000:]
    assert "RuntimeError: boom at step 1" in summary(sweep / "1")["error"] and "agent" in summary(sweep / "1")["error"]
    assert "status: diverged in epoch " in result.stdout  # not "after 0 epochs"
    assert summary(sweep / "2")["mb_sent_per_agent"] > 0 and summary(sweep / "2")["bytes_sent_per_step"] > 0  # it did send
    assert result.returncode == 1 and "2 of the sweep's jobs failed" in result.stderr  # reported at the end, after the sweep went on
    assert "sweep of 4 jobs in sweep: 1 completed, 2 failed, 1 diverged" in result.stdout  # the sweep's table
    assert f"2 of the sweep's jobs failed: {sweep / '1'}, {sweep / '3'}\n" in result.stderr  # each once
    assert "job 1 failed: run failed: agent " in result.stderr and "boom at step 1" in result.stderr


def test_a_sweep_with_an_invalid_job_starts_no_job(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    result = cgatrain("-m", "agents=2", *TINY, "optim.lr=0.01,-1", "+train.epoch=1,2", f"hydra.sweep.dir={sweep}", cwd=tmp_path, timeout=60)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "4 of 4 sweep jobs have an invalid config; no job was started" in result.stderr
    assert "job 1 (agents=2" in result.stderr and "optim.lr must be >= 0" in result.stderr
    assert "unknown config key train.epoch (did you mean train.epochs?)" in result.stderr
    assert not sweep.exists()


def test_single_run_config_errors_name_the_key_and_leave_no_run_dir(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = cgatrain("+optim.lrr=0.1", "partition=dirichlet", "partition.alpha=abc", f"hydra.run.dir={run_dir}", cwd=tmp_path, timeout=60)
    assert result.returncode == 2
    assert "unknown config key optim.lrr (did you mean optim.lr?)" in result.stderr
    assert "partition.alpha must be a number, got 'abc'" in result.stderr
    assert "job(s) failed" not in result.stderr and not run_dir.exists()


def test_help_lists_config_groups(tmp_path: Path) -> None:
    result = cgatrain("--help", cwd=tmp_path, timeout=60)
    assert result.returncode == 0
    for group in ("algorithm:", "topology:", "partition:", "data:", "model:", "dpmsgd", "bipartite"):
        assert group in result.stdout


def test_invalid_config_fails_before_any_agent_starts(tmp_path: Path) -> None:
    result = cgatrain("algorithm.name=nope", f"hydra.run.dir={tmp_path}/run", cwd=tmp_path, timeout=60)
    assert result.returncode != 0
    assert "unknown algorithm 'nope'" in result.stderr
    assert not (tmp_path / "run" / "agents.json").exists()


def test_torchrun_refuses_an_unknown_key_with_rank_0s_message(tmp_path: Path) -> None:
    torchrun = Path(sys.executable).with_name("torchrun")
    command = [str(torchrun), "--standalone", "--nproc-per-node", "2", "-m", "cgatrain", *TINY, "+train.epoch=1"]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert result.stderr.count("unknown config key train.epoch (did you mean train.epochs?)") == 1, result.stderr[-3000:]
    assert not (tmp_path / "outputs").exists()
    # --config-dir reaches the agents (its topology is found; only the unknown key is refused); other flags are refused once.
    (tmp_path / "conf" / "topology").mkdir(parents=True)
    (tmp_path / "conf" / "topology" / "tri.yaml").write_text("graph: complete\nweights: uniform\n")
    with_dir = subprocess.run([*command[:6], "--config-dir", str(tmp_path / "conf"), "topology=tri", *command[6:]], cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)
    assert with_dir.stderr.count("error: invalid config:\n  - unknown config key train.epoch") == 1, with_dir.stderr[-3000:]
    flags = subprocess.run([*command[:6], "--cfg", "job", *TINY], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert flags.returncode != 0 and flags.stderr.count("Hydra flags (-m, --cfg, ...) are not available under torchrun/srun") == 1


def test_torchrun_runs_one_agent_per_process_into_one_directory(tmp_path: Path) -> None:
    torchrun = Path(sys.executable).with_name("torchrun")
    command = [str(torchrun), "--standalone", "--nproc-per-node", "2", "-m", "cgatrain", "algorithm=dpsgd", *TINY, "train.epochs=1"]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=150)
    assert result.returncode == 0, result.stderr[-3000:]
    run_dirs = list((tmp_path / "outputs" / "torchrun").iterdir())
    assert len(run_dirs) == 1, run_dirs
    assert summary(run_dirs[0])["status"] == "completed" and summary(run_dirs[0])["agents"] == 2
    assert "status: completed after 1 epoch |" in result.stdout
    resumed = subprocess.run([*command[:-1], "train.epochs=2", f"resume={run_dirs[0]}"], cwd=tmp_path, capture_output=True, text=True, timeout=150)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert resumed.stdout.count("with its saved config") == 1 and "status: completed after 2 epochs |" in resumed.stdout  # rank 0 says it


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_srun_environment_maps_to_ranks(tmp_path: Path) -> None:
    port = str(_free_port())
    processes = []
    for rank in range(2):
        env = {**os.environ, "SLURM_PROCID": str(rank), "SLURM_NTASKS": "2", "SLURM_LOCALID": str(rank), "SLURM_STEP_ID": "0",
               "SLURM_JOB_ID": "4242", "SLURM_JOB_NODELIST": "localhost", "MASTER_PORT": port}
        args = [sys.executable, "-m", "cgatrain", "algorithm=dpsgd", *TINY, "train.epochs=1"]
        processes.append(subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = [process.communicate(timeout=150) for process in processes]
    assert all(process.returncode == 0 for process in processes), outputs
    assert [p.name for p in (tmp_path / "outputs" / "slurm").iterdir()] == ["4242.0"]
    assert summary(tmp_path / "outputs" / "slurm" / "4242.0")["agents"] == 2


def test_status_line_lists_only_the_files_the_run_wrote(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cgatrain.reporting.schema import RunSummary, write_summary
    from cgatrain.reporting.status_line import print_status

    write_summary(tmp_path, RunSummary(status="completed", epochs_completed=1, run_dir=str(tmp_path)))
    (tmp_path / "config.yaml").write_text("agents: 2\n")
    print_status(tmp_path)
    out = capsys.readouterr().out
    assert "status: completed after 1 epoch |" in out and f"run files: {tmp_path} (summary.json, config.yaml)" in out


def test_status_line_of_a_regression_run_shows_losses(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cgatrain.reporting.schema import RunSummary, write_summary
    from cgatrain.reporting.status_line import print_status

    write_summary(tmp_path, RunSummary(status="completed", epochs_completed=2, consensus_test_loss=2.5, final_train_loss=3.0, run_dir=str(tmp_path)))
    print_status(tmp_path)
    assert "status: completed after 2 epochs | averaged-model test loss 2.5 | final train loss 3 |" in capsys.readouterr().out


def test_version_and_a_mistyped_command(tmp_path: Path) -> None:
    version = cgatrain("--version", cwd=tmp_path, timeout=60)
    assert version.returncode == 0 and version.stdout.startswith("cgatrain 0.") and "torch " in version.stdout
    typo = cgatrain("reprot", "multirun", cwd=tmp_path, timeout=60)
    assert typo.returncode == 2 and "unknown command 'reprot' (did you mean `cgatrain report`?)" in typo.stderr
    assert "cgatrain report PATH" in cgatrain("--help", cwd=tmp_path, timeout=60).stdout


def test_ctrl_c_while_a_sweeps_jobs_run_elsewhere_offers_the_continuing_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """Under submitit the jobs stop with their checkpoints; the command must not claim nothing had started."""
    from cgatrain import cli
    from cgatrain.reporting import sweep

    def sweep_then_ctrl_c() -> None:
        sweep.SweepSummary().on_multirun_start(OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path / "sw"), "subdir": "${hydra.job.num}"},
                                                                           "overrides": {"task": argv[2:]}}}))
        raise KeyboardInterrupt

    argv = ["cgatrain", "-m", "hydra/launcher=submitit_local", "algorithm=dpmsgd,cga", "train.epochs=2"]
    monkeypatch.setattr(sys, "argv", argv)
    monkeypatch.setattr(cli, "_hydra_main", sweep_then_ctrl_c)
    monkeypatch.setattr(sweep, "OPEN_SWEEPS", [])
    with pytest.raises(SystemExit) as stopped:
        cli.main()
    assert stopped.value.code == 130
    assert capsys.readouterr().err.strip() == ("sweep interrupted; to continue the whole sweep: cgatrain -m hydra/launcher=submitit_local "
                                               f"algorithm=dpmsgd,cga train.epochs=2 resume=auto hydra.sweep.dir={tmp_path / 'sw'}")
    # Folders named by the overrides keep their names: resume=auto is left out of them.
    subdir = ["hydra.sweep.subdir=${hydra.job.override_dirname}"]
    monkeypatch.setattr(sys, "argv", [*argv, *subdir])
    assert sweep.continuation(tmp_path / "sw", sys.argv).endswith(f"hydra.sweep.dir={tmp_path / 'sw'} 'hydra.job.config.override_dirname.exclude_keys=[resume]'")
    monkeypatch.setattr(sys, "argv", [*argv, *subdir, "hydra.job.config.override_dirname.exclude_keys=[seed]"])
    assert sweep.continuation(tmp_path / "sw", sys.argv).endswith("'hydra.job.config.override_dirname.exclude_keys=[seed,resume]'")
    monkeypatch.setattr(sys, "argv", ["/home/me/project/run.py", *argv[1:]])  # a user's script that registers plugins
    assert sweep.continuation(tmp_path / "sw", sys.argv).startswith("to continue the whole sweep: python /home/me/project/run.py -m ")
    monkeypatch.setattr(sys, "argv", argv)
    # A sweep over other runs' checkpoints: resume=auto would start its unstarted jobs from scratch, so no such command.
    assert sweep.continuation(tmp_path / "sw", sys.argv).startswith("to continue the whole sweep: ")
    monkeypatch.setattr(sys, "argv", ["run.py", "--config-dir", "conf", *argv[1:], "resume=/runs/a,/runs/b"])
    assert sweep.continuation(tmp_path / "sw", sys.argv).startswith("to continue: `python run.py --config-dir conf resume=JOB_DIR`")
    monkeypatch.setattr(sys, "argv", [*argv, "resume=/runs/a,/runs/b"])
    assert sweep.continuation(tmp_path / "sw", sys.argv) == (
        f"to continue: `cgatrain resume=JOB_DIR` for each stopped job under {tmp_path / 'sw'}; start a job that had not begun alone, "
        "with its own resume= value (this whole command again would restart every job from its origin)")


def test_a_launcher_error_mid_sweep_still_shows_the_jobs_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """A killed submitit job makes Hydra's launcher fail (traceback, exit 1): the jobs' folders are still tabled."""
    from cgatrain import cli
    from cgatrain.reporting import sweep
    from cgatrain.reporting.schema import RunSummary, write_summary

    sweep_dir = tmp_path / "sw"
    (sweep_dir / "1" / ".hydra").mkdir(parents=True)
    (sweep_dir / "1" / ".hydra" / "overrides.yaml").write_text("- seed=1\n")
    write_summary(sweep_dir / "1", RunSummary(status="completed", epochs_completed=1))
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep_dir), "subdir": "${hydra.job.num}"},
                                         "overrides": {"task": ["seed=0,1"]}}})

    def launcher_fails() -> None:
        sweep.SweepSummary().on_multirun_start(config)
        raise SystemExit(1)  # what Hydra's run_and_report does after printing the launcher's error

    monkeypatch.setattr(sys, "argv", ["cgatrain", "-m", "seed=0,1", "train.epochs=1"])
    monkeypatch.setattr(cli, "_hydra_main", launcher_fails)
    monkeypatch.setattr(sweep, "OPEN_SWEEPS", [])
    with pytest.raises(SystemExit) as stopped:
        cli.main()
    out, err = capsys.readouterr()
    assert stopped.value.code == 1 and "the sweep's launcher stopped before every job returned" in out
    assert f"sweep of 2 jobs in {sweep_dir}: 1 no summary, 1 completed" in out and not sweep.OPEN_SWEEPS
    assert f"to continue the whole sweep: cgatrain -m seed=0,1 train.epochs=1 resume=auto hydra.sweep.dir={sweep_dir}" in err
    # Hydra refusing the sweep itself (no job began): its error alone, no table of jobs that never were.
    shutil.rmtree(sweep_dir)
    with pytest.raises(SystemExit):
        cli.main()
    assert "sweep of" not in capsys.readouterr().out
