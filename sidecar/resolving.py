"""Finding a destination's sidecar: a gRPC target for an address.

``dns`` (the default in Kubernetes) names the identity's headless Service and lets gRPC resolve and
balance (``GOQ_DNS_SERVER`` names a DNS server of its own instead of the system's, as the local pod
runner's responder for the cluster domain); ``static`` maps addresses to ``host:port`` for sidecars
run outside Kubernetes and for tests.
"""

from collections.abc import Mapping
from typing import Protocol

from goq.errors import ConfigError, TemporaryError
from goq.identity import Address
from goq.names import PORT_PEER, service_name


class UnresolvableError(TemporaryError):
    """No sidecar is known for the destination (yet)."""


class Resolver(Protocol):
    """Maps a destination (with its namespace) to a gRPC target."""

    def target(self, destination: Address) -> str: ...


class DnsResolver:
    """``goq-<id>.<namespace>.svc.<cluster domain>:7702`` through gRPC's DNS resolver.

    ``server`` (``host:port``) asks that DNS server rather than the system's (gRPC's c-ares resolver
    honours the authority of ``dns://server/name``); empty: the system's, as in a cluster.
    """

    def __init__(self, cluster_domain: str = "cluster.local", port: int = PORT_PEER, server: str = "") -> None:
        self.cluster_domain = cluster_domain
        self.port = port
        self.server = server

    def target(self, destination: Address) -> str:
        host = f"{service_name(destination.identity)}.{destination.namespace}.svc.{self.cluster_domain}"
        return f"dns://{self.server}/{host}:{self.port}"


class StaticResolver:
    """A fixed map from ``<identity>.<namespace>`` to ``host:port``."""

    def __init__(self, peers: Mapping[str, str]) -> None:
        self.peers = dict(peers)

    @classmethod
    def parse(cls, text: str, default_namespace: str) -> "StaticResolver":
        """Read ``orders=127.0.0.1:7702,billing.shop=127.0.0.2:7702``."""
        peers = {}
        for item in filter(None, (part.strip() for part in text.split(","))):
            name, equals, target = item.partition("=")
            host, colon, port = target.rpartition(":")
            if not equals or not colon or not host or not port.isdigit():
                raise ConfigError(f"peer {item!r} must be written <identity>[.<namespace>]=<host>:<port>")
            peers[str(Address.parse(name).resolved(default_namespace))] = target
        return cls(peers)

    def target(self, destination: Address) -> str:
        try:
            return self.peers[str(destination)]
        except KeyError:
            raise UnresolvableError(f"no peer address known for {destination}") from None
