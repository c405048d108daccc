"""Resume keeps the run's saved config, refuses trajectory-changing overrides by name, and every
fault the parent can see (damaged checkpoint, wandb missing) is refused before any agent starts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from test_config import composed

from cgatrain import preflight, resume
from cgatrain.config import ConfigError, validate
from cgatrain.precheck import check_command

SAVED = ["agents=3", "algorithm=dpmsgd", "model=mlp", "partition=iid", "topology=ring"]


@pytest.fixture
def saved_run(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    OmegaConf.save(OmegaConf.create(composed(*SAVED)), run / "config.yaml")
    return run


def test_override_keys() -> None:
    assert resume.override_key("topology=complete") == "topology"
    assert resume.override_key("+optim.extra=1") == "optim.extra"
    assert resume.override_key("~logger.wandb.tags") == "logger.wandb.tags"
    assert resume.is_harmless("train.epochs") and resume.is_harmless("logger.wandb.mode") and not resume.is_harmless("train.batch_size")
    assert resume.is_harmless("train.eval_train") and resume.is_harmless("train.consensus_every")  # measurements only


def test_resume_takes_the_saved_config_and_allows_harmless_overrides(saved_run: Path) -> None:
    overrides = [f"resume={saved_run}", "train.epochs=7", "checkpoint.keep=5"]
    merged = resume.apply_saved_config(composed(*overrides), overrides)
    assert merged["agents"] == 3 and merged["algorithm"]["name"] == "dpmsgd" and merged["model"]["name"] == "mlp"
    assert merged["partition"]["name"] == "iid" and merged["train"]["epochs"] == 7 and merged["checkpoint"]["keep"] == 5
    assert merged["resume"] == str(saved_run)


def test_raising_the_epochs_of_a_cosine_run_is_refused_as_a_changed_schedule(tmp_path: Path) -> None:
    run = tmp_path / "cosine"
    run.mkdir()
    OmegaConf.save(OmegaConf.create(composed(*SAVED, "optim.schedule.name=cosine", "train.epochs=2")), run / "config.yaml")
    overrides = [f"resume={run}", "train.epochs=3"]
    with pytest.raises(ValueError, match=r"train.epochs \(saved 2, given 3\) with optim.schedule.name=cosine, which anneals over train.epochs"):
        resume.apply_saved_config(composed(*overrides), overrides)
    forced = [*overrides, "resume_override=true"]
    assert resume.apply_saved_config(composed(*forced), forced)["train"]["epochs"] == 3
    same = [f"resume={run}", "train.epochs=2"]
    assert resume.apply_saved_config(composed(*same), same)["train"]["epochs"] == 2
    # Every epoch run so far was warmup, which no horizon changes: the run goes on as a fresh 3-epoch run would.
    warm = tmp_path / "warm"
    (warm / "checkpoints" / "epoch_0001").mkdir(parents=True)
    OmegaConf.save(OmegaConf.create(composed(*SAVED, "optim.schedule.name=cosine", "optim.schedule.warmup_epochs=1", "train.epochs=2")),
                   warm / "config.yaml")
    (warm / "checkpoints" / "latest.json").write_text(json.dumps({"epoch": 1, "step": 0, "dir": "epoch_0001", "world_size": 3}))
    longer = [f"resume={warm}", "train.epochs=3"]
    assert resume.apply_saved_config(composed(*longer), longer)["train"]["epochs"] == 3
    (warm / "checkpoints" / "epoch_0001_step_000002").mkdir()  # a step into epoch 2: past the warmup
    (warm / "checkpoints" / "latest.json").write_text(json.dumps({"epoch": 1, "step": 2, "dir": "epoch_0001_step_000002", "world_size": 3}))
    with pytest.raises(ValueError, match="the epochs already run followed the 2-epoch curve"):
        resume.apply_saved_config(composed(*longer), longer)


def test_resume_refuses_trajectory_changes_naming_each(saved_run: Path) -> None:
    overrides = [f"resume={saved_run}", "topology=complete", "optim.lr=0.5", "model=cnn", "seed=3", "train.epochs=9", "algorithm=dpmsgd"]
    with pytest.raises(ValueError, match="would change its trajectory") as refused:
        resume.apply_saved_config(composed(*overrides), overrides)
    message = str(refused.value)
    for named in ("topology.graph (saved ring, given complete)", "optim.lr (saved 0.02, given 0.5)", "model (saved mlp", "seed (saved 0, given 3)", "resume_override=true"):
        assert named in message, message
    assert "train.epochs" not in message and "algorithm" not in message.split("trajectory:")[1]  # harmless / unchanged


def test_a_torn_saved_config_is_named_not_a_traceback(tmp_path: Path) -> None:
    from cgatrain.precheck import check_job

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text("agents: [1,\n")  # a kill mid-write
    assert resume.force_saved_keys([f"resume={run}", "train.epochs=2"]) == [f"resume={run}", "train.epochs=2"]
    problems = check_job([f"resume={run}", "train.epochs=2"])
    assert len(problems) == 1 and problems[0].startswith(f"{run / 'config.yaml'} cannot be read as a config (ParserError")


@pytest.mark.parametrize("topology", ["time_varying_example", "sp_time_varying"])
def test_a_saved_schedule_topology_is_taken_whole(tmp_path: Path, topology: str) -> None:
    """Today's default ring must not leak `graph: ring` into a saved schedule (it made the run unresumable)."""
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    saved = composed(f"topology={topology}", "agents=4", "algorithm=sgp" if topology.startswith("sp_") else "algorithm=dpsgd", "model=mlp")
    OmegaConf.save(OmegaConf.create(saved), run / "config.yaml")
    overrides = [f"resume={run}", "train.epochs=3"]
    merged = resume.apply_saved_config(composed(*overrides), overrides)
    assert merged["topology"] == saved["topology"] and merged["train"]["epochs"] == 3


