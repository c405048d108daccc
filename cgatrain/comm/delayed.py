"""Delayed gossip rounds: a round posted at step t is collected at step t + tau, really in flight meanwhile.

`DelayedGossip.post(step, ...)` snapshots the tensor into a ring slot and starts its sends and receives
at once; `collect(step)` waits only for the round posted at `step - delay`, so tau steps of compute run
while that round travels (no sleeping: a delayed run is never slower than an undelayed one). Rounds
between the same two agents stay in posting order on Gloo and NCCL, so slots never mix.

Checkpoints drain: `state_dict()` waits for the rounds still in flight (every agent posted them in the
same lock-step steps, so they complete) and saves their payloads: this agent's sent snapshots and what
each neighbour sent, keyed by the step they were posted at. `load_state_dict()` puts them back as arrived
rounds, so a resumed run consumes exactly the states an uninterrupted one would have.

A send completes once written, so an agent may finish (and leave the process group) while a
neighbour still posts the receives of its last round: the trainer's collectives after the last step
hold every agent until all are done; code that tears down right after `drain()` should barrier first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from cgatrain.comm.exchange import NeighborExchange, PendingRound


@dataclass
class DelayedRound:
    """One round: what this agent sent, what its in-neighbours sent, and the wait that completes it."""

    step: int
    sent: torch.Tensor
    received: dict[int, torch.Tensor]
    pending: PendingRound | None

    def complete(self) -> DelayedRound:
        if self.pending is not None:
            self.pending.wait()
            self.pending = None
        return self


class DelayedGossip:
    """Gossip rounds of one name with a uniform delay of `delay` steps (0: collected in the same step)."""

    def __init__(self, exchange: NeighborExchange, name: str, delay: int) -> None:
        if delay < 0:
            raise ValueError(f"a round's delay must be >= 0 steps, got {delay}")
        self.exchange, self.name, self.delay = exchange, name, delay
        self.rounds: dict[int, DelayedRound] = {}

    def _slot(self, step: int) -> int:
        return step % (self.delay + 1)

    def post(self, step: int, tensor: torch.Tensor, out_neighbors: Sequence[int], in_neighbors: Sequence[int]) -> None:
        """Start sending a snapshot of `tensor` to out-neighbours and receiving from in-neighbours."""
        if step in self.rounds:
            raise RuntimeError(f"round {self.name!r} of step {step} was already posted")
        slot = self._slot(step)
        # The slot's previous round (step - delay - 1) was collected last step, so its buffers are free.
        sent = self.exchange.receive_buffers(f"{self.name}/sent", tensor, [-1], slot)[-1]
        sent.copy_(tensor)
        received = self.exchange.receive_buffers(self.name, tensor, in_neighbors, slot)
        pending = self.exchange.post(self.name, {peer: sent for peer in out_neighbors}, received)
        self.rounds[step] = DelayedRound(step, sent, received, pending)

    def post_initial(self, tensor: torch.Tensor, out_neighbors: Sequence[int], in_neighbors: Sequence[int]) -> None:
        """The state of the `delay` steps before step 0: sent once, and its copies stand in for the other steps."""
        if self.delay == 0:
            return
        self.post(-self.delay, tensor, out_neighbors, in_neighbors)
        first = self.rounds[-self.delay].complete()
        for step in range(1 - self.delay, 0):
            slot = self._slot(step)
            sent = self.exchange.receive_buffers(f"{self.name}/sent", tensor, [-1], slot)[-1]
            sent.copy_(first.sent)
            received = self.exchange.receive_buffers(self.name, tensor, in_neighbors, slot)
            for peer, buffer in received.items():
                buffer.copy_(first.received[peer])
            self.rounds[step] = DelayedRound(step, sent, received, None)

    def collect(self, step: int) -> DelayedRound | None:
        """The round posted at `step - delay`, completed; None before the first one was posted."""
        posted = step - self.delay
        if posted not in self.rounds:
            return None
        return self.rounds.pop(posted).complete()

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Every round not yet collected, drained and saved (keys `STEP:sent` and `STEP:from:PEER`)."""
        state: dict[str, torch.Tensor] = {}
        for step, round_ in sorted(self.rounds.items()):
            round_.complete()
            state[f"{step}:sent"] = round_.sent.detach().cpu().clone()
            for peer, tensor in round_.received.items():
                state[f"{step}:from:{peer}"] = tensor.detach().cpu().clone()
        return state

    def load_state_dict(self, state: Mapping[str, torch.Tensor], device: torch.device) -> None:
        """Restore the saved rounds as already arrived ones (rounds posted since are completed, then dropped)."""
        for round_ in self.rounds.values():
            round_.complete()  # their buffers are reused by later posts
        self.rounds = {}
        for key, value in state.items():
            step, kind, *peer = key.split(":")
            round_ = self.rounds.setdefault(int(step), DelayedRound(int(step), value, {}, None))
            if kind == "sent":
                round_.sent = value.to(device)
            else:
                round_.received[int(peer[0])] = value.to(device)
