"""An agent's run lifecycle: stop and checkpoint requests from signals, agreed by all agents at a
step boundary, and liveness beats that let whoever notices a hang name the agent that stopped.

Signals only set flags here; the trainer folds the flags into the all-reduce it already makes every
`train.log_every` steps, so every agent stops after the same step, takes the same checkpoint and exits.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import math
import os
import shlex
import signal
import threading
import time
from pathlib import Path
from typing import Any

from cgatrain.comm.launch_env import detect_launch_env

# SIGTERM/SIGINT: checkpoint at the next boundary and stop. SIGUSR1 (Slurm's warning before the time
# limit, `#SBATCH --signal=USR1@120`): the same, exiting with EXIT_REQUEUE so the job script requeues.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
REQUEUE_SIGNAL = signal.SIGUSR1
EXIT_REQUEUE = 75  # EX_TEMPFAIL: stopped on purpose, resumable
ALIVE_KEY = "cgatrain/alive/{rank}"
ERROR_KEY = "cgatrain/error/{rank}"
COMMAND_VARIABLE = "CGATRAIN_COMMAND"  # `python run.py` when a user's script runs cgatrain
BEAT_SECONDS = 1.0
STALE_SECONDS = 5.0  # several missed beats: the process is not running (stopped, frozen, gone)


class Interrupted(Exception):
    """All agents agreed to stop at this step boundary."""


def exit_code(reason: str | None) -> int:
    """Process exit status for a stop reason: 75 for a requeue request, 128 + signal otherwise."""
    if reason is None:
        return 0
    if reason == REQUEUE_SIGNAL.name:
        return EXIT_REQUEUE
    return 128 + int(getattr(signal.Signals, reason, signal.SIGTERM))


def reason_from_exit_code(code: int | None) -> str | None:
    """The stop reason an agent's exit status stands for, or None when it is no clean stop."""
    if code == EXIT_REQUEUE:
        return REQUEUE_SIGNAL.name
    if code is not None and code - 128 in {int(s) for s in STOP_SIGNALS}:
        return signal.Signals(code - 128).name
    return None


class Lifecycle:
    """This process's stop requests and progress; one per agent process (see `current()`)."""

    def __init__(self) -> None:
        self.requested: list[int] = []  # signal numbers received, in order
        self.agreed: str | None = None  # the stop reason every agent agreed on
        self.steps = 0  # training steps completed, read by the liveness thread
        self._beat: _LivenessBeat | None = None

    def install_signal_handlers(self) -> None:
        """SIGTERM, SIGINT and SIGUSR1 only set a flag: the step in flight finishes, nothing is torn."""
        for signum in (*STOP_SIGNALS, REQUEUE_SIGNAL):
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self.requested.append(signum)

    def local_flags(self) -> list[float]:
        """[stop asked here, requeue asked here], summed over agents by the trainer's all-reduce."""
        stop = any(s in STOP_SIGNALS for s in self.requested)
        return [float(stop), float(REQUEUE_SIGNAL in self.requested)]

    def agree(self, summed_flags: Any) -> None:
        """Record the stop every agent now knows of; a stop wins over a requeue request."""
        stop, requeue = float(summed_flags[0]), float(summed_flags[1])
        if stop > 0:
            own = [signal.Signals(s).name for s in self.requested if s in STOP_SIGNALS]
            self.agreed = own[0] if own else signal.SIGTERM.name
        elif requeue > 0:
            self.agreed = REQUEUE_SIGNAL.name

    def start_liveness(self, store: Any, rank: int, parent_pid: int | None = None) -> None:
        """Beat `alive/<rank>` into the rendezvous store every second from a background thread."""
        self._beat = _LivenessBeat(store, rank, self, parent_pid)
        self._beat.start()

    def stop_liveness(self) -> None:
        if self._beat is not None:
            self._beat.done.set()
            self._beat = None