def test_an_experiment_preset_on_resume_is_the_runs_own_or_refused_by_what_it_changes(tmp_path: Path, saved_run: Path) -> None:
    # The run's own preset again (a continued sweep, a requeue, the reproduction scripts' `-- resume=auto`): it changes nothing.
    own = tmp_path / "own"
    (own / "checkpoints").mkdir(parents=True)
    OmegaConf.save(OmegaConf.create(composed("experiment=sp_top10", "model=mlp")), own / "config.yaml")
    overrides = [f"resume={own}", "experiment=sp_top10", "model=mlp", "train.epochs=3"]
    assert resume.apply_saved_config(composed(*overrides), overrides)["train"]["epochs"] == 3
    # Another preset: refused by what it would change (it was dropped silently), applied under resume_override=true.
    overrides = [f"resume={saved_run}", "experiment=sp_top10"]
    with pytest.raises(ValueError, match=r"experiment would set algorithm \(saved dpmsgd, given sparse_push\)"):
        resume.apply_saved_config(composed(*overrides), overrides)
    forced = [*overrides, "resume_override=true"]
    merged = resume.apply_saved_config(composed(*forced), forced)
    assert merged["algorithm"] == composed(*forced)["algorithm"] and merged["topology"] == composed(*forced)["topology"]
    assert merged["model"]["name"] == "mlp"  # not set by the preset: the saved run's


