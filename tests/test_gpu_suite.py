"""benchmarks/gpu_suite.sh on a CPU: every part skipped with the reason and exit 0; the planned commands parse."""

from __future__ import annotations

import importlib
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SUITE = ROOT / "benchmarks" / "gpu_suite.sh"
pytestmark = pytest.mark.skipif(shutil.which("bash") is None or shutil.which("timeout") is None, reason="needs bash and coreutils timeout")


def _suite(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "PYTHON": sys.executable, **env}
    return subprocess.run(["bash", str(SUITE), *args], capture_output=True, text=True, timeout=120, env=environ, cwd=ROOT)


def test_without_cuda_every_part_is_skipped_and_the_suite_succeeds(tmp_path: Path) -> None:
    done = _suite(str(tmp_path), "--quick", CUDA_VISIBLE_DEVICES="")
    assert done.returncode == 0, done.stdout + done.stderr
    summary = (tmp_path / "summary.txt").read_text()
    for part in ("tests", "exchange", "step", "headline"):
        assert f"{part} skipped: no CUDA GPU visible" in summary
    assert sorted(p.name for p in tmp_path.iterdir()) == ["env.txt", "summary.txt"]
    assert "torch " in (tmp_path / "env.txt").read_text()


def _planned(tmp_path: Path, gpus: int, *args: str) -> list[str]:
    done = _suite(str(tmp_path), "--dry-run", *args, GPU_SUITE_GPUS=str(gpus))
    assert done.returncode == 0, done.stdout + done.stderr
    return (tmp_path / "summary.txt").read_text().splitlines()


def test_one_gpu_plans_the_shared_gpu_runs_and_skips_nccl(tmp_path: Path) -> None:
    lines = _planned(tmp_path, 1)
    planned = [line for line in lines if " would run " in line]
    assert [line.split()[0] for line in planned] == [
        "smoke", "tests", "exchange_staged", "step_vgg11_5_on_1gpu", "step_resnet20_5_on_1gpu", "headline_no_mps", "mps_client", "headline_mps"]
    assert any(line.startswith("exchange_nccl skipped: a NCCL ring needs >= 3 GPUs") for line in lines)
    assert any(line.startswith("step_nccl skipped") for line in lines)
    assert "benchmarks/gpu_smoke.py" in planned[0]
    assert "-m gpu" in planned[1] and "-rsfE" in planned[1] and "-p no:cacheprovider" in planned[1]
    # Every part fits a 10-minute call: the sum of its timeouts stays at or under 9 minutes.
    part_of = {"smoke": "tests", "mps": "headline"}
    limits: dict[str, int] = {}
    for line in planned:
        part = line.split()[0].split("_")[0]
        part = part_of.get(part, part)
        limits[part] = limits.get(part, 0) + int(line.split("(timeout ")[1].split("s)")[0])
    assert max(limits.values()) <= 540, limits
    assert limits["exchange"] + limits["step"] <= 540, "one 10-minute call runs --part exchange --part step"


def test_planned_benchmark_commands_parse(tmp_path: Path) -> None:
    lines = _planned(tmp_path, 4, "--quick", "--part", "exchange", "--part", "step")
    commands = [shlex.split(line.split("): ", 1)[1])[1:] for line in lines if " would run " in line]
    assert any("nccl" in command for command in commands)
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        for script, *argv in commands:
            module = importlib.import_module(Path(script).stem)
            if "nccl" in argv:
                continue  # its check counts this machine's GPUs
            module.parse_args(argv)
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))


def test_an_unknown_part_is_refused(tmp_path: Path) -> None:
    done = _suite(str(tmp_path), "--part", "everything")
    assert done.returncode == 2 and "unknown part" in done.stderr


def test_the_smoke_check_runs_its_gloo_check_on_cpus_and_refuses_without_cuda() -> None:
    smoke = [sys.executable, str(ROOT / "benchmarks" / "gpu_smoke.py")]
    done = subprocess.run([*smoke, "--cpu"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0 and "gloo_two_processes" in done.stdout and " ok " in done.stdout, done.stdout + done.stderr
    if not torch.cuda.is_available():
        done = subprocess.run(smoke, capture_output=True, text=True, timeout=120, cwd=ROOT)
        assert done.returncode == 2 and "no CUDA GPU visible" in done.stderr
