"""Per-step bookkeeping that must not wait for a GPU: the step's loss and its compute time."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from multiproc import run_agents
from omegaconf import OmegaConf
from torch import nn

from cgatrain.algorithms import ALGORITHMS, FlatModel, LocalObjective, register
from cgatrain.algorithms.dpsgd import DPSGD
from cgatrain.compose import compose_config
from cgatrain.train.step_clock import StepClock
from cgatrain.transfer import to_device


class _Wire:
    stream_timed = False


class _Exchange:
    """Counts `comm` seconds of communication whenever the test says so."""

    def __init__(self) -> None:
        self.wire, self.comm = _Wire(), 0.0

    def total_seconds(self) -> float:
        return self.comm


def test_host_clock_counts_step_time_less_its_communication(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr("cgatrain.train.step_clock.time.perf_counter", lambda: now[0])
    exchange = _Exchange()
    clock = StepClock(exchange, seconds=1.5)  # type: ignore[arg-type]
    for step_seconds, comm_seconds in [(0.4, 0.1), (0.3, 0.0)]:
        clock.start()
        now[0] += step_seconds
        exchange.comm += comm_seconds
        clock.stop()
    exchange.comm += 5.0  # communication between steps (an epoch's finish) is no step's
    now[0] += 5.0
    clock.mark()
    assert clock.seconds == pytest.approx(1.5 + 0.3 + 0.3)


def test_to_device_keeps_values_and_dtype() -> None:
    array = np.array([3, 1, 2], dtype=np.int64)
    assert torch.equal(to_device(array, "cpu"), torch.tensor([3, 1, 2]))
    flips = to_device(np.array([True, False]), torch.device("cpu"))
    assert flips.dtype == torch.bool and flips.tolist() == [True, False]
    assert torch.equal(to_device(np.arange(6).reshape(2, 3)[:, 1], "cpu"), torch.tensor([1, 4]))  # non-contiguous view


def test_the_objective_hands_back_its_loss_as_a_tensor_on_the_models_device() -> None:
    objective = LocalObjective(FlatModel(nn.Linear(4, 3)), nn.CrossEntropyLoss())
    objective.set_batch(torch.randn(8, 4), torch.randint(3, (8,)))
    for loss in (objective.self_gradient(), objective.loss()):
        assert isinstance(loss, torch.Tensor) and loss.dim() == 0 and not loss.requires_grad and loss > 0


class FloatLossDPSGD(DPSGD):
    """D-PSGD whose step returns a Python float, as a plugin written before losses stayed on the device."""

    name = "dpsgd_float_loss"

    def step(self, lr: float, step: int, epoch: int) -> float:  # type: ignore[override]
        return float(super().step(lr, step, epoch))


def _train(rank: int, world_size: int, overrides: list[str], run_dir: str) -> list[dict[str, Any]]:
    from cgatrain.train.trainer import Trainer

    if "dpsgd_float_loss" not in ALGORITHMS:
        register(FloatLossDPSGD)
    cfg = OmegaConf.to_container(compose_config(overrides), resolve=True)
    trainer = Trainer(cfg, Path(run_dir), rank, world_size, torch.device("cpu"))
    trainer.setup()
    assert trainer.fit() == "completed"
    return trainer.history


def test_a_float_loss_and_a_tensor_loss_give_the_same_metrics(tmp_path: Path) -> None:
    """The trainer sums device-side loss tensors, reading them every log_every steps; plugins may still return floats."""
    common = ["train.epochs=2", "train.steps_per_epoch=7", "train.log_every=3", "checkpoint.enabled=false", "train.progress_bar=false",
              "topology.graph=ring", "+model.hidden=[16]"]
    histories = {}
    for name in ("dpsgd", "dpsgd_float_loss"):
        run_dir = tmp_path / name
        run_dir.mkdir()
        histories[name] = run_agents(_train, 3, tmp_path, [*common, "algorithm=dpsgd", f"algorithm.name={name}"], str(run_dir))[0]
    for tensor_row, float_row in zip(histories["dpsgd"], histories["dpsgd_float_loss"], strict=True):
        assert tensor_row["train_loss"] == float_row["train_loss"] and np.isfinite(tensor_row["train_loss"])
        assert tensor_row["consensus_test_accuracy"] == float_row["consensus_test_accuracy"]
        assert tensor_row["compute_seconds_per_step"] > 0
    rows = [json.loads(line) for line in (tmp_path / "dpsgd" / "metrics.jsonl").read_text().splitlines()]
    assert [row["train_loss"] for row in rows] == [row["train_loss"] for row in histories["dpsgd"]]