def test_reading_the_same_samples_another_way_is_harmless_also_beside_a_group_override(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    OmegaConf.save(OmegaConf.create(composed(*SAVED, "data=fake")), run / "config.yaml")
    overrides = [f"resume={run}", "data=fake", "data.in_memory=false", "data.workers=1", "comm.staging=always"]
    merged = resume.apply_saved_config(composed(*overrides), overrides)
    assert merged["data"]["in_memory"] is False and merged["data"]["workers"] == 1 and merged["comm"]["staging"] == "always"
    overrides = [f"resume={run}", "data=fake", "data.in_memory=false", "data.num_classes=5"]
    with pytest.raises(ValueError, match="would change its trajectory") as refused:
        resume.apply_saved_config(composed(*overrides), overrides)
    assert "data.num_classes (saved 10, given 5)" in str(refused.value) and "in_memory" not in str(refused.value)


def test_resume_override_applies_them(saved_run: Path) -> None:
    overrides = [f"resume={saved_run}", "topology=complete", "optim.lr=0.5", "resume_override=true"]
    merged = resume.apply_saved_config(composed(*overrides), overrides)
    assert merged["topology"]["graph"] == "complete" and merged["optim"]["lr"] == 0.5 and merged["model"]["name"] == "mlp"


def test_options_of_the_resumed_runs_own_choices_compose_and_are_checked_by_name(tmp_path: Path) -> None:
    """A sparse_push run resumed while the default algorithm is cga: `algorithm.eta` is its key, not an unknown one."""
    from cgatrain.precheck import check_job

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    OmegaConf.save(OmegaConf.create(composed("algorithm=sparse_push", "topology=directed_ring", "model=mlp")), run / "config.yaml")
    given = [f"resume={run}", "algorithm.eta=0.5", "model.hidden=[8]", "train.epochs=3", "model=mlp", "+logger.wandb.notes=x"]
    forced = resume.force_saved_keys(given)
    assert forced == [f"resume={run}", "++algorithm.eta=0.5", "++model.hidden=[8]", "++train.epochs=3", "model=mlp", "+logger.wandb.notes=x"]
    assert resume.force_saved_keys(["resume=auto", "algorithm.eta=0.5"]) == ["resume=auto", "algorithm.eta=0.5"]
    problems = check_job(forced[:4])  # composed and refused by name, in the parent
    assert len(problems) == 1 and "trajectory: algorithm.eta (saved 0.01, given 0.5), model.hidden (saved [128], given [8])" in problems[0]
    typo = check_job(resume.force_saved_keys([f"resume={run}", "algorithm.etaa=0.5"]))
    assert typo == ["unknown config key algorithm.etaa (did you mean algorithm.eta?); algorithm takes: eta, momentum, name"]
    with pytest.raises(ValueError, match=r"algorithm.eta \(saved 0.01, given 0.5\)"):
        resume.apply_saved_config(composed(*forced[:4]), forced[:4])
    applied = [*forced[:4], "resume_override=true"]
    merged = resume.apply_saved_config(composed(*applied), applied)
    assert merged["algorithm"] == {**composed("algorithm=sparse_push")["algorithm"], "eta": 0.5} and merged["model"]["hidden"] == [8]


def test_resume_auto_uses_the_run_dir_only_when_it_holds_a_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = {"resume": "auto"}
    assert not resume.resolve_auto(cfg, tmp_path) and cfg["resume"] is None
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "latest.json").write_text("{}")
    cfg = {"resume": None}
    assert not resume.resolve_auto(cfg, tmp_path) and cfg["resume"] is None  # not requeued: a fresh start
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    assert not resume.resolve_auto(cfg, tmp_path) and cfg["resume"] == str(tmp_path)
    cfg = {"resume": "/elsewhere/first_run"}  # the job started as a resume of another run
    assert not resume.resolve_auto(cfg, tmp_path) and cfg["resume"] == str(tmp_path)
    (tmp_path / "summary.json").write_text(json.dumps({"status": "completed", "epochs_completed": 3}))
    assert resume.resolve_auto({"resume": "auto"}, tmp_path)  # a finished job of a requeued sweep is skipped
    assert resume.resolve_auto({"resume": "auto", "train": {"epochs": 3}}, tmp_path, ["train.epochs=3"])
    assert resume.resolve_auto({"resume": "auto", "train": {"epochs": 20}}, tmp_path)  # today's default, not asked for
    more = {"resume": "auto", "train": {"epochs": 5}}  # a raised train.epochs continues it, as resume=PATH does
    assert not resume.resolve_auto(more, tmp_path, ["train.epochs=5"]) and more["resume"] == str(tmp_path)


