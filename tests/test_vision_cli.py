"""A user's run on CIFAR-10 files with a BatchNorm ResNet: the class-count table, consensus scores, and a
resume (on the streaming data path) that is bit-exact with the uninterrupted in-memory run, buffers included."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from vision_fixtures import write_cifar

pytestmark = [pytest.mark.multiproc, pytest.mark.timeout(300)]


def _cgatrain(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cgatrain", *args], cwd=cwd, capture_output=True, text=True, timeout=240, check=False)


def _states(run_dir: Path, epoch: int) -> list[dict]:
    folder = run_dir / "checkpoints" / f"epoch_{epoch:04d}"
    return [torch.load(folder / f"agent_{r:03d}.pt", weights_only=True) for r in range(2)]


def test_batchnorm_run_on_cifar_files_resumes_bit_exactly(tmp_path: Path) -> None:
    write_cifar(tmp_path / "data")
    common = [
        "agents=2", "data=cifar10", f"data.root={tmp_path}/data", "model=resnet20", "model.buffers=average", "algorithm=cga",
        "partition=class", "train.batch_size=8", "train.steps_per_epoch=2", "train.progress_bar=false", "comm.timeout_s=60",
        "optim.lr=0.05", "optim.schedule.name=cosine", "optim.schedule.warmup_epochs=1",
    ]
    full = _cgatrain(*common, "train.epochs=2", f"hydra.run.dir={tmp_path}/full", cwd=tmp_path)
    assert full.returncode == 0, full.stderr[-3000:]
    assert "samples per class and agent" in full.stdout
    assert (tmp_path / "full" / "class_counts.csv").read_text().splitlines()[1] == "0,10,0,10,0,10,0,10,0,10,0,50"
    summary = json.loads((tmp_path / "full" / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["consensus_test_accuracy"] is not None
    first = _cgatrain(*common, "train.epochs=1", f"hydra.run.dir={tmp_path}/first", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    resumed = _cgatrain(*common, "train.epochs=2", f"resume={tmp_path}/first", "data.in_memory=false", "data.workers=1",
                        f"hydra.run.dir={tmp_path}/resumed", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    for uninterrupted, continued in zip(_states(tmp_path / "full", 2), _states(tmp_path / "resumed", 2), strict=True):
        assert uninterrupted["buffers"].numel() > 0 and uninterrupted["buffers"].abs().sum() > 0
        for key in ("params", "buffers", "buffer_counters"):
            assert torch.equal(uninterrupted[key], continued[key]), key
    agents = _states(tmp_path / "full", 2)
    assert not torch.equal(agents[0]["params"], agents[1]["params"])  # distinct agents: the equality above is not vacuous
