"""Compute time of training steps: the time inside steps less the communication counted in them.

Where rounds are timed on the host (CPU agents, Gloo), each step is timed on the host clock. Where
the exchange times rounds on the GPU's compute stream (NCCL), host clocks would measure only kernel
launches, so steps are bracketed by CUDA events instead and read in `settle()`, which the trainer
calls where it waits for the GPU anyway (every `train.log_every` steps): no step waits for the GPU.
"""

from __future__ import annotations

import time

import torch

from cgatrain.comm import NeighborExchange


class StepClock:
    """Accumulates `seconds` of computation over the steps bracketed by `start()` and `stop()`."""

    def __init__(self, exchange: NeighborExchange, seconds: float = 0.0) -> None:
        self.exchange = exchange
        self.on_stream = exchange.wire.stream_timed
        self._seconds = seconds
        self._host_started, self._comm_at_start = 0.0, 0.0
        self._event_started: torch.cuda.Event | None = None
        self._unread: list[tuple[torch.cuda.Event, torch.cuda.Event]] = []
        self._comm_mark = 0.0

    def start(self) -> None:
        """A step begins."""
        if self.on_stream:
            self._event_started = torch.cuda.Event(enable_timing=True)
            self._event_started.record(torch.cuda.current_stream(self.exchange.device))
        else:
            self._host_started, self._comm_at_start = time.perf_counter(), self.exchange.total_seconds()

    def stop(self) -> None:
        """The step begun by the last `start()` has been queued (on a GPU) or has run (on a CPU)."""
        if self.on_stream:
            ended = torch.cuda.Event(enable_timing=True)
            ended.record(torch.cuda.current_stream(self.exchange.device))
            self._unread.append((self._event_started, ended))
        else:
            self._seconds += time.perf_counter() - self._host_started - (self.exchange.total_seconds() - self._comm_at_start)

    def mark(self) -> None:
        """Communication counted before now belongs to no pending step (call it between steps)."""
        self.settle()
        self._comm_mark = self.exchange.total_seconds()

    def settle(self) -> float:
        """Read the pending steps' events (waiting for the GPU) and return the compute seconds so far."""
        if self._unread:
            step_seconds = 0.0
            for started, ended in self._unread:
                ended.synchronize()
                step_seconds += started.elapsed_time(ended) / 1000.0
            self._unread.clear()
            comm = self.exchange.total_seconds()
            self._seconds += step_seconds - (comm - self._comm_mark)
            self._comm_mark = comm
        return self._seconds

    @property
    def seconds(self) -> float:
        """Compute seconds of every step so far (reads pending GPU events)."""
        return self.settle()