def _fake_checkpoints(root: Path, epochs: int = 2, agents: int = 2) -> None:
    for epoch in range(1, epochs + 1):
        for rank in range(agents):
            (root / f"epoch_{epoch:04d}").mkdir(parents=True, exist_ok=True)
            torch.save({"params": torch.arange(1000.0) * epoch}, root / f"epoch_{epoch:04d}" / f"agent_{rank:03d}.pt")
    (root / "latest.json").write_text(json.dumps({"epoch": epochs, "step": 0, "dir": f"epoch_{epochs:04d}", "world_size": agents}))


def test_truncated_checkpoint_is_named_and_the_previous_epoch_offered(tmp_path: Path) -> None:
    root = tmp_path / "run" / "checkpoints"
    _fake_checkpoints(root)
    preflight.check_checkpoint(tmp_path / "run")  # intact: no complaint
    damaged = root / "epoch_0002" / "agent_001.pt"
    damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size // 2])
    with pytest.raises(ValueError) as error:
        preflight.check_checkpoint(tmp_path / "run")
    assert str(damaged) in str(error.value) and "truncated" in str(error.value)
    assert f"resume={root / 'epoch_0001'}" in str(error.value)
    preflight.check_checkpoint(root / "epoch_0001")  # the offered one passes
    (root / "latest.json").write_text('{"epoch": 2, "dir": "epo')
    with pytest.raises(ValueError, match="latest.json is unreadable"):
        preflight.check_checkpoint(tmp_path / "run")


def test_wandb_mode_without_wandb_is_refused_in_the_parent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb now raises ImportError
    cfg = composed("logger.wandb.mode=offline", "model=mlp")
    with pytest.raises(ConfigError, match="logger.wandb.mode=offline needs the wandb package"):
        validate(cfg)


