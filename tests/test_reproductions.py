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
    from cgatrain.cli import config_dir, hydra_version_base
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
