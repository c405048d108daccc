"""The table that ends a `-m` sweep, read from the jobs' own files (cgatrain/reporting/sweep.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cgatrain.reporting import sweep
from cgatrain.reporting.schema import RunSummary, write_summary


def make_job(directory: Path, overrides: list[str], summary: RunSummary | None) -> None:
    (directory / ".hydra").mkdir(parents=True)
    (directory / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    if summary is not None:
        write_summary(directory, summary)


@pytest.fixture(autouse=True)
def fresh_failures() -> None:
    sweep.FAILED_JOB_DIRS.clear()


def test_the_table_has_each_job_its_status_scores_and_swept_overrides(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_job(tmp_path / "0", ["optim.lr=0.1", "agents=2"], RunSummary(status="completed", epochs_completed=3, consensus_test_accuracy=0.925,
                                                                      agent_test_accuracy_mean=0.8494, consensus_test_loss=0.2398))
    make_job(tmp_path / "1", ["optim.lr=1e9", "agents=2"], RunSummary(status="diverged"))
    make_job(tmp_path / "2", ["optim.lr=-1", "agents=2"], RunSummary(status="failed", error="invalid config:\n  - optim.lr must be >= 0"))
    make_job(tmp_path / "3", ["optim.lr=0.2", "agents=2"], None)  # killed before it wrote summary.json
    make_job(tmp_path / "4", ["optim.lr=0.3", "agents=2"], RunSummary(status="completed"))  # an older sweep's job in the same dir
    make_job(tmp_path / "5", ["optim.lr=0.4", "agents=2"], RunSummary(status="interrupted", epochs_completed=2, extra={"refused": "invalid config:\n  - optim.lr (saved 0.1, given 0.4)"}))

    jobs = sweep.summarize_sweep(tmp_path, sweep.JOB_NUMBER_SUBDIR, ["optim.lr=0.1,1e9,-1,0.2", "agents=2"])
    refused = sweep.read_jobs([tmp_path / "5"])[0]  # a resume refused by the job itself keeps the run's record
    assert refused.status == "refused" and refused.failed and refused.summary.epochs_completed == 2
    out, err = capsys.readouterr()
    assert [job.status for job in jobs] == ["completed", "diverged", "failed", "no summary"]
    assert f"sweep of 4 jobs in {tmp_path}: 1 completed, 1 diverged, 1 failed, 1 no summary" in out
    rows = out.strip().splitlines()
    assert rows[2].split() == ["0", "completed", "3", "92.50%", "84.94%", "0.2398", "optim.lr=0.1"]  # agents=2 is shared: not shown
    assert rows[3].split() == ["1", "diverged", "0", "-", "-", "-", "optim.lr=1e9"]
    assert rows[-1] == f"tables and plots of the sweep: cgatrain report {tmp_path}"
    assert "job 2 failed: invalid config: - optim.lr must be >= 0" in err and "job 3" in err and "no summary.json" in err
    assert sweep.FAILED_JOB_DIRS == [str(tmp_path / "2"), str(tmp_path / "3")]


def test_custom_subdirs_number_jobs_as_planned_and_drop_an_earlier_sweeps_folders(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_job(tmp_path / "lr=0.1", ["optim.lr=0.1"], RunSummary(status="completed"))
    make_job(tmp_path / "lr=0.2", ["optim.lr=0.2"], RunSummary(status="failed"))
    make_job(tmp_path / "lr=0.3", ["optim.lr=0.3"], RunSummary(status="failed"))  # an earlier sweep's, in the same folder
    jobs = sweep.summarize_sweep(tmp_path, "${hydra.job.override_dirname}", ["optim.lr=0.2,0.1"])
    assert [(job.number, job.directory) for job in jobs] == [(0, tmp_path / "lr=0.2"), (1, tmp_path / "lr=0.1")]  # Hydra's #0, #1
    assert sweep.FAILED_JOB_DIRS == [str(tmp_path / "lr=0.2")]
    assert "job 0 failed: see its cgatrain.log" in capsys.readouterr().err
    assert len(sweep.summarize_sweep(tmp_path, sweep.JOB_NUMBER_SUBDIR, None)) == 3  # another sweeper (Optuna): every job found


def test_a_planned_job_without_its_folder_shows_its_overrides(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_job(tmp_path / "0", ["optim.lr=0.1", "agents=2"], RunSummary(status="completed"))
    jobs = sweep.summarize_sweep(tmp_path, sweep.JOB_NUMBER_SUBDIR, ["optim.lr=0.1,0.2", "agents=2"])
    assert jobs[1].overrides == ["optim.lr=0.2", "agents=2"] and jobs[1].failed
    out, err = capsys.readouterr()
    assert out.splitlines()[-2].split()[-1] == "optim.lr=0.2" and "job 1 (optim.lr=0.2 agents=2) has no folder: it never started" in err


def test_the_callback_is_configured_and_reads_the_subdir_template() -> None:
    from omegaconf import OmegaConf

    from cgatrain.compose import compose_config

    hydra = OmegaConf.to_container(compose_config([], return_hydra_config=True).hydra, resolve=False)
    assert hydra["callbacks"]["sweep_summary"]["_target_"] == "cgatrain.reporting.sweep.SweepSummary"
    assert hydra["sweep"]["subdir"] == sweep.JOB_NUMBER_SUBDIR