class _LivenessBeat(threading.Thread):
    """Writes "<beats> <steps> <unix time>"; a SIGSTOPped or frozen process stops writing."""

    def __init__(self, store: Any, rank: int, owner: Lifecycle, parent_pid: int | None) -> None:
        super().__init__(name=f"cgatrain-liveness-{rank}", daemon=True)
        self.store, self.key, self.owner, self.parent_pid = store, ALIVE_KEY.format(rank=rank), owner, parent_pid
        self.done = threading.Event()

    def run(self) -> None:
        beats = 0
        while not self.done.is_set():
            beats += 1
            # A store whose host is gone raises; the training loop will notice that on its own.
            with contextlib.suppress(Exception):
                self.store.set(self.key, f"{beats} {self.owner.steps} {time.time():.3f}")
            if self.parent_pid is not None and not _alive(self.parent_pid) and not self.owner.requested:
                # Orphaned (the cgatrain parent was SIGKILLed): stop cleanly instead of training on alone.
                os.kill(os.getpid(), signal.SIGTERM)
            self.done.wait(BEAT_SECONDS)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_liveness(store: Any, world_size: int) -> dict[int, tuple[int, int, float]]:
    """{rank: (beats, steps completed, unix time of the beat)} for every agent that has beaten."""
    seen: dict[int, tuple[int, int, float]] = {}
    for rank in range(world_size):
        key = ALIVE_KEY.format(rank=rank)
        if store.check([key]):
            beats, steps, stamp = store.get(key).decode().split()
            seen[rank] = (int(beats), int(steps), float(stamp))
    return seen


def describe_stalled(store: Any, world_size: int, exclude: int | None = None) -> str | None:
    """Name the agents whose liveness beats stopped, from any process that can reach the store."""
    try:
        store.set_timeout(datetime.timedelta(seconds=3))
        seen = read_liveness(store, world_size)
    except Exception as error:
        return f"the rendezvous store did not answer ({str(error).splitlines()[0][:120]}); its host (rank 0 under srun) may be the one that stopped"
    now = time.time()
    stalled = [(rank, now - stamp, steps) for rank, (_, steps, stamp) in sorted(seen.items()) if now - stamp > STALE_SECONDS and rank != exclude]
    stalled += [(rank, math.nan, 0) for rank in range(world_size) if rank not in seen and rank != exclude]
    if not stalled:
        return None
    return "; ".join(
        f"agent {rank} never reported liveness" if math.isnan(age) else f"agent {rank} stopped responding (no liveness beat for {age:.1f} s, {steps} steps completed)"
        for rank, age, steps in stalled
    )


def last_checkpoint(run_dir: Path) -> Path | None:
    """The folder latest.json points at (the last complete checkpoint), if any."""
    latest = run_dir / "checkpoints" / "latest.json"
    try:
        return latest.parent / json.loads(latest.read_text())["dir"]
    except (OSError, ValueError, KeyError):
        return None


def program(argv0: str) -> list[str]:
    """`cgatrain`, or the user's own script (`python run.py`) that registers plugins before calling cgatrain."""
    return ["cgatrain"] if Path(argv0).stem in ("cgatrain", "__main__", "entry") else ["python", argv0]


def name_the_command(argv0: str) -> None:
    """Tell this process and the agents it starts how the user ran cgatrain, for the resume hints they print."""
    os.environ[COMMAND_VARIABLE] = shlex.join(program(argv0))


def resume_hint(run_dir: Path) -> str:
    """One line telling the user how to go on from where the run stopped."""
    saved = last_checkpoint(run_dir)
    if saved is None:
        return f"no checkpoint was written, so nothing to resume; run files: {run_dir}"
    env = detect_launch_env()
    command = os.environ.get(COMMAND_VARIABLE, "cgatrain")
    how = f"{command} resume={run_dir}" if env is None else f"the same {env.launcher} command plus resume={run_dir}"
    return f"last checkpoint: {saved} -- continue with: {how}"


def interrupted_fields(reason: str | None, run_dir: Path) -> dict[str, Any]:
    """What summary.json says about a stopped run besides its status."""
    saved = last_checkpoint(run_dir)
    return {"stopped_by": reason, "checkpoint": str(saved) if saved else None, "resume": resume_hint(run_dir)}


_CURRENT = Lifecycle()


def current() -> Lifecycle:
    """This process's lifecycle (a fresh, handler-less one unless `run_agent` installed it)."""
    return _CURRENT
