"""One agent's training loop: data shard, model, algorithm, per-epoch metrics and checkpoints."""

from __future__ import annotations

import functools
import math
import numbers
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from cgatrain import checkpoint
from cgatrain.algorithms import AgentContext, FlatModel, LocalObjective, get_algorithm, resolve_compressor
from cgatrain.algorithms.buffers import BufferMixer, average_buffers
from cgatrain.comm import NeighborExchange
from cgatrain.data import load_dataset, partition_indices, steps_per_epoch
from cgatrain.data.agent_data import AgentData, drop_images, shard_class_counts, write_class_counts
from cgatrain.models import build_model, loss_fn
from cgatrain.reporting import Reporter, write_json
from cgatrain.reporting.schema import EpochRecord, load_metrics
from cgatrain.topology import build_topology
from cgatrain.train import lifecycle, metrics, rng
from cgatrain.train.banner import compressor_label, run_banner, topology_line
from cgatrain.train.generalization import train_accuracy_scores
from cgatrain.train.schedule import learning_rate_at
from cgatrain.train.step_clock import StepClock
from cgatrain.train.summary import run_summary
from cgatrain.train.sync_index import SyncIndex


class Diverged(Exception):
    """Some agent's loss or parameters became NaN or Inf."""


def _loss_value(loss: torch.Tensor | float, algorithm: str = "?") -> torch.Tensor | float:
    """A step's loss to sum in float64, left on its device (reading a GPU tensor waits for the GPU)."""
    if isinstance(loss, torch.Tensor) and loss.numel() == 1:
        return loss.detach().double()
    if isinstance(loss, numbers.Real) and not isinstance(loss, bool):
        return float(loss)
    got = f"a tensor of shape {tuple(loss.shape)}" if isinstance(loss, torch.Tensor) else f"{type(loss).__qualname__} {loss!r}"[:200]
    raise TypeError(f"algorithm {algorithm!r}: step() must return the loss, a float or a 0-dim tensor (what "
                    f"ctx.objective.self_gradient() returns), got {got}")


