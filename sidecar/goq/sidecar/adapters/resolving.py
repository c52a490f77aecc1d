"""Finding a destination's sidecars: every ready replica's ``host:port``, and one gRPC target.

``dns`` (the default in Kubernetes) names the identity's headless Service, whose A records are the
ready replicas (``GOQ_DNS_SERVER`` names a DNS server of its own instead of the system's: for tests, and
clusters whose resolver does not answer the cluster domain); ``static`` maps addresses to ``host:port`` for sidecars
run outside Kubernetes and for tests (an identity named more than once has that many replicas).

``targets`` is what a lane spreads its batches over (see ``sidecar/core/lane.py``); ``target`` is one
gRPC target for a single stream (large messages), which gRPC resolves and connects itself.
"""

import asyncio
import ipaddress
import socket
from collections.abc import Mapping, Sequence
from typing import Final, Protocol

import dns.asyncresolver
import dns.exception

from goq.errors import ConfigError, TemporaryError
from goq.identity import Address
from goq.names import PORT_PEER, service_name

DNS_LIFETIME: Final = 2.0
"""Seconds one resolution may take, retries included: a lane waits for it only when it knows no address."""


class UnresolvableError(TemporaryError):
    """No sidecar is known for the destination (yet)."""


class Resolver(Protocol):
    """Maps a destination (with its namespace) to its sidecars."""

    def target(self, destination: Address) -> str:
        """One gRPC target (gRPC resolves it and picks an address)."""
        ...

    async def targets(self, destination: Address) -> list[str]:
        """``host:port`` of every ready replica, sorted; raises ``UnresolvableError`` if there is none."""
        ...


class DnsResolver:
    """``goq-<id>.<namespace>.svc.<cluster domain>:7702``: the headless Service's A records.

    ``server`` (``host:port``) asks that DNS server rather than the system's (gRPC's c-ares resolver
    honours the authority of ``dns://server/name``); empty: the system's, as in a cluster.
    """

    def __init__(self, cluster_domain: str = "cluster.local", port: int = PORT_PEER, server: str = "") -> None:
        self.cluster_domain = cluster_domain
        self.port = port
        self.server = server

    def host(self, destination: Address) -> str:
        return f"{service_name(destination.identity)}.{destination.namespace}.svc.{self.cluster_domain}"

    def target(self, destination: Address) -> str:
        return f"dns://{self.server}/{self.host(destination)}:{self.port}"

    async def targets(self, destination: Address) -> list[str]:
        # Absolute (final dot): the pod's search domains would only add queries that fail first.
        name = self.host(destination) + "."
        try:
            found = await (self._ask_server(name) if self.server else self._ask_system(name))
        except (OSError, dns.exception.DNSException) as exc:
            raise UnresolvableError(f"no sidecar of {destination} found: {name} did not resolve ({exc})") from None
        if not found:
            raise UnresolvableError(f"no sidecar of {destination} is ready: {name} has no address")
        return sorted({_join(address, self.port) for address in found})

    async def _ask_system(self, name: str) -> list[str]:
        async with asyncio.timeout(DNS_LIFETIME):  # the system's resolver may wait far longer for a dead server
            infos = await asyncio.get_running_loop().getaddrinfo(name, self.port, type=socket.SOCK_STREAM)
        return [str(info[4][0]) for info in infos]

    async def _ask_server(self, name: str) -> list[str]:
        host, _, port = self.server.rpartition(":")
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = [host]
        resolver.port = int(port)
        resolver.lifetime = DNS_LIFETIME
        answer = await resolver.resolve(name, "A", search=False)
        return [record.to_text() for record in answer]


class StaticResolver:
    """A fixed map from ``<identity>.<namespace>`` to the ``host:port`` of each of its replicas."""

    def __init__(self, peers: Mapping[str, str | Sequence[str]]) -> None:
        self.peers = {name: [found] if isinstance(found, str) else list(found) for name, found in peers.items()}

    @classmethod
    def parse(cls, text: str, default_namespace: str) -> "StaticResolver":
        """Read ``orders=127.0.0.1:7702,billing.shop=127.0.0.2:7702``; a name given again adds a replica."""
        peers: dict[str, list[str]] = {}
        for item in filter(None, (part.strip() for part in text.split(","))):
            name, equals, target = item.partition("=")
            host, colon, port = target.rpartition(":")
            if not equals or not colon or not host or not port.isdigit():
                raise ConfigError(f"peer {item!r} must be written <identity>[.<namespace>]=<host>:<port>")
            peers.setdefault(str(Address.parse(name).resolved(default_namespace)), []).append(target)
        return cls(peers)

    def target(self, destination: Address) -> str:
        return self._found(destination)[0]

    async def targets(self, destination: Address) -> list[str]:
        return sorted(set(self._found(destination)))

    def _found(self, destination: Address) -> list[str]:
        found = self.peers.get(str(destination))
        if not found:
            raise UnresolvableError(f"no peer address known for {destination}")
        return found


def _join(address: str, port: int) -> str:
    """``host:port``, with an IPv6 address in brackets as gRPC wants it."""
    return f"[{address}]:{port}" if ipaddress.ip_address(address.split("%")[0]).version == 6 else f"{address}:{port}"
