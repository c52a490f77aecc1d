"""Pod IPs on the loopback network: every pod gets its own 127.x.y.z, so fixed ports never collide.

Linux routes all of 127.0.0.0/8 to the loopback interface, so any such address can be bound without
configuration. Each runner draws a random second octet (so that parallel runners on one machine do not
meet), skips addresses where the sidecar's ports are taken, and gives a pod that comes back under the
same namespace and name its former address (as a StatefulSet pod keeps its name).
"""

import random
import socket
from collections.abc import Iterable

from goq.devenv.errors import DevEnvError
from goq.names import PORT_GRPC, PORT_HEALTH, PORT_PEER, PORT_REST

POD_PORTS = (PORT_REST, PORT_GRPC, PORT_PEER, PORT_HEALTH)


def ports_free(address: str, ports: Iterable[int] = POD_PORTS) -> bool:
    """Whether nothing listens on any of ``ports`` at ``address``."""
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((address, port))
            except OSError:
                return False
    return True


class PodAddresses:
    """Hands out and takes back pod IPs in ``127.<octet>.0.0/16``."""

    def __init__(self, octet: int | None = None) -> None:
        self.octet = octet if octet is not None else random.randint(2, 250)
        self._next = 1
        self._by_pod: dict[str, str] = {}
        self._in_use: set[str] = set()

    def allocate(self, pod_key: str) -> str:
        """An address for ``namespace/name``: its former one if free, else the next free one."""
        former = self._by_pod.get(pod_key)
        if former and former not in self._in_use and ports_free(former):
            self._in_use.add(former)
            return former
        for _ in range(65_000):
            n, self._next = self._next, self._next % 65_000 + 1
            address = f"127.{self.octet}.{n // 250}.{n % 250 + 1}"
            if address in self._in_use or address in self._by_pod.values() or not ports_free(address):
                continue
            self._by_pod[pod_key] = address
            self._in_use.add(address)
            return address
        raise DevEnvError(f"no free pod address left in 127.{self.octet}.0.0/16")

    def release(self, address: str) -> None:
        """The pod is gone; its address may go to the same pod again, or to others once the rest run out."""
        self._in_use.discard(address)
