"""The spawning parent's watch over its agents: signals forwarded, hangs and deaths named, nothing left behind."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Sequence
from multiprocessing.connection import wait as wait_for_exit
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from cgatrain.train import lifecycle

# After the first SIGTERM/SIGINT the agents get this long to reach a step boundary, checkpoint and exit.
STOP_GRACE_SECONDS = 30.0
# The exit status multiprocessing reports when the fork server that would have told it is gone.
LOST_EXIT_CODE = 255
# Sent once more this long after the first forward, for an agent that was not listening yet.
REFORWARD_SECONDS = 2.0
# An agent that failed only because a neighbour's connection broke is named after this long if no other one failed.
PEER_GRACE_SECONDS = 2.0
# A second stop signal kills the agents only this long after the first: scancel, `timeout` and a batch script's
# trap signal the whole process group and then the command itself, milliseconds apart, and mean one stop.
REPEAT_SECONDS = 0.5
HANDLED_SIGNALS = (*lifecycle.STOP_SIGNALS, lifecycle.REQUEUE_SIGNAL)


class AgentFailure(RuntimeError):
    """An agent process died, raised or hung; the message names the agent."""

    def __init__(self, message: str, agent: int) -> None:
        super().__init__(message)
        self.agent = agent


def process_state(pid: int) -> str | None:
    """A Linux process's state letter (R, S, T for stopped, Z, ...) or None where /proc cannot tell."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def describe_exit(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        return f"was killed by {signal.Signals(-exitcode).name}"
    return f"exited with code {exitcode}"


