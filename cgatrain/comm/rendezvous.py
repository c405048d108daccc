"""Rendezvous stores: loopback-only for spawned agents, and bounded, well-named failures under srun/torchrun.

torch's TCPStore server ignores its host argument when it binds: the libuv backend listens on "::"
(every interface, IPv4 mapped), the classic one on INADDR_ANY. Only `master_listen_fd` (a socket
we bound ourselves) keeps the store off the network, so the spawn launcher binds 127.0.0.1 itself.
"""

from __future__ import annotations

import datetime
import os
import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch.distributed as dist

LOOPBACK = "127.0.0.1"


class RendezvousError(RuntimeError):
    """This agent could not join the run; the message names the address and port."""


def loopback_store(world_size: int, timeout_s: float) -> dist.TCPStore:
    """A master TCPStore on a free port that listens on 127.0.0.1 only (never on other interfaces)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind((LOOPBACK, 0))
    listener.listen(128)
    port = listener.getsockname()[1]
    timeout = datetime.timedelta(seconds=timeout_s)
    # The store's server takes ownership of the descriptor; detach so Python never closes it twice.
    fd = listener.detach()
    return dist.TCPStore(LOOPBACK, port, world_size, is_master=True, wait_for_workers=False, timeout=timeout, master_listen_fd=fd)


def pin_gloo_to_loopback() -> None:
    """Make Gloo listen on the loopback interface (it picks the hostname's address otherwise)."""
    if "GLOO_SOCKET_IFNAME" in os.environ:
        return
    names = [name for _, name in socket.if_nameindex() if name in ("lo", "lo0")]
    if names:
        os.environ["GLOO_SOCKET_IFNAME"] = names[0]


def join_loopback_store(port: int, world_size: int, timeout_s: float) -> dist.TCPStore:
    """A client of the spawn launcher's store."""
    return dist.TCPStore(LOOPBACK, port, world_size, is_master=False, timeout=datetime.timedelta(seconds=timeout_s))


def master_endpoint() -> str:
    """MASTER_ADDR:MASTER_PORT as env:// rendezvous will use them."""
    return f"{os.environ.get('MASTER_ADDR', '?')}:{os.environ.get('MASTER_PORT', '?')}"


@contextmanager
def bounded_rendezvous(rank: int, timeout_s: float, endpoint: str | None = None) -> Iterator[None]:
    """Fail this rank within `timeout_s` if joining the group hangs, naming the master address and port.

    A port held by another program can accept TCP connections and then never answer, which
    leaves env:// rendezvous waiting forever; a watchdog turns that into an error and exit.
    """
    endpoint = endpoint or master_endpoint()

    def give_up() -> None:
        print(f"agent {rank}: could not join the run's rendezvous at {endpoint} within comm.timeout_s={timeout_s:g} s: "
              f"{_likely_cause(endpoint)}", file=sys.stderr, flush=True)
        os._exit(1)

    watchdog = threading.Timer(timeout_s, give_up)
    watchdog.daemon = True
    watchdog.start()
    try:
        yield
    except RuntimeError as error:
        text = str(error)
        if "EADDRINUSE" in text or "address already in use" in text.lower():
            raise RendezvousError(f"agent {rank}: cannot host the rendezvous at {endpoint}: the port is already in use (set MASTER_PORT to a free port)") from None
        raise RendezvousError(f"agent {rank}: rendezvous at {endpoint} failed: {text.strip().splitlines()[-1] if text.strip() else error!r}") from error
    finally:
        watchdog.cancel()


def _likely_cause(endpoint: str) -> str:
    """Why joining hung, as far as one connection attempt to the endpoint can tell."""
    host, _, port = endpoint.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            pass
    except (OSError, ValueError):
        return "nothing answers there: the master (rank 0) has not started, or this machine cannot reach it"
    world = os.environ.get("WORLD_SIZE") or os.environ.get("SLURM_NTASKS")
    expected = f" (the launcher's world size is {world})" if world else ""
    return (f"something listens there, so either not every agent started{expected}: check that the launcher started them all, "
            "or that port is taken by another program (set MASTER_PORT to a free port)")
