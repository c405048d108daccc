"""The parent's check of a whole command line: every sweep job composed and validated before any starts."""

from __future__ import annotations

import pytest

from cgatrain.precheck import check_command, check_job, expand_sweep, unknown_keys


def test_sweep_jobs_are_numbered_as_hydras_basic_sweeper_numbers_them() -> None:
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    overrides = ["agents=2,3", "+train.extra=x,y", "seed=range(0,2)", "optim.lr=0.1"]
    jobs = expand_sweep(overrides)
    assert jobs == BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(overrides), None)[0]
    assert jobs is not None and len(jobs) == 8 and jobs[1] == ["agents=2", "+train.extra=x", "seed=1", "optim.lr=0.1"]
    # Written as Hydra writes each job's .hydra/overrides.yaml: normalized values, a repeated key once.
    odd = ["train.progress_bar=false", "optim.lr=1e9", "x=1e-3,2e-3", "train.epochs=1", "train.epochs=2"]
    assert expand_sweep(odd) == BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(odd), None)[0]
    assert expand_sweep(odd)[0] == ["train.progress_bar=False", "optim.lr=1000000000.0", "x=0.001", "train.epochs=2"]
    assert expand_sweep(["algorithm=glob(d*)"]) is None  # Hydra lists a group's options itself


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["+train.epoch=2"], ["unknown config key train.epoch (did you mean train.epochs?)"]),
        (["+optim.schedule.gama=0.9"], ["unknown config key optim.schedule.gama (did you mean optim.schedule.gamma?)"]),
        (["+bogus=1"], ["unknown config key bogus; the top level takes: agents"]),
        (["+model.widht=3"], ["unknown config key model.widht; model takes: activation, name"]),
        (["data=cifar10", "+data.augmnt=true"], ["unknown config key data.augmnt (did you mean data.augment?)"]),
        (["partition=dirichlet", "+partition.alfa=0.1"], ["unknown config key partition.alfa (did you mean partition.alpha?)"]),
        (["+slurm.nodez=2"], ["unknown config key slurm.nodez (did you mean slurm.nodes?)"]),
    ],
)
def test_keys_that_no_config_file_defines_are_named(overrides: list[str], expected: list[str]) -> None:
    problems = unknown_keys(overrides)
    assert len(problems) == len(expected) and all(problem.startswith(text) for problem, text in zip(problems, expected)), problems


def test_defined_keys_group_options_and_experiments_pass() -> None:
    assert unknown_keys(["experiment=cga_cifar10", "data.root=/x", "partition=class", "partition.assignment=random", "model=vgg11", "model.norm=batch"]) == []
    assert unknown_keys(["algorithm=local", "algorithm.average_every=2", "~seed"]) == []
    # algorithm, compressor and topology name their own unknown options (with what they take): not twice
    assert unknown_keys(["+algorithm.bogus=1", "+topology.bogus=1", "+compressor.bogus=1"]) == []


def test_a_job_reports_every_problem_with_full_key_names() -> None:
    problems = check_job(["train.epoch=2", "partition=dirichlet", "partition.alpha=abc", "agents=0"])
    assert problems[0].startswith("unknown config key train.epoch (did you mean train.epochs?)")  # Hydra refused the override
    assert check_job(["partition=dirichlet", "partition.alpha=abc"]) == ["partition.alpha must be a number, got 'abc'"]
    assert check_job(["+optim.lrr=1", "optim.lr=-1"]) == [unknown_keys(["+optim.lrr=1"])[0], "optim.lr must be >= 0, got -1.0"]
    assert "Could not find 'algorithm/cgaa'" in check_job(["algorithm=cgaa"])[0]
    # A resume is checked against its saved config and checkpoint here, before anything starts.
    assert check_job(["resume=/nonexistent/run", "agents=3"]) == ["resume=/nonexistent/run: no checkpoints/latest.json or epoch_NNNN folder found there"]


