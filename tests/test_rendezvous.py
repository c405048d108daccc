"""Rendezvous safety: the spawn launcher's store listens on loopback only, and under srun a taken
MASTER_PORT fails every rank within comm.timeout_s, naming the address and port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch.distributed as dist
from test_lifecycle import (  # noqa: F401 (no_agent_left_behind: autouse fixture)
    ENDLESS,
    finish,
    no_agent_left_behind,
    srun_tasks,
    start,
    wait_for_training,
)

from cgatrain.comm.rendezvous import loopback_store

LISTEN = "0A"


def listening_addresses(port: int | None = None, inodes: set[str] | None = None) -> list[str]:
    """Local addresses of listening TCP sockets (IPv4 and IPv6), by port or by socket inode."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, hex_port = fields[1].split(":")
            if fields[3] != LISTEN or (port is not None and int(hex_port, 16) != port) or (inodes is not None and fields[9] not in inodes):
                continue
            raw = bytes.fromhex(address)
            # /proc prints each 32-bit word in host (little-endian) order.
            words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            found.append(socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, words))
    return found


def socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def test_torch_store_alone_listens_on_every_interface() -> None:
    # Why loopback_store exists: TCPStore ignores its host argument when it binds.
    store = dist.TCPStore("127.0.0.1", 0, 1, is_master=True, wait_for_workers=False)
    assert set(listening_addresses(store.port)) - {"127.0.0.1"}, listening_addresses(store.port)


def test_loopback_store_listens_on_loopback_only_and_serves_clients() -> None:
    store = loopback_store(2, timeout_s=10)
    assert listening_addresses(store.port) == ["127.0.0.1"]
    client = dist.TCPStore("127.0.0.1", store.port, 2, is_master=False)
    client.set("key", "value")
    assert store.get("key") == b"value"
    # A probe from this host's other addresses finds nothing listening on that port.
    for address in {info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)} - {"127.0.0.1"}:
        with socket.socket() as probe, pytest.raises(OSError):
            probe.settimeout(2)
            probe.connect((address, store.port))


@pytest.mark.multiproc
@pytest.mark.timeout(120)
def test_spawned_run_listens_on_loopback_only(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    process = start([*ENDLESS, f"hydra.run.dir={run_dir}"], tmp_path)
    try:
        wait_for_training(process, run_dir)
        pids = [process.pid, *wait_for_training(process, run_dir)]
        addresses = {pid: listening_addresses(inodes=socket_inodes(pid)) for pid in pids}
    finally:
        process.send_signal(signal.SIGTERM)
        finish(process, timeout=40)
    # The parent's store and the agents' Gloo listeners alike.
    assert all(found and set(found) == {"127.0.0.1"} for found in addresses.values()), addresses


@pytest.mark.multiproc
@pytest.mark.timeout(120)
def test_srun_with_a_taken_master_port_fails_every_rank_naming_it(tmp_path: Path) -> None:
    timeout_s = 8
    with socket.socket() as squatter:  # another program holding the port: accepts, never answers
        squatter.bind(("127.0.0.1", 0))
        squatter.listen(16)
        port = squatter.getsockname()[1]
        processes = []
        started = time.monotonic()
        for rank in range(2):
            env = {**os.environ, "SLURM_PROCID": str(rank), "SLURM_NTASKS": "2", "SLURM_LOCALID": str(rank), "SLURM_STEP_ID": "0",
                   "SLURM_JOB_ID": "4343", "SLURM_JOB_NODELIST": "localhost", "MASTER_PORT": str(port)}
            tiny = [arg for arg in ENDLESS if not arg.startswith(("agents=", "train.epochs="))]
            args = [sys.executable, "-m", "cgatrain", *tiny, "train.epochs=1", f"comm.timeout_s={timeout_s}"]
            processes.append(subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        outputs = [finish(process, timeout=timeout_s + 60) for process in processes]
        elapsed = time.monotonic() - started
    for rank, (process, (_, stderr, _)) in enumerate(zip(processes, outputs)):
        assert process.returncode != 0, f"rank {rank} did not fail"
        assert f"localhost:{port}" in stderr, f"rank {rank}: {stderr[-2000:]}"
    assert elapsed < timeout_s + 30, f"the ranks took {elapsed:.1f} s to fail"


@pytest.mark.multiproc
@pytest.mark.timeout(120)
def test_srun_with_an_unreachable_master_fails_within_the_timeout_naming_it(tmp_path: Path) -> None:
    timeout_s = 8
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nobody listens here once the probe is closed
    env = {**os.environ, "SLURM_PROCID": "1", "SLURM_NTASKS": "2", "SLURM_LOCALID": "1", "SLURM_STEP_ID": "0",
           "SLURM_JOB_ID": "4344", "SLURM_JOB_NODELIST": "localhost", "MASTER_PORT": str(port)}
    tiny = [arg for arg in ENDLESS if not arg.startswith(("agents=", "train.epochs="))]
    result = subprocess.run([sys.executable, "-m", "cgatrain", *tiny, "train.epochs=1", f"comm.timeout_s={timeout_s}"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, check=False, timeout=timeout_s + 60)
    assert result.returncode != 0
    assert "agent 1" in result.stderr and f"localhost:{port}" in result.stderr, result.stderr[-2000:]


@pytest.mark.multiproc
@pytest.mark.timeout(120)
def test_srun_with_a_task_missing_says_not_every_agent_started(tmp_path: Path) -> None:
    timeout_s = 8
    tiny = [arg for arg in ENDLESS if not arg.startswith(("agents=", "train.epochs="))]
    processes = srun_tasks(tmp_path, [*tiny, "train.epochs=1", f"comm.timeout_s={timeout_s}"], tasks=3, started=2, job_id="4345")
    outputs = [finish(process, timeout=timeout_s + 60) for process in processes]
    assert all(process.returncode != 0 for process in processes), [stderr[-1000:] for _, stderr, _ in outputs]
    stderr = outputs[0][1]  # rank 0 hosts the store; rank 1 may see it go away first
    assert "not every agent started (the launcher's world size is 3)" in stderr, stderr[-2000:]
