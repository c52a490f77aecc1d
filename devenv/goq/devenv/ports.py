"""Free TCP ports on the loopback interface, chosen at run time so that parallel runs never collide."""

import random
import socket
from contextlib import ExitStack
from pathlib import Path
from typing import Final

LOWEST: Final = 10_000
_HANDED_OUT: set[int] = set()
"""Ports this process gave out: a port chosen for a server not started yet is free, but not ours to give again."""
EPHEMERAL_RANGE: Final = Path("/proc/sys/net/ipv4/ip_local_port_range")


def _below_ephemeral() -> int:
    """The first port the kernel hands out for outgoing connections (32768 unless configured)."""
    try:
        return int(EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """Return ``count`` distinct ports that were free a moment ago, below the ephemeral range.

    Below it, because a server is often restarted on its ports (a sidecar killed and started again):
    a port from the ephemeral range can meanwhile become some process's outgoing connection, and with
    many processes connecting, now and then one does. All sockets stay bound until every port is chosen,
    so the ports are distinct from each other, and a port is never handed out twice by one process (a
    hundred sidecars are given their ports before the first of them binds one).
    """
    top = _below_ephemeral()
    chooser = random.SystemRandom()
    with ExitStack() as stack:
        ports: list[int] = []
        while len(ports) < count:
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers themselves bind
            port = chooser.randrange(LOWEST, top) if top > LOWEST + 1000 else 0
            if port in _HANDED_OUT or port in ports:  # two SO_REUSEADDR sockets may bind one port
                continue
            try:
                sock.bind((host, port))
            except OSError:
                continue  # taken: try another
            ports.append(sock.getsockname()[1])
        _HANDED_OUT.update(ports)
        return ports


def free_port(host: str = "127.0.0.1") -> int:
    """Return one port that was free a moment ago."""
    return free_ports(1, host)[0]


def is_listening(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0
