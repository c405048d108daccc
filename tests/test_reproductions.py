"""The paper-table scripts of reproductions/: every cell composes and validates, and each script runs
end to end for a few steps on fixture files in the real formats (so that none of them can rot)."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from vision_fixtures import write_cifar, write_tinyimagenet

REPRODUCTIONS = Path(__file__).resolve().parents[1] / "reproductions"
SCRIPTS = ["cga_tables_2_3", "sparse_push_table_2", "sparse_push_table_4", "ngo_table_1", "cdsgd_figure_1"]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_cifar(root, "cifar10")
    write_cifar(root, "cifar100")
    write_tinyimagenet(root, classes=3, per_class=20, val=6)
    return root


def _script(name: str):
    sys.path.insert(0, str(REPRODUCTIONS))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(REPRODUCTIONS))


@pytest.mark.timeout(240)
@pytest.mark.parametrize("name", SCRIPTS)
def test_every_cell_composes_and_validates(name: str, data_root: Path) -> None:
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from cgatrain.algorithms import ALGORITHMS
    from cgatrain.compose import config_dir, hydra_version_base
    from cgatrain.config import validate

    cells = _script(name).cells()
    assert cells
    with initialize_config_dir(config_dir=config_dir(), **hydra_version_base()):
        for cell in cells:
            if cell.algorithm is not None and cell.algorithm not in ALGORITHMS:
                continue  # an algorithm another part of the project adds
            overrides = [*cell.overrides, f"data.root={data_root}"]
            if cell.agents is not None:
                overrides.append(f"agents={min(cell.agents, 3)}")  # fixture classes are few; the paper's counts are checked below
            cfg = OmegaConf.to_container(compose("config", overrides=overrides), resolve=False)
            cfg.pop("hydra", None)
            validate(cfg)


def test_cells_carry_the_papers_settings() -> None:
    cga = _script("cga_tables_2_3").cells()
    assert {c.agents for c in cga} == {5, 10, 40} and len(cga) == 2 * 5 * 3 * 3
    sp2 = _script("sparse_push_table_2").cells()
    assert [c.row for c in sp2 if c.group == "resnet110"] == [f"ResNet-110 top-{k}%" for k in ("100", "1", "0.1", "0")]
    assert any("algorithm.eta=0.001" in c.overrides and "compressor.fraction=0.001" in c.overrides for c in sp2)


@pytest.mark.multiproc
@pytest.mark.timeout(600)
@pytest.mark.parametrize("name", SCRIPTS)
def test_table_script_runs_a_few_steps_on_fixture_data(name: str, data_root: Path, tmp_path: Path) -> None:
    command = [sys.executable, str(REPRODUCTIONS / f"{name}.py"), "--smoke", "--agents", "2", "--data-root", str(data_root), "--out", str(tmp_path)]
    result = subprocess.run(command, check=False, capture_output=True, text=True, timeout=560)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert results and all(r["summary"]["status"] == "completed" for r in results)
    assert "|" in (tmp_path / "table.md").read_text()
    assert {_method(r["overrides"]) for r in results} == _methods(name), "the smoke runs leave out methods of the table"


def _method(overrides: list[str]) -> tuple[str, ...]:
    """A run's method: its algorithm and compression overrides (`algorithm=`, `algorithm.eta=`, `~compressor.fraction`...)."""
    return tuple(o for o in overrides if o.lstrip("~+").split("=", 1)[0].split(".")[0] in ("algorithm", "compressor"))


def _methods(name: str) -> set[tuple[str, ...]]:
    """Every method of a script's table that this checkout can run."""
    from cgatrain.algorithms import ALGORITHMS

    return {_method(c.overrides) for c in _script(name).cells() if c.algorithm is None or c.algorithm in ALGORITHMS}