def test_slurm_jobs_skip_the_checks_of_this_machines_data() -> None:
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    missing_data = ["data=cifar10", "data.root=/nonexistent/data"]
    assert any("/nonexistent/data" in problem for problem in check_job(missing_data))
    assert check_job(["hydra/launcher=submitit_slurm", *missing_data], sweep=True) == []
    assert check_job(["hydra/launcher=submitit_slurm", *missing_data, "optim.lr=-1"], sweep=True) == ["optim.lr must be >= 0, got -1.0"]
    assert check_job(["hydra/launcher=submitit_slurm", *missing_data]) != []  # without -m the launcher is unused: it runs here


def test_only_runs_and_sweeps_are_checked(capsys: pytest.CaptureFixture[str]) -> None:
    assert check_command(["--help"]) is None and check_command(["--cfg", "job", "optim.lr=-1"]) is None
    assert check_command(["optim.lr=0.1"]) is None
    assert check_command(["-m", "optim.lr=0.1,-1"]) == 2
    assert "1 of 2 sweep jobs have an invalid config; no job was started" in capsys.readouterr().err


def test_every_key_set_without_plus_that_no_file_defines_is_named_at_once() -> None:
    problems = check_job(["train.epoch=2", "train.batchsize=3"])
    assert [problem.split(";")[0] for problem in problems] == [
        "unknown config key train.epoch (did you mean train.epochs?)", "unknown config key train.batchsize (did you mean train.batch_size?)"]
    assert "Could not override 'hydra.job.env_set.FOO'" in check_job(["hydra.job.env_set.FOO=1"])[0]  # Hydra's own hint (use +)


def test_values_that_resolve_only_in_the_job_are_not_refused() -> None:
    # ${hydra:...} resolves as in the job; ${oc.env:...} of the job's node cannot resolve here: left to the job
    assert check_job(["logger.wandb.group=${hydra:runtime.choices.algorithm}"]) == []
    assert check_job(["logger.wandb.name=${hydra:job.name}", "agents=0"]) == ["agents must be an integer >= 1, got 0"]
    assert check_job(["data=cifar10", "data.root=${oc.env:CGATRAIN_NO_SUCH_VARIABLE}/data"], sweep=True) == []


def test_hydra_mode_multirun_is_a_sweep_and_other_sweepers_are_left_to_hydra(capsys: pytest.CaptureFixture[str]) -> None:
    assert check_command(["hydra.mode=MULTIRUN", "seed=0,-1"]) == 2
    assert "1 of 2 sweep jobs have an invalid config" in capsys.readouterr().err
    assert check_command(["-m", "hydra/sweeper=optuna", "optim.lr=interval(0,1)"]) is None
    assert check_command(["-m", "optim.lr=interval(0,1)"]) is None  # the basic sweeper explains it cannot sweep intervals


def test_config_dir_adds_the_users_config_files_and_keeps_the_check(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    from cgatrain.precheck import config_dir_overrides

    (tmp_path / "topology").mkdir()
    (tmp_path / "topology" / "tri.yaml").write_text("graph: complete\nweights: uniform\n")
    search = f"hydra.searchpath=[file://{tmp_path}]"
    assert config_dir_overrides(["-cd", str(tmp_path), "-m", "a=1"]) == (["-m", "a=1"], [search])
    assert config_dir_overrides([f"--config-dir={tmp_path}", "a=1"]) == (["a=1"], [search])
    assert check_command(["--config-dir", str(tmp_path), "topology=tri", "agents=3"]) is None  # its topology is found
    assert check_command(["--config-dir", str(tmp_path), "topology=tri", "+train.epoch=2", "optim.lr=-1"]) == 2
    err = capsys.readouterr().err
    assert "unknown config key train.epoch (did you mean train.epochs?)" in err and "optim.lr must be >= 0" in err
    assert check_command(["-cd", str(tmp_path), "-m", "topology=tri,nosuch"]) == 2
    assert "job 1 (topology=nosuch)" in capsys.readouterr().err
    assert check_command(["--config-dir", str(tmp_path / "nosuch"), "topology=ring"]) == 2
    assert f"error: --config-dir {tmp_path / 'nosuch'}: no such folder" in capsys.readouterr().err
