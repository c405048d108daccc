"""The docs/reproduce_*.sh scripts forward extra Hydra overrides and MNIST_PATH to every training sweep."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ["reproduce_cga.sh", "reproduce_sparse_push.sh", "reproduce_cdsgd.sh", "reproduce_ngo.sh"]


def _calls(tmp_path: Path, script: str, *args: str, env: dict[str, str] | None = None) -> list[list[str]]:
    """Run a docs script with a stand-in `cgatrain` that records its arguments; return every call."""
    calls = tmp_path / "calls.jsonl"
    fake = tmp_path / "bin" / "cgatrain"
    fake.parent.mkdir(exist_ok=True)
    fake.write_text(f"#!{sys.executable}\nimport json, sys\nopen({str(calls)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n")
    fake.chmod(0o755)
    full_env = {"PATH": f"{fake.parent}:/usr/bin:/bin", "HOME": str(tmp_path), **(env or {})}
    done = subprocess.run(["bash", str(ROOT / "docs" / script), *args], cwd=ROOT, env=full_env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in calls.read_text().splitlines()]


@pytest.mark.parametrize("script", SCRIPTS)
def test_extra_overrides_end_every_training_sweep(tmp_path: Path, script: str) -> None:
    extra = ["train.epochs=1", "hydra/launcher=submitit_slurm"]
    calls = _calls(tmp_path, script, str(tmp_path / "out"), "all", *extra)
    sweeps = [argv for argv in calls if argv[0] == "-m"]
    assert sweeps, f"{script} starts no sweep"
    for argv in sweeps:
        assert argv[-len(extra):] == extra, argv
    assert all(arg not in extra for argv in calls if argv[0] == "report" for arg in argv), "overrides reached cgatrain report"


@pytest.mark.parametrize("script", SCRIPTS)
def test_no_extra_arguments_add_nothing(tmp_path: Path, script: str) -> None:
    calls = _calls(tmp_path, script, str(tmp_path / "out"), "all")
    assert all(argv[-1].startswith("hydra.sweep.dir=") for argv in calls if argv[0] == "-m")


@pytest.mark.parametrize("script", ["reproduce_cga.sh", "reproduce_sparse_push.sh", "reproduce_cdsgd.sh"])
def test_mnist_path_reaches_every_mnist_sweep(tmp_path: Path, script: str) -> None:
    calls = _calls(tmp_path, script, str(tmp_path / "out"), "mnist", env={"MNIST_PATH": "/data/mnist"})
    sweeps = [argv for argv in calls if argv[0] == "-m"]
    assert sweeps and all("data.path=/data/mnist" in argv for argv in sweeps), sweeps
    (tmp_path / "default").mkdir()
    default = [argv for argv in _calls(tmp_path / "default", script, str(tmp_path / "out"), "mnist") if argv[0] == "-m"]
    assert default and all("data.path=../shared/data/mnist-t10k" in argv for argv in default), default
