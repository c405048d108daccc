"""The wire under `NeighborExchange`: how a round's tensors reach the backend, and how its time is taken.

Direct: tensors go to the backend as they are (NCCL on the agent's GPU, Gloo on the CPU).
Staged: the compute device is not the wire device (agents sharing a GPU talk over Gloo, whose
send/recv take CPU tensors only). Each outgoing tensor is copied into a staging buffer on the wire
device (page-locked host memory when CUDA is present) and sent from there; each incoming tensor is
received into a staging buffer and copied to its target in `wait()`. The copies to the host finish
before any send is posted and the copies back finish before `wait()` returns, so a staged round is
ordered exactly like a direct one. `staging=always` stages on CPU-only machines too, which runs this
code path in CPU tests.

Timing: on NCCL the host does not block (work.wait() only makes the compute stream wait), so the
seconds a round costs are the compute stream's stall, taken with CUDA events and settled lazily.
Elsewhere they are host seconds blocked in the round; a staged round on a GPU first drains the
compute stream outside the timer, so queued kernels never count as communication.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist

Pairs = Sequence[tuple[int, torch.Tensor]]


class StagingPool:
    """Reusable staging buffers on the wire device, leased to one round at a time."""

    def __init__(self, device: torch.device, pin_memory: bool) -> None:
        self.device, self.pin_memory = device, pin_memory
        self._free: dict[tuple[tuple[int, ...], torch.dtype], list[torch.Tensor]] = {}
        self.allocated = 0

    def lease(self, like: torch.Tensor) -> torch.Tensor:
        """A buffer shaped like `like`, not used by any round in flight."""
        free = self._free.get((tuple(like.shape), like.dtype))
        if free:
            return free.pop()
        self.allocated += 1
        return torch.empty(like.shape, dtype=like.dtype, device=self.device, pin_memory=self.pin_memory)

    def give_back(self, buffers: Sequence[torch.Tensor]) -> None:
        for buffer in buffers:
            self._free.setdefault((tuple(buffer.shape), buffer.dtype), []).append(buffer)


class StreamStall:
    """CUDA events around the point where the compute stream waits for a round (NCCL)."""

    def __init__(self, stream: torch.cuda.Stream) -> None:
        self.stream = stream  # recorded on the compute stream by name, whatever the current device
        self.ready = torch.cuda.Event(enable_timing=True)
        self.done = torch.cuda.Event(enable_timing=True)

    def start(self) -> None:
        self.ready.record(self.stream)

    def stop(self) -> None:
        self.done.record(self.stream)

    def seconds(self) -> float:
        """How long the compute stream stalled; blocks until the round has completed on the GPU."""
        self.done.synchronize()
        return self.ready.elapsed_time(self.done) / 1000.0


class Flight:
    """The backend requests of one posted round, plus its staging copies still to do."""

    def __init__(self, wire: Wire, requests: list, copy_back: list[tuple[torch.Tensor, torch.Tensor]], leased: list[torch.Tensor]) -> None:
        self.wire, self.requests, self.copy_back, self.leased = wire, requests, copy_back, leased
        self.stall: StreamStall | None = None

    def wait(self) -> None:
        """Complete every request, copying each staged receive to its target as soon as it arrives."""
        if self.wire.stream_timed and self.requests:
            self.stall = StreamStall(torch.cuda.current_stream(self.wire.compute))
            self.stall.start()
        # Staged Gloo rounds post their receives first, so request i < len(copy_back) is receive i.
        in_order = not self.wire.coalesced
        for index, request in enumerate(self.requests):
            request.wait()
            if in_order and index < len(self.copy_back):
                staged, target = self.copy_back[index]
                target.copy_(staged, non_blocking=self.wire.async_copies)
        if self.stall is not None:
            self.stall.stop()
        if not in_order:
            for staged, target in self.copy_back:
                target.copy_(staged)
        self.wire.synchronize_copies()
        self.wire.pool.give_back(self.leased)
        self.requests, self.copy_back, self.leased = [], [], []


class Wire:
    """Posts a round's sends and receives on the backend, directly or through staging buffers."""

    def __init__(self, compute: torch.device, backend: str, staged: bool, wire_device: torch.device | None = None) -> None:
        self.compute, self.backend, self.staged = compute, backend, staged
        self.device = wire_device if wire_device is not None else (compute if backend == "nccl" else torch.device("cpu"))
        if not staged and self.device != compute and compute.type == "cuda":
            raise ValueError(f"{backend} sends {self.device} tensors but the agent computes on {compute}: the wire must be staged")
        pin = staged and self.device.type == "cpu" and compute.type == "cuda"  # see DevicePlan.pin_memory
        self.pool = StagingPool(self.device, pin)
        # Copies between pinned host memory and a GPU may run asynchronously; they are synchronized below.
        self.async_copies = pin and compute.type == "cuda"
        self.stream_timed = backend == "nccl" and compute.type == "cuda"
        self.coalesced = backend == "nccl"
        self.staged_bytes = 0  # bytes copied through staging buffers, both directions

    @classmethod
    def for_process_group(cls, compute: torch.device, staging: str = "auto") -> Wire:
        """The wire for this process's initialized group (Gloo when none is up, as in unit tests)."""
        backend = dist.get_backend() if dist.is_initialized() else "gloo"
        wire_device = compute if backend == "nccl" else torch.device("cpu")
        return cls(compute, backend, staged=compute != wire_device or staging == "always", wire_device=wire_device)

    def describe(self) -> str:
        """E.g. "cuda:0, gloo through pinned host buffers" for the run banner."""
        if not self.staged:
            return f"{self.compute}, {self.backend}"
        return f"{self.compute}, {self.backend} through {'pinned ' if self.pool.pin_memory else ''}{self.device.type} staging buffers"

    def drain(self) -> None:
        """Let the compute stream finish what it queued (untimed), so staging copies time only themselves."""
        if self.staged and self.compute.type == "cuda":
            torch.cuda.current_stream(self.compute).synchronize()

    def synchronize_copies(self) -> None:
        if self.async_copies:
            torch.cuda.current_stream(self.compute).synchronize()

    def start(self, outgoing: Pairs, incoming: Pairs) -> Flight:
        """Post every send and receive of a round at once; sends leave in `outgoing` order, per peer."""
        if not outgoing and not incoming:
            return Flight(self, [], [], [])
        if not self.staged:
            return Flight(self, self._post(outgoing, incoming), [], [])
        self.staged_bytes += sum(t.numel() * t.element_size() for _, t in [*outgoing, *incoming])
        receives = [(peer, self.pool.lease(tensor)) for peer, tensor in incoming]
        copy_back = [(buffer, target) for (_, buffer), (_, target) in zip(receives, incoming)]
        leased = [buffer for _, buffer in receives]
        # A tensor sent to several peers (a gossiped model) is copied once and sent from one buffer.
        copies: dict[tuple, tuple[torch.Tensor, torch.cuda.Event | None]] = {}
        sends = []
        try:
            for peer, tensor in outgoing:
                key = (tensor.data_ptr(), tuple(tensor.shape), tuple(tensor.stride()), tensor.dtype)
                if key not in copies:
                    buffer = self.pool.lease(tensor)
                    leased.append(buffer)
                    buffer.copy_(tensor, non_blocking=self.async_copies)
                    copies[key] = (buffer, self._copy_event())
                sends.append((peer, *copies[key]))
            if self.coalesced:
                return Flight(self, self._post([(peer, buffer) for peer, buffer, _ in sends], receives), copy_back, leased)
            # Receives first, then each send as soon as its copy has landed: peers never wait for
            # this agent's copies to post their own transfers.
            requests = [dist.irecv(buffer, peer) for peer, buffer in receives]
            for peer, buffer, event in sends:
                if event is not None:
                    event.synchronize()
                requests.append(dist.isend(buffer, peer))
        except RuntimeError:
            self.pool.give_back(leased)
            raise
        return Flight(self, requests, copy_back, leased)

    def _copy_event(self) -> torch.cuda.Event | None:
        """An event after the last queued copy to the host (None where copies are synchronous)."""
        if not self.async_copies:
            return None
        event = torch.cuda.Event()
        event.record(torch.cuda.current_stream(self.compute))
        return event

    def _post(self, outgoing: Pairs, incoming: Pairs) -> list:
        if self.coalesced:
            # One grouped NCCL launch per round.
            operations = [dist.P2POp(dist.isend, t, peer) for peer, t in outgoing]
            operations += [dist.P2POp(dist.irecv, t, peer) for peer, t in incoming]
            return dist.batch_isend_irecv(operations)
        # Gloo cannot coalesce: batch_isend_irecv would loop over isend/irecv anyway, only slower.
        return [dist.isend(t, peer) for peer, t in outgoing] + [dist.irecv(t, peer) for peer, t in incoming]

    def all_reduce(self, tensor: torch.Tensor) -> StreamStall | None:
        """Sum `tensor` over all agents in place, staged like a round; CUDA events around it on NCCL."""
        if self.stream_timed:
            stall = StreamStall(torch.cuda.current_stream(self.compute))
            stall.start()
            dist.all_reduce(tensor)
            stall.stop()
            return stall
        if not self.staged:
            dist.all_reduce(tensor)
            return None
        buffer = self.pool.lease(tensor)
        buffer.copy_(tensor, non_blocking=self.async_copies)
        self.synchronize_copies()
        try:
            dist.all_reduce(buffer)
            tensor.copy_(buffer, non_blocking=self.async_copies)
            self.synchronize_copies()
        finally:
            self.pool.give_back([buffer])
        self.staged_bytes += 2 * tensor.numel() * tensor.element_size()
        return None