class Trainer:
    """Everything one agent needs; rank 0 also reports for the whole run."""

    def __init__(self, cfg: Mapping[str, Any], run_dir: Path, rank: int, world_size: int, device: torch.device) -> None:
        self.cfg, self.run_dir, self.rank, self.world_size, self.device = cfg, run_dir, rank, world_size, device
        train_cfg = cfg["train"]
        self.data = load_dataset(cfg["data"])
        shards = partition_indices(self.data.train_y.numpy(), world_size, cfg["partition"], int(cfg["seed"]))
        fixed_steps = train_cfg.get("steps_per_epoch")
        self.steps = int(fixed_steps) if fixed_steps is not None else steps_per_epoch([len(s) for s in shards], int(train_cfg["batch_size"]))
        self.agent_data = AgentData(self.data, shards[rank], int(train_cfg["batch_size"]), int(cfg["seed"]), rank, device, cfg["data"])
        self.test_x, self.test_y = self.agent_data.test_inputs, self.agent_data.test_targets
        self.class_counts = shard_class_counts(self.data, shards)
        self.data = drop_images(self.data)  # this agent keeps only its shard and the test set
        self.loss = loss_fn(self.data.task)
        self.classification = self.data.task == "classification"
        # One seed for all agents gives the same initial model, as in the CGA authors' code.
        torch.manual_seed(int(cfg["seed"]) + (0 if cfg.get("same_init", True) else 1000 * rank))
        module = build_model(cfg["model"], self.data.input_shape, self.data.num_classes).to(device)
        self.model = FlatModel(module)
        self.objective = LocalObjective(self.model, self.loss, float(cfg["optim"].get("weight_decay", 0.0)))
        self.topology = build_topology(cfg["topology"], world_size, int(cfg["seed"]))
        self.exchange = NeighborExchange(rank, world_size, device, str(cfg["comm"].get("staging", "auto")))
        algorithm_class = get_algorithm(cfg["algorithm"]["name"])
        compressor = resolve_compressor(cfg.get("compressor"), algorithm_class)
        # What `compressor=auto` meant for this run, in its banner and summary.json (None: it sends uncompressed).
        self.compressor = compressor_label(compressor) if algorithm_class.uses_compressor else None
        context = AgentContext(rank, world_size, self.model, self.objective, self.topology, self.exchange, compressor,
                               seed=int(cfg["seed"]), samples=len(shards[rank]), steps_per_epoch=self.steps)
        self.algorithm = algorithm_class(context, cfg["algorithm"])
        self.buffer_mixer = BufferMixer(self.algorithm, str(cfg["model"].get("buffers") or "local"))
        self.reporter = Reporter(run_dir, rank == 0, cfg, bool(train_cfg.get("progress_bar", True)))
        self.history: list[dict[str, Any]] = []
        self.sync_index = SyncIndex(train_cfg.get("consensus_every"), world_size)
        self.start_epoch = 0
        self.clock = StepClock(self.exchange)  # compute seconds of the steps
        self.agent_table: torch.Tensor | None = None  # every agent's numbers after the last epoch (AGENT_COLUMNS)
        self.lifecycle = lifecycle.current()
        self.resume_progress: dict[str, Any] = {}  # where a mid-epoch checkpoint left its epoch

    def setup(self) -> None:
        """Warm up the wire, set up the algorithm, and load a checkpoint when resuming."""
        if self.device.type == "cuda":
            self.exchange.warm_up(range(self.world_size))
        self.algorithm.setup()
        if self.cfg.get("resume"):
            self._resume(str(self.cfg["resume"]))
        if self.rank == 0 and self.class_counts is not None:
            self.reporter.print(write_class_counts(self.run_dir, self.class_counts))
        pids = metrics.gather_rows([os.getpid()], self.rank, self.world_size, self.device)[:, 0]
        if self.rank == 0:
            # Which process is which agent, for whoever needs to inspect or stop one.
            write_json(self.run_dir / "agents.json", {"agents": [{"rank": r, "pid": int(p)} for r, p in enumerate(pids)]})
        self.reporter.print(self._banner())

    def _banner(self) -> str:
        data = f"{self.data.name} ({len(self.data.train_y)} train / {len(self.data.test_y)} test)"
        topology = topology_line(type(self.algorithm), self.cfg["algorithm"], self.topology)
        return run_banner(self.cfg, self.world_size, data, self.model.numel, self.steps, self.exchange.wire.describe(), topology, self.run_dir,
                          self.compressor)

    def _resume(self, path: str) -> None:
        directory, epoch, saved_world = checkpoint.resolve_resume(path)
        if saved_world != self.world_size:
            raise ValueError(f"resume={path} holds {saved_world} agents but this run has {self.world_size}")
        state = checkpoint.load_agent(directory, self.rank)
        self.model.params.copy_(state["params"].to(self.device))
        self.model.load_state_dict(state)
        self.algorithm.load_state_dict(state["algorithm"])
        self.exchange.load_state_dict(state["exchange"])
        rng.load_rng_state(state, self.device)
        self.clock = StepClock(self.exchange, float(state.get("compute_seconds", 0.0)))
        self.start_epoch = epoch
        self.resume_progress = dict(state.get("epoch_progress", {}))
        # The resumed run's rows up to its checkpoint; a line torn by a kill is skipped.
        self.history = [record.to_dict() for record in load_metrics(directory.parents[1]) if record.epoch <= epoch]
        # Rewritten, not appended: the resumed run may write into the very directory it resumes.
        self.reporter.write_metrics(self.history)
        step = int(self.resume_progress.get("step", 0))
        self.reporter.print(f"resumed from {directory} after epoch {epoch}" + (f", step {step}/{self.steps} of epoch {epoch + 1}" if step else ""))

    def fit(self) -> str:
        """Train all epochs; returns the run status (completed, diverged or interrupted)."""
        epochs = int(self.cfg["train"]["epochs"])
        status = "completed"
        started = time.perf_counter()
        if self.start_epoch == 0 and not self.resume_progress:
            self.sync_index.after_step(0, self.model.params)  # the initial disagreement, step 0 of the curves
        for epoch in range(self.start_epoch, epochs):
            try:
                self._train_epoch(epoch, epochs)
            except Diverged as reason:  # raised by every agent after the same all-reduce: a collective is safe here
                self.reporter.print(f"diverged in epoch {epoch + 1}: {reason}")
                self._gather_agent_table(math.nan, math.nan, math.nan)  # what was sent until now, for summary.json
                status = "diverged"
                break
            except lifecycle.Interrupted:
                status = "interrupted"
                break
            if self.cfg["checkpoint"].get("enabled", True):
                self._save_checkpoint(epoch + 1)
            if self.lifecycle.agreed and epoch + 1 < epochs:
                status = "interrupted"
                break
        self._finish(status, time.perf_counter() - started)
        return status

    def _train_epoch(self, epoch: int, epochs: int) -> None:
        lr_at = functools.partial(learning_rate_at, float(self.cfg["optim"]["lr"]), self.cfg["optim"].get("schedule") or {}, steps_per_epoch=self.steps, total_epochs=epochs)
        lr = lr_at(epoch * self.steps)
        check_every = max(int(self.cfg["train"].get("log_every", 10)), 1)
        self.reporter.start_epoch(epoch, epochs, self.steps)
        progress, self.resume_progress = (self.resume_progress if epoch == self.start_epoch else {}), {}
        self.clock.mark()  # rounds since the last step (an epoch's finish) are no step's
        epoch_started, comm_before, compute_before = time.perf_counter(), self.exchange.total_seconds(), self.clock.seconds
        epoch_started -= progress.get("seconds", 0.0)
        comm_before, compute_before = progress.get("comm_before", comm_before), progress.get("compute_before", compute_before)
        window_loss, window_steps, epoch_loss = 0.0, 0, progress.get("epoch_loss", 0.0)
        done = int(progress.get("step", 0))  # steps done before the mid-epoch checkpoint this run resumed from
        self.sync_index.samples = [list(sample) for sample in progress.get("consensus_samples", self.sync_index.samples)]
        self.reporter.advance(done)
        for index, (inputs, targets) in enumerate(self.agent_data.batches(epoch, self.steps, start=done), start=done):
            step = epoch * self.steps + index
            self.objective.set_batch(inputs, targets)
            self.clock.start()
            loss = self.algorithm.step(lr_at(step), step, epoch)
            self.buffer_mixer.after_step(step, epoch)
            self.clock.stop()
            self.sync_index.after_step(step + 1, self.model.params)
            window_loss, window_steps = window_loss + _loss_value(loss, self.algorithm.name), window_steps + 1
            self.lifecycle.steps = step + 1
            if window_steps == check_every or index == self.steps - 1:
                window_sum = float(window_loss)  # the host waits for the GPU here, not at every step
                epoch_loss += window_sum
                self.reporter.advance(window_steps, self._check_finite(window_sum, window_steps))
                self.clock.settle()
                window_loss, window_steps = 0.0, 0
                if self.lifecycle.agreed and index < self.steps - 1:
                    progress = {"step": index + 1, "epoch_loss": epoch_loss, "seconds": time.perf_counter() - epoch_started, "comm_before": comm_before,
                                "compute_before": compute_before, "consensus_samples": self.sync_index.samples}
                    self._stop_mid_epoch(epoch, progress)
        if epoch == epochs - 1:
            self.algorithm.finish((epoch + 1) * self.steps, epoch)
        with self.model.holding(self.algorithm.evaluated_params()):  # FedAvg scores its global model
            record = self._epoch_metrics(epoch, lr, epoch_loss / self.steps, time.perf_counter() - epoch_started)
        record.extra.update(self._algorithm_metrics())
        record.extra.update(self.sync_index.drain())
        record.comm_seconds_per_step = (self.exchange.total_seconds() - comm_before) / self.steps
        record.compute_seconds_per_step = (self.clock.seconds - compute_before) / self.steps
        self.history.append(record.to_dict())
        self.reporter.end_epoch(self.history[-1], header=len(self.history) == 1 or epoch == self.start_epoch)

    def _check_finite(self, window_loss: float, window_steps: int) -> float:
        """Agree with every agent on the mean recent loss; raise Diverged if any is not finite."""
        finite = math.isfinite(window_loss) and bool(torch.isfinite(self.model.params).all())
        flags = [window_loss if finite else 0.0, window_steps, 0.0 if finite else 1.0, *self.lifecycle.local_flags()]
        flags = torch.tensor(flags, dtype=torch.float64, device=self.device)
        torch.distributed.all_reduce(flags)
        self.lifecycle.agree(flags[3:])  # stop and checkpoint requests ride on this all-reduce
        if flags[2] > 0:
            raise Diverged(f"{int(flags[2])} agent(s) hold a NaN or Inf loss or parameter")
        return float(flags[0] / flags[1])

    def _epoch_metrics(self, epoch: int, lr: float, train_loss: float, seconds: float) -> EpochRecord:
        average, distance, divergence = metrics.consensus(self.model.params, self.world_size)
        self.average_buffers = average_buffers(self.model.buffers, self.world_size)
        own_loss, own_accuracy = metrics.evaluate(self.model.module, self.test_x, self.test_y, self.loss, self.classification)
        table = self._gather_agent_table(train_loss, own_loss, own_accuracy)
        mb_sent = table[:, 3] / 1e6
        record = EpochRecord(
            epoch=epoch + 1,
            lr=lr,
            train_loss=float(table[:, 0].mean()),
            agent_test_loss_mean=float(table[:, 1].mean()),
            agent_test_accuracy_min=float(table[:, 2].min()),
            agent_test_accuracy_mean=float(table[:, 2].mean()),
            agent_test_accuracy_max=float(table[:, 2].max()),
            consensus_distance=distance,
            parameter_divergence=divergence,
            mb_sent_per_agent=float(mb_sent.mean()),
            mb_sent_per_agent_min=float(mb_sent.min()),
            mb_sent_per_agent_max=float(mb_sent.max()),
            epoch_seconds=seconds,
        )
        if self.rank == 0:
            scores = self._consensus_scores(average)
            record.consensus_test_loss, record.consensus_test_accuracy = scores.pop("consensus_test_loss"), scores.pop("consensus_test_accuracy")
            record.extra.update(scores)
        if self.cfg["train"].get("eval_train", False):
            record.extra.update(train_accuracy_scores(self.model, average, self.average_buffers, self.agent_data.shard_eval_set(),
                                                      self.rank, self.world_size, self.loss))
        return record

    def _gather_agent_table(self, train_loss: float, test_loss: float, test_accuracy: float) -> torch.Tensor:
        """Every agent's row of AGENT_COLUMNS (cgatrain/train/summary.py), known to every agent."""
        own = [train_loss, test_loss, test_accuracy, self.exchange.total_bytes_sent(), self.algorithm.dense_bytes_sent,
               self.clock.seconds, self.exchange.total_seconds()]
        self.agent_table = metrics.gather_rows(own, self.rank, self.world_size, self.device)
        return self.agent_table

    def _algorithm_metrics(self) -> dict[str, float]:
        """The algorithm's own epoch metrics, averaged over agents."""
        own = self.algorithm.epoch_metrics()
        keys = sorted(own)
        table = metrics.gather_rows([own[key] for key in keys], self.rank, self.world_size, self.device) if keys else None
        return {key: float(table[:, column].mean()) for column, key in enumerate(keys)} if keys else {}

    def _consensus_scores(self, average: torch.Tensor) -> dict[str, float]:
        """Test loss and accuracy of the average of all agents' models (rank 0 only)."""
        with self.model.holding(average, self.average_buffers):  # the consensus model runs on the agents' mean statistics
            loss, accuracy = metrics.evaluate(self.model.module, self.test_x, self.test_y, self.loss, self.classification)
        scores = {"consensus_test_loss": loss, "consensus_test_accuracy": accuracy}
        optimum = self.data.optimum
        if optimum is not None and optimum.numel() == average.numel():
            # Convex sanity check: how far the averaged model is from the known least-squares optimum.
            scores["consensus_optimum_distance"] = float((average.cpu() - optimum.reshape(-1).to(average.dtype)).norm())
        return scores

    def _stop_mid_epoch(self, epoch: int, progress: dict[str, float]) -> None:
        """Every agent agreed to stop after this step: checkpoint where the epoch stands, then stop."""
        if self.reporter.bar is not None:
            self.reporter.bar.close()
            self.reporter.bar = None
        if self.cfg["checkpoint"].get("enabled", True):
            self._save_checkpoint(epoch, progress)
        # Every agent stops after this step (agreed by all-reduce), so the collective is safe: bytes and seconds up
        # to here, the epoch's loss so far; no test scores (those are taken at epoch ends).
        self._gather_agent_table(progress["epoch_loss"] / max(progress["step"], 1), math.nan, math.nan)
        raise lifecycle.Interrupted(self.lifecycle.agreed)

    def _save_checkpoint(self, completed_epochs: int, progress: dict[str, float] | None = None) -> None:
        root = self.run_dir / "checkpoints"
        step = int(progress["step"]) if progress else 0
        state = {
            "epoch": completed_epochs,
            "params": self.model.params.detach().cpu(),
            **self.model.state_dict(),
            "algorithm": {k: v.detach().cpu() for k, v in self.algorithm.state_dict().items()},
            "exchange": self.exchange.state_dict(),
            **rng.rng_state(self.device),  # CPU generator, plus the GPU's on CUDA
            "compute_seconds": self.clock.seconds,
            "epoch_progress": progress or {},
        }
        checkpoint.save_agent(checkpoint.epoch_dir(root, completed_epochs, step), self.rank, state)
        torch.distributed.barrier()
        if self.rank == 0:
            keep = int(self.cfg["checkpoint"].get("keep", 2))
            checkpoint.mark_latest(root, completed_epochs, self.world_size, keep, self.cfg["algorithm"]["name"], step)

    def _finish(self, status: str, seconds: float) -> None:
        rounds = {name: stats.bytes_sent for name, stats in self.exchange.stats.items() if not name.startswith("_")}
        summary = run_summary(status, self.cfg["algorithm"]["name"], self.world_size, self.history, self.start_epoch,
                              self.steps, self.agent_table, rounds, seconds, self.run_dir,
                              self.lifecycle.steps if status != "completed" and self.lifecycle.steps else None)
        summary.compressor = self.compressor
        if status == "interrupted":
            summary.extra.update(lifecycle.interrupted_fields(self.lifecycle.agreed, self.run_dir))
        self.reporter.finish(summary)