def cgatrain(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cgatrain", *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=150, env=env)


@pytest.mark.multiproc
@pytest.mark.timeout(300)
def test_resume_end_to_end_refusals_before_spawn_and_fallback(tmp_path: Path) -> None:
    run = tmp_path / "run"
    tiny = ["train.batch_size=64", "train.steps_per_epoch=4", "train.progress_bar=false", "comm.timeout_s=30"]
    first = cgatrain("agents=2", "algorithm=dpsgd", "model=mlp", "partition=iid", *tiny, "train.epochs=2", f"hydra.run.dir={run}", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]

    # Refusals come from the parent, before Hydra writes into any directory, also into the run's own and for sweeps.
    record = (run / "summary.json").read_text()
    assert check_command([f"resume={run}", f"hydra.run.dir={run}", "train.epochs=3", "optim.lr=0.5"]) == 2
    assert check_command(["resume=auto", f"hydra.run.dir={run}", "optim.lr=0.5"]) == 2  # finished, but not with that
    assert (run / "summary.json").read_text() == record
    sweep = tmp_path / "sweep"
    for job in ("0", "1"):
        shutil.copytree(run, sweep / job)
        (sweep / job / "summary.json").write_text(record.replace('"completed"', '"interrupted"'))
    assert check_command(["-m", "optim.lr=0.02,0.5", "resume=auto", "train.epochs=3", f"hydra.sweep.dir={sweep}"]) == 2
    assert check_command(["-m", "optim.lr=0.02", "resume=auto", "train.epochs=3", f"hydra.sweep.dir={sweep}"]) is None
    refused = cgatrain(f"resume={run}", "model=cnn", "topology=complete", "train.epochs=3", f"hydra.run.dir={tmp_path}/refused", cwd=tmp_path)
    assert refused.returncode != 0
    assert "model (saved mlp, given cnn" in refused.stderr and "topology.graph (saved ring, given complete)" in refused.stderr, refused.stderr[-3000:]
    assert refused.returncode == 2 and not (tmp_path / "refused").exists()  # exit 2 and nothing written, as for any config error

    damaged = run / "checkpoints" / "epoch_0002" / "agent_001.pt"
    damaged.write_bytes(damaged.read_bytes()[:100])
    broken = cgatrain(f"resume={run}", "train.epochs=3", f"hydra.run.dir={tmp_path}/broken", cwd=tmp_path)
    assert broken.returncode != 0 and str(damaged) in broken.stderr, broken.stderr[-3000:]
    assert not (tmp_path / "broken" / "agents.json").exists()

    done = cgatrain(f"resume={run}/checkpoints/epoch_0001", "train.epochs=1", f"hydra.run.dir={tmp_path}/done", cwd=tmp_path)
    assert done.returncode != 0 and "already completed train.epochs=1: raise train.epochs" in done.stderr, done.stderr[-3000:]

    with (run / "metrics.jsonl").open("a") as metrics:
        metrics.write('{"epoch": 3, "lr": 0.0')  # a row torn by a kill: the resumed run skips it
    # The offered checkpoint, with no override repeated: agents, algorithm, model come from config.yaml.
    fallback = cgatrain(f"resume={run}/checkpoints/epoch_0001", "train.epochs=3", f"hydra.run.dir={tmp_path}/resumed", cwd=tmp_path)
    assert fallback.returncode == 0, fallback.stderr[-3000:]
    assert "resumed from" in fallback.stdout and "after epoch 1" in fallback.stdout
    saved = OmegaConf.load(tmp_path / "resumed" / "config.yaml")
    assert saved.agents == 2 and saved.algorithm.name == "dpsgd" and saved.model.name == "mlp" and saved.train.epochs == 3
    rows = [json.loads(line) for line in (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in rows] == [1, 2, 3]


def test_a_refused_resume_into_the_runs_own_directory_keeps_its_record(tmp_path: Path) -> None:
    """The job's own check (when the parent could not check it) must not overwrite the run it was asked to resume."""
    from cgatrain import cli
    from cgatrain.reporting.schema import RunSummary, load_summary, write_summary

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("agents: 2\n")
    write_summary(run, RunSummary(status="interrupted", epochs_completed=3))
    cli._record_failure(run, "invalid config: refused", {"resume": str(run)}, config_refused=True)
    kept = load_summary(run)
    assert kept.status == "interrupted" and kept.epochs_completed == 3 and cli.FAILED_JOBS[-1] == str(run)
    assert kept.extra["refused"] == "invalid config: refused"  # beside the record, for the sweep's table
    cli._record_failure(tmp_path / "new", "invalid config: refused", {"resume": str(run)}, config_refused=True)
    assert load_summary(tmp_path / "new").status == "failed"
    cli.FAILED_JOBS.clear()


@pytest.mark.multiproc
@pytest.mark.timeout(120)
def test_wandb_missing_fails_before_any_agent_starts(tmp_path: Path) -> None:
    blocker = tmp_path / "site"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text("import sys\nsys.modules['wandb'] = None\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(blocker), os.environ.get("PYTHONPATH", "")])}
    result = cgatrain("logger.wandb.mode=offline", "agents=2", "model=mlp", f"hydra.run.dir={tmp_path}/run", cwd=tmp_path, env=env)
    assert result.returncode != 0
    assert "logger.wandb.mode=offline needs the wandb package" in result.stderr, result.stderr[-3000:]
    assert not (tmp_path / "run" / "agents.json").exists()


def test_compose_config_works_inside_a_hydra_job() -> None:
    """A job resuming with its own preset composes again (GlobalHydra is initialized there)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig

    from cgatrain.compose import compose_config, config_dir, hydra_version_base

    outside = OmegaConf.to_container(compose_config(["experiment=sp_top10"]), resolve=True)
    with initialize_config_dir(config_dir=config_dir(), **hydra_version_base()):
        HydraConfig.instance().set_config(compose("config", return_hydra_config=True))  # as @hydra.main sets it in a job
        assert OmegaConf.to_container(compose_config(["experiment=sp_top10"]), resolve=True) == outside