@pytest.mark.parametrize("name", SCRIPTS)
def test_smoke_runs_every_algorithm_and_compression_of_the_table_once(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import shlex

    assert _script(name).main(["--dry-run", "--smoke", "--agents", "2", "--out", str(tmp_path), "--", "data=fake"]) == 0
    commands = [shlex.split(line)[3:] for line in capsys.readouterr().out.strip().splitlines() if not line.startswith("skipped:")]
    assert {_method(command) for command in commands} == _methods(name)
    data_choices = [tuple(o for o in command if o.startswith(("experiment=", "data="))) for command in commands]
    assert len(set(zip(data_choices, map(_method, commands)))) == len(commands) <= 10  # each setting once, few runs
    algorithms = {c.algorithm for c in _script(name).cells()} - {None}
    assert algorithms <= {o.split("=", 1)[1] for command in commands for o in command if o.startswith("algorithm=")} | _missing_algorithms()


def _missing_algorithms() -> set[str]:
    from cgatrain.algorithms import ALGORITHMS

    return {c.algorithm for name in SCRIPTS for c in _script(name).cells()} - set(ALGORITHMS)


@pytest.mark.timeout(120)
def test_data_fake_runs_a_table_without_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from cgatrain.reporting.schema import RunSummary, write_summary

    sweep = _script("_sweep")
    commands: list[list[str]] = []

    def fake_run(command: list[str], **_: object) -> subprocess.CompletedProcess[str]:
        commands.append(command)
        run_dir = Path(next(o for o in command if o.startswith("hydra.run.dir=")).split("=", 1)[1])
        run_dir.mkdir(parents=True)
        write_summary(run_dir, RunSummary(status="completed", consensus_test_accuracy=0.1))
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(sweep.subprocess, "run", fake_run)  # the precheck is real: it refuses data.root on data=fake
    assert _script("ngo_table_1").main(["--smoke", "--agents", "2", "--out", str(tmp_path), "--", "data=fake"]) == 0
    assert commands and not any(o.startswith("data.root=") for command in commands for o in command)
    assert (tmp_path / "table.md").read_text().startswith("## NGO Table 1: CIFAR-10 and TinyImageNet, 10 workers (agents: 2)\n")
    capsys.readouterr()
    assert _script("sparse_push_table_2").main(["--dry-run", "--agents", "2", "--data-root", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines and all(f"data.root={tmp_path}" in line for line in lines)  # real data sets still get the root


def test_cdsgd_has_the_papers_one_model_baseline_and_the_all_reduce_one(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    cells = {c.row: c for c in _script("cdsgd_figure_1").cells()}
    one_model = cells["SGD (one model, all data)"]
    assert one_model.agents is None and {"algorithm=local", "algorithm.momentum=0", "agents=1"} <= set(one_model.overrides)
    assert "algorithm=centralized" in cells["All-reduce SGD (5 agents)"].overrides and cells["All-reduce SGD (5 agents)"].agents == 5
    assert _script("cdsgd_figure_1").main(["--dry-run", "--agents", "2", "--out", str(tmp_path)]) == 0
    commands = [line.split() for line in capsys.readouterr().out.splitlines()]
    one_model = [c for c in commands if "algorithm=local" in c]
    assert len(one_model) == 1 and "agents=1" in one_model[0] and "agents=2" not in one_model[0]  # --agents leaves it alone
    assert sum("algorithm=centralized" in c and "agents=2" in c for c in commands) == 1


@pytest.mark.timeout(120)
def test_dry_run_into_a_closed_pipe_is_quiet() -> None:
    # the reader is gone before the script prints (it needs seconds to import): as `--dry-run | head -0`
    process = subprocess.Popen([sys.executable, str(REPRODUCTIONS / "cga_tables_2_3.py"), "--dry-run"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    process.stdout.close()
    err = process.stderr.read()
    assert process.wait(timeout=100) == 0 and "Traceback" not in err and "BrokenPipe" not in err, err


def test_dry_run_prints_commands_that_paste_into_a_shell(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import shlex

    out = tmp_path / "out dir"  # a space: the printed command must quote it
    assert _script("ngo_table_1").main(["--dry-run", "--smoke", "--agents", "2", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines
    for line in lines:
        command = shlex.split(line)
        assert command[:3] == [sys.executable, "-m", "cgatrain"] and f"hydra.run.dir={out}/{lines.index(line):03d}" in command
    assert not out.exists()


@pytest.mark.timeout(120)
def test_missing_data_ends_the_script_before_any_run(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    sweep = _script("_sweep")
    monkeypatch.setattr(sweep.subprocess, "run", lambda *a, **k: pytest.fail("a cell was run"))
    argv = ["--smoke", "--agents", "2", "--data-root", str(tmp_path / "nodata"), "--out", str(tmp_path / "out")]
    assert _script("ngo_table_1").main(argv) == 2
    err = capsys.readouterr().err
    assert "CIFAR10 i.i.d. Centralized / (2): data=cifar10: missing" in err and "cifar-10-batches-py" in err
    assert "data=tinyimagenet: missing" in err  # the first cell of each data set is checked
    assert not (tmp_path / "out").exists()


def test_a_failed_cells_error_is_printed_at_once_and_listed_under_the_table(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from cgatrain.reporting.schema import RunSummary, write_summary

    sweep = _script("_sweep")
    monkeypatch.setattr(sweep, "precheck", lambda jobs: [], raising=False)

    def fake_run(command: list[str], **_: object) -> subprocess.CompletedProcess[str]:
        run_dir = Path(next(o for o in command if o.startswith("hydra.run.dir=")).split("=", 1)[1])
        if run_dir.name == "000":  # the run started and failed: its summary says why
            run_dir.mkdir(parents=True)
            write_summary(run_dir, RunSummary(status="failed", error="run failed: agent 1 (pid 7) was killed by SIGKILL"))
            return subprocess.CompletedProcess(command, 1, "", "noise\n")
        if run_dir.name == "001":  # refused before making a run dir: only stderr says why
            return subprocess.CompletedProcess(command, 2, "", "error: invalid config:\n  - data=cifar10: missing data_batch_1\n")
        run_dir.mkdir(parents=True)
        write_summary(run_dir, RunSummary(status="completed", consensus_test_accuracy=0.5))
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(sweep.subprocess, "run", fake_run)
    assert _script("ngo_table_1").main(["--smoke", "--agents", "2", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "failed (CIFAR10 i.i.d. Centralized / (2)): run failed: agent 1 (pid 7) was killed by SIGKILL" in err
    assert "failed (CIFAR10 i.i.d. Ring / Gossip (2)): error: invalid config:\n  - data=cifar10: missing data_batch_1" in err
    table = (tmp_path / "table.md").read_text()
    assert "| TinyImagenet i.i.d. Centralized | 50.00% |" in table
    failures = table.split("Failed cells (2):")[1]
    assert "- CIFAR10 i.i.d. Centralized / (2): run failed: agent 1 (pid 7) was killed by SIGKILL" in failures
    assert "- CIFAR10 i.i.d. Ring / Gossip (2): error: invalid config: |   - data=cifar10: missing data_batch_1" in failures
    results = json.loads((tmp_path / "results.json").read_text())
    assert [r["summary"]["status"] for r in results] == ["failed", "failed", "completed", "completed", "completed", "completed"]
