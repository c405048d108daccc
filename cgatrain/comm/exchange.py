"""Neighbour exchange: every send and receive of a round posted at once, with byte and time counters."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import torch

from cgatrain.comm.staging import Flight, StreamStall, Wire

Payload = torch.Tensor | Sequence[torch.Tensor]


class PeerError(RuntimeError):
    """A neighbour exchange failed, most often because a peer died or timed out."""


@dataclass
class RoundStats:
    """What one named round has cost this agent so far."""

    calls: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return {"calls": self.calls, "bytes_sent": self.bytes_sent, "bytes_received": self.bytes_received, "seconds": self.seconds}


def _as_list(payload: Payload) -> list[torch.Tensor]:
    return [payload] if isinstance(payload, torch.Tensor) else list(payload)


def _nbytes(tensors: Iterable[torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


class PendingRound:
    """A posted round; `wait()` blocks until every send and receive of it has completed."""

    def __init__(self, owner: NeighborExchange, name: str, flight: Flight, peers: list[int], started: float) -> None:
        self._owner, self._name, self._flight, self._peers = owner, name, flight, peers
        self._blocked_seconds = time.perf_counter() - started
        self._done = False

    def wait(self) -> None:
        """Complete the round; the time spent blocked here counts as communication time."""
        if self._done:
            return
        self._owner.wire.drain()  # GPU work queued since the post is compute, not communication
        started = time.perf_counter()
        try:
            self._flight.wait()
        except RuntimeError as error:
            raise PeerError(
                f"agent {self._owner.rank}: round {self._name!r} with neighbours {self._peers} failed: {error}"
            ) from error
        self._done = True
        self._owner._count_seconds(self._name, self._blocked_seconds + time.perf_counter() - started, self._flight.stall)


class NeighborExchange:
    """Point-to-point rounds between this agent and its graph neighbours.

    Each round posts all sends to out-neighbours and all receives from in-neighbours at once
    (one `batch_isend_irecv` on NCCL), in ascending peer order on both ends (NCCL ignores tags).
    """

    def __init__(self, rank: int, world_size: int, device: torch.device, staging: str = "auto", wire: Wire | None = None) -> None:
        self.rank = rank
        self.world_size = world_size
        self.device = device  # the compute device: where every tensor handed to a round lives
        self.stats: dict[str, RoundStats] = {}
        # The communication device and how tensors reach it (direct or staged): see comm/staging.py.
        self.wire = wire if wire is not None else Wire.for_process_group(device, staging)
        self._buffers: dict[tuple[str, int, int], torch.Tensor] = {}
        self._unsettled: list[tuple[RoundStats, StreamStall]] = []

    def post(self, name: str, sends: Mapping[int, Payload], recvs: Mapping[int, Payload]) -> PendingRound:
        """Start a round: `sends[peer]` goes to peer, `recvs[peer]` (preallocated) is filled from peer."""
        self.wire.drain()
        started = time.perf_counter()
        stats = self.stats.setdefault(name, RoundStats())
        outgoing = [(peer, tensor) for peer in sorted(sends) for tensor in _as_list(sends[peer])]
        incoming = [(peer, tensor) for peer in sorted(recvs) for tensor in _as_list(recvs[peer])]
        stats.calls += 1
        stats.bytes_sent += _nbytes(tensor for _, tensor in outgoing)
        stats.bytes_received += _nbytes(tensor for _, tensor in incoming)
        peers = sorted(set(sends) | set(recvs))
        try:
            flight = self.wire.start(outgoing, incoming)
        except RuntimeError as error:
            raise PeerError(f"agent {self.rank}: posting round {name!r} to neighbours {peers} failed: {error}") from error
        return PendingRound(self, name, flight, peers, started)

    def _count_seconds(self, name: str, host_seconds: float, stall: StreamStall | None) -> None:
        """Host seconds blocked, or on NCCL the compute stream's stall (read from CUDA events later)."""
        stats = self.stats[name]
        if stall is not None:
            self._unsettled.append((stats, stall))
        elif not self.wire.stream_timed:
            stats.seconds += host_seconds

    def _settle(self) -> None:
        """Fold the CUDA-event timings of completed rounds into the counters (waits for the GPU)."""
        for stats, stall in self._unsettled:
            stats.seconds += stall.seconds()
        self._unsettled.clear()

    def exchange(self, name: str, sends: Mapping[int, Payload], recvs: Mapping[int, Payload]) -> None:
        """Post a round and wait for it."""
        self.post(name, sends, recvs).wait()

    def receive_buffers(self, name: str, like: torch.Tensor, peers: Sequence[int], slot: int = 0) -> dict[int, torch.Tensor]:
        """Reusable receive buffers shaped like `like`, one per peer (allocated once per round and slot)."""
        buffers = {}
        for peer in peers:
            key = (name, peer, slot)
            buffer = self._buffers.get(key)
            if buffer is None or buffer.shape != like.shape or buffer.dtype != like.dtype:
                buffer = torch.empty_like(like, device=self.device)
                self._buffers[key] = buffer
            buffers[peer] = buffer
        return buffers

    def post_gossip(self, name: str, tensor: torch.Tensor, out_neighbors: Sequence[int], in_neighbors: Sequence[int]) -> tuple[PendingRound, dict[int, torch.Tensor]]:
        """Start sending `tensor` to every out-neighbour and receiving one like it from every in-neighbour."""
        received = self.receive_buffers(name, tensor, in_neighbors)
        pending = self.post(name, {peer: tensor for peer in out_neighbors}, received)
        return pending, received

    def gossip(self, name: str, tensor: torch.Tensor, out_neighbors: Sequence[int], in_neighbors: Sequence[int]) -> dict[int, torch.Tensor]:
        """Send `tensor` to out-neighbours and return what each in-neighbour sent."""
        pending, received = self.post_gossip(name, tensor, out_neighbors, in_neighbors)
        pending.wait()
        return received

    def all_reduce_mean(self, name: str, tensor: torch.Tensor) -> None:
        """Average `tensor` over all agents in place; bytes counted as a ring all-reduce moves them."""
        # A ring all-reduce sends and receives 2(n-1)/n of the buffer per agent.
        moved = int(2 * (self.world_size - 1) * _nbytes([tensor]) / self.world_size)
        self.all_reduce_sum(name, tensor, moved, moved)
        tensor.div_(self.world_size)

    def all_reduce_sum(self, name: str, tensor: torch.Tensor, bytes_sent: int, bytes_received: int) -> None:
        """Sum `tensor` over all agents in place, counting the bytes the caller's protocol moves.

        For a role played over the all-reduce, e.g. FedAvg's server: a client counts its upload
        and its download, not the all-reduce's own traffic.
        """
        self.wire.drain()
        started = time.perf_counter()
        stats = self.stats.setdefault(name, RoundStats())
        try:
            stall = self.wire.all_reduce(tensor)
        except RuntimeError as error:
            raise PeerError(f"agent {self.rank}: all-reduce round {name!r} failed: {error}") from error
        stats.calls += 1
        stats.bytes_sent += int(bytes_sent)
        stats.bytes_received += int(bytes_received)
        self._count_seconds(name, time.perf_counter() - started, stall)

    def warm_up(self, peers: Iterable[int]) -> None:
        """Exchange one element with each peer so NCCL builds its p2p communicators now (pytorch#108378)."""
        peer_list = sorted(set(peers) - {self.rank})
        token = torch.zeros(1, device=self.device)
        buffers = {peer: torch.empty(1, device=self.device) for peer in peer_list}
        self.exchange("_warm_up", {peer: token for peer in peer_list}, buffers)
        self._settle()
        del self.stats["_warm_up"]

    def total_bytes_sent(self) -> int:
        """Bytes this agent has sent in all algorithm rounds."""
        return sum(stats.bytes_sent for name, stats in self.stats.items() if not name.startswith("_"))

    def total_seconds(self) -> float:
        """Seconds this agent has spent blocked in communication (on NCCL: its compute stream has)."""
        self._settle()
        return sum(stats.seconds for name, stats in self.stats.items() if not name.startswith("_"))

    def state_dict(self) -> dict[str, dict[str, float]]:
        """Counters, so a resumed run reports the same totals as an uninterrupted one."""
        self._settle()
        return {name: stats.as_dict() for name, stats in self.stats.items()}

    def load_state_dict(self, state: Mapping[str, Mapping[str, float]]) -> None:
        self.stats = {
            name: RoundStats(int(s["calls"]), int(s["bytes_sent"]), int(s["bytes_received"]), float(s["seconds"]))
            for name, s in state.items()
        }