class Supervisor:
    """Starts and waits for the agents; `run()` returns None when they all finished, or the stop reason."""

    def __init__(self, processes: Sequence[BaseProcess], store: Any, timeout_s: float, poll_seconds: float = 0.25) -> None:
        self.processes, self.store, self.timeout_s, self.poll = list(processes), store, timeout_s, poll_seconds
        self.signals: list[int] = []
        self.first_stop_at: float | None = None
        self.first_failure_at: float | None = None  # when an agent was first seen to have failed
        self.repeated_stop = False  # a stop signal again, REPEAT_SECONDS or more after the first
        self.forwarded_at: float | None = None
        self.reforwarded = False
        self.killed_on_purpose = False  # a second stop signal or the grace period ran out
        self.beats: dict[int, tuple[str, float]] = {}  # rank -> (last beat, parent time it changed)

    def on_signal(self, signum: int, _frame: Any) -> None:
        self.signals.append(signum)
        if signum in lifecycle.STOP_SIGNALS:
            now = time.monotonic()
            if self.first_stop_at is None:
                self.first_stop_at = now
            elif now - self.first_stop_at >= REPEAT_SECONDS:
                self.repeated_stop = True

    def run(self) -> str | None:
        previous = {s: signal.signal(s, self.on_signal) for s in HANDLED_SIGNALS}
        try:
            try:
                self._start_all()
            except Exception:
                if not self.signals:
                    raise
                return self._stop_reason()  # stopped while the agents were starting: nothing to save yet
            return self._watch()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            self.kill_all()

    def _start_all(self) -> None:
        for process in self.processes:
            if process.pid is None:
                process.start()

    def _exit_codes(self) -> list[int | None]:
        """Each agent's exit status; None while it runs, even where the fork server that reports it died."""
        codes = []
        for process in self.processes:
            code = process.exitcode
            if code == LOST_EXIT_CODE and process.pid is not None:
                if process_state(process.pid) not in (None, "Z"):
                    code = None  # still running: its real status is lost, wait for it to end
                elif self.signals:
                    code = lifecycle.exit_code(self._stop_reason())  # it ended after the stop we forwarded
            codes.append(code)
        return codes

    def _watch(self) -> str | None:
        while True:
            self._handle_signals()
            codes = self._exit_codes()
            if self.killed_on_purpose and all(code is not None for code in codes):
                return self._stop_reason()
            failed = [rank for rank, code in enumerate(codes) if code not in (None, 0) and lifecycle.reason_from_exit_code(code) is None]
            culprit = self._culprit(failed)
            if culprit is not None:
                raise AgentFailure(self._failure_message(culprit, codes[culprit]), culprit)
            if all(code is not None for code in codes):
                reasons = [lifecycle.reason_from_exit_code(code) for code in codes]
                return self._stop_reason() or next((r for r in reasons if r), None)
            self._check_liveness()
            running = [p.sentinel for p, code in zip(self.processes, codes) if code is None and p.exitcode is None]
            if running:
                wait_for_exit(running, timeout=self.poll)
            else:
                time.sleep(self.poll)  # only agents whose fork server died: poll their pids

    def _culprit(self, failed: list[int]) -> int | None:
        """The failed agent to name: one with an error of its own before one that only lost a neighbour (PeerError),
        whose cause may still be exiting; after PEER_GRACE_SECONDS, the first that failed."""
        if not failed:
            return None
        own = [rank for rank in failed if not (self._agent_error(rank) or "").startswith("PeerError")]
        if own:
            return own[0]
        now = time.monotonic()
        self.first_failure_at = self.first_failure_at or now
        return failed[0] if now - self.first_failure_at >= PEER_GRACE_SECONDS else None

    def _stop_reason(self) -> str | None:
        stops = [s for s in self.signals if s in lifecycle.STOP_SIGNALS]
        if stops:
            return signal.Signals(stops[0]).name
        return lifecycle.REQUEUE_SIGNAL.name if self.signals else None

    def _handle_signals(self) -> None:
        if not self.signals:
            return
        if self.forwarded_at is None:
            self.forwarded_at = time.monotonic()
            self._forward()
            return
        if not self.reforwarded and time.monotonic() - self.forwarded_at > REFORWARD_SECONDS:
            # An agent forked just before the first one ignored it (SIG_IGN until its handlers are in).
            self.reforwarded = True
            self._forward()
        if self.repeated_stop or time.monotonic() - self.forwarded_at > STOP_GRACE_SECONDS:
            self.killed_on_purpose = True  # the run was stopped, not broken: the last checkpoint stands
            self.kill_all()

    def _forward(self) -> None:
        # The signal the parent got, so the summary names it (Ctrl-C may reach the agents directly too: harmless).
        stops = [s for s in self.signals if s in lifecycle.STOP_SIGNALS]
        forward = stops[0] if stops else lifecycle.REQUEUE_SIGNAL
        for process, code in zip(self.processes, self._exit_codes()):
            if code is None and process.pid is not None:
                _send(process.pid, forward)

    def _check_liveness(self) -> None:
        try:
            seen = lifecycle.read_liveness(self.store, len(self.processes))
        except Exception:
            return
        now = time.monotonic()
        for rank, beat in seen.items():
            text = " ".join(map(str, beat))
            if self.beats.get(rank, ("", 0.0))[0] != text:
                self.beats[rank] = (text, now)
        for rank, (_, changed) in self.beats.items():
            if now - changed > self.timeout_s and self.processes[rank].exitcode is None:
                raise AgentFailure(f"{self._stalled(rank, now)}; stopped the run after comm.timeout_s={self.timeout_s:g} s", rank)

    def _stalled(self, rank: int, now: float) -> str:
        pid = self.processes[rank].pid
        steps = self.beats[rank][0].split()[1]
        state = {"T": " (the process is stopped, e.g. by SIGSTOP)", "t": " (the process is being traced)", "Z": " (zombie)"}.get(process_state(pid) or "", "")
        return f"agent {rank} (pid {pid}) stopped responding: no liveness beat for {now - self.beats[rank][1]:.1f} s after {steps} steps{state}"

    def _failure_message(self, rank: int, code: int | None) -> str:
        now = time.monotonic()
        pid = self.processes[rank].pid
        own = self._agent_error(rank) or describe_exit(code)
        stalled = [r for r, (_, changed) in self.beats.items() if r != rank and now - changed > lifecycle.STALE_SECONDS and self.processes[r].exitcode is None]
        if stalled:
            # The agent that gave up waiting is not the culprit: name the one that stopped beating.
            return f"{self._stalled(stalled[0], now)}; agent {rank} (pid {pid}) gave up waiting for it: {own}"
        return f"agent {rank} (pid {pid}) {own if own.startswith(('was', 'exited')) else 'failed: ' + own}"

    def _agent_error(self, rank: int) -> str | None:
        key = lifecycle.ERROR_KEY.format(rank=rank)
        try:
            return self.store.get(key).decode() if self.store.check([key]) else None
        except Exception:
            return None

    def kill_all(self) -> None:
        """SIGKILL every agent still running (stopped ones too) and reap them; never-started ones are skipped."""
        started = [p for p in self.processes if p.pid is not None]
        for process, code in zip(self.processes, self._exit_codes()):
            if code is None and process.pid is not None:
                _send(process.pid, signal.SIGKILL)
        for process in started:
            process.join(timeout=5)


def _send(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass
