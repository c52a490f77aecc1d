"""The sidecar's settings, read once from its environment (``SidecarSettings.from_env``).

Every variable, its default and its meaning is in the table of ``docs/sidecar.md``; an invalid value
fails the start with a message naming the variable and what it accepts.
"""

import base64
import json
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from goq.durations import parse_duration
from goq.errors import ConfigError
from goq.freshness import DEFAULT_DEDUPE_WINDOW, check_max_age, within_window
from goq.identity import Address, validate_identity, validate_namespace
from goq.mongodb_uri import store_database
from goq.names import PORT_GRPC, PORT_HEALTH, PORT_PEER, PORT_REST
from goq.queue_spec import GoQueueSpec
from goq.retry import RetryPolicy
from goq.signing import Keyring

MAX_PAYLOAD_LIMIT = 4 * 1024 * 1024 * 1024
PEER_MIN_STREAMS = 8
"""The fewest streams per peer connection a sidecar may allow: a sender's link has one ``Deliver`` stream and up
to four ``Transfer`` streams (large messages) at once on one connection."""


@dataclass(frozen=True)
class SidecarSettings:
    """Everything a sidecar process needs to know; see ``docs/sidecar.md``."""

    identity: str
    namespace: str = "default"
    instance: str = "local"
    mongodb_uri: str | None = None
    mongodb_database: str = "goq"
    store_timeout: float = 10.0
    keyring: Keyring | None = None
    keys_dir: Path | None = None
    """GOQ_KEYS_DIR: the mounted key Secret, followed while running (``goq.sidecar.adapters.keys_watching``)."""
    tls_dir: Path | None = None
    """GOQ_TLS_DIR: the mounted identity certificate (tls.crt, tls.key, ca.crt): mutual TLS on the peer port
    (``goq.sidecar.adapters.peer_tls``); unset: plaintext."""
    resolver: str = "dns"
    peers: str = ""
    cluster_domain: str = "cluster.local"
    dns_server: str = ""
    """``host:port`` of the DNS server the ``dns`` resolver asks; empty: the system's (the default)."""
    peer_listen: str = f"0.0.0.0:{PORT_PEER}"
    grpc_listen: str = f"127.0.0.1:{PORT_GRPC}"
    rest_listen: str = f"127.0.0.1:{PORT_REST}"
    health_listen: str = f"0.0.0.0:{PORT_HEALTH}"
    peer_max_connections: int = 1000
    """GOQ_PEER_MAX_CONNECTIONS: connections the peer port holds at once (``goq.sidecar.apis.peer_limits``)."""
    peer_max_streams: int = 100
    """GOQ_PEER_MAX_STREAMS: streams at once on one peer connection (HTTP/2 ``SETTINGS_MAX_CONCURRENT_STREAMS``)."""
    peer_max_calls: int = 2000
    """GOQ_PEER_MAX_CALLS: calls in progress on the peer port, all connections together."""
    queue_spec: GoQueueSpec = field(default_factory=GoQueueSpec)
    retry_policy: RetryPolicy = field(default_factory=RetryPolicy)
    lease: float = 30.0
    max_deliveries: int = 10
    dedupe_window: float = DEFAULT_DEDUPE_WINDOW
    """Seconds a consumed message's key is remembered (GOQ_DEDUPE_WINDOW); bounds the age of what is accepted and
    retried (``goq.freshness``)."""
    max_payload: int = 4 * 1024 * 1024
    batch_max: int = 256
    window: int = 8
    lane_window: int = 16384
    lane_window_bytes: int = 32 * 1024 * 1024
    large_chunk: int = 1024 * 1024
    """Bytes per chunk of a large message's body (GOQ_LARGE_CHUNK_BYTES); payloads above it take the large path."""
    spill_dir: Path | None = None
    """Where transient large bodies spill (GOQ_SPILL_DIR); default a directory of the system's temporary area."""
    spill_limit: int = 4 * 1024 * 1024 * 1024
    """Most bytes of transient large bodies kept at once (GOQ_SPILL_LIMIT_BYTES); beyond, sends are refused (429)."""
    shutdown_grace: float = 10.0
    heartbeat: float = 5.0
    adopt_after: float = 20.0
    kubernetes: bool = False
    kubeconfig: str | None = None
    status_interval: float = 10.0
    log_level: str = "INFO"
    log_format: str = "auto"
    event_loop: str = "asyncio"
    """GOQ_EVENT_LOOP: ``asyncio``, ``uvloop``, or ``auto`` (uvloop when installed; see ``goq.cli.sidecar``)."""
    unknown: tuple[str, ...] = ()
    """``GOQ_*`` variables in the environment that no setting reads: logged at start, as likely typos."""

    @property
    def address(self) -> Address:
        """This sidecar's own address, namespace included."""
        return Address(self.identity, self.namespace)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "SidecarSettings":
        """Read and validate ``GOQ_*`` variables; ``unknown`` lists names no setting reads (likely typos)."""
        e = _Env(os.environ if env is None else env)
        settings = cls(
            identity=validate_identity(e.required("GOQ_IDENTITY"), "GOQ_IDENTITY"),
            namespace=validate_namespace(e.get("GOQ_NAMESPACE", "default"), "GOQ_NAMESPACE"),
            instance=e.get("GOQ_INSTANCE") or e.get("GOQ_POD_NAME") or socket.gethostname(),
            mongodb_uri=e.get("GOQ_MONGODB_URI") or None,
            mongodb_database=store_database(e.get("GOQ_MONGODB_URI"), e.get("GOQ_MONGODB_DATABASE")),
            store_timeout=e.duration("GOQ_STORE_TIMEOUT", 10.0),
            keyring=e.keyring(),
            keys_dir=Path(e.get("GOQ_KEYS_DIR")) if e.get("GOQ_KEYS_DIR") else None,
            tls_dir=Path(e.get("GOQ_TLS_DIR")) if e.get("GOQ_TLS_DIR") else None,
            resolver=e.choice("GOQ_RESOLVER", "dns", ("dns", "static")),
            peers=e.get("GOQ_PEERS", ""),
            cluster_domain=e.get("GOQ_CLUSTER_DOMAIN", "cluster.local"),
            dns_server=e.get("GOQ_DNS_SERVER") and e.listen("GOQ_DNS_SERVER", ""),
            peer_listen=e.listen("GOQ_PEER_LISTEN", f"0.0.0.0:{PORT_PEER}"),
            grpc_listen=e.listen("GOQ_GRPC_LISTEN", f"127.0.0.1:{PORT_GRPC}"),
            rest_listen=e.listen("GOQ_REST_LISTEN", f"127.0.0.1:{PORT_REST}"),
            health_listen=e.listen("GOQ_HEALTH_LISTEN", f"0.0.0.0:{PORT_HEALTH}"),
            peer_max_connections=e.integer("GOQ_PEER_MAX_CONNECTIONS", 1000, 1, 100_000),
            peer_max_streams=e.integer("GOQ_PEER_MAX_STREAMS", 100, PEER_MIN_STREAMS, 10_000),
            peer_max_calls=e.integer("GOQ_PEER_MAX_CALLS", 2000, 1, 1_000_000),
            queue_spec=GoQueueSpec.from_spec(e.json("GOQ_QUEUE_SPEC"), "GOQ_QUEUE_SPEC"),
            retry_policy=RetryPolicy.from_spec(e.json("GOQ_RETRY_POLICY"), "GOQ_RETRY_POLICY"),
            lease=e.duration("GOQ_LEASE", 30.0),
            max_deliveries=e.integer("GOQ_MAX_DELIVERIES", 10, 1, 1000),
            dedupe_window=e.duration("GOQ_DEDUPE_WINDOW", DEFAULT_DEDUPE_WINDOW),
            max_payload=e.integer("GOQ_MAX_PAYLOAD_BYTES", 4 * 1024 * 1024, 1, MAX_PAYLOAD_LIMIT),
            batch_max=e.integer("GOQ_BATCH_MAX", 256, 1, 10_000),
            window=e.integer("GOQ_WINDOW", 8, 1, 1024),
            lane_window=e.integer("GOQ_LANE_WINDOW", 16384, 1, 1_000_000),
            lane_window_bytes=e.integer("GOQ_LANE_WINDOW_BYTES", 32 * 1024 * 1024, 1, 1 << 40),
            large_chunk=e.integer("GOQ_LARGE_CHUNK_BYTES", 1024 * 1024, 64 * 1024, 4 * 1024 * 1024),
            spill_dir=Path(e.get("GOQ_SPILL_DIR")) if e.get("GOQ_SPILL_DIR") else None,
            spill_limit=e.integer("GOQ_SPILL_LIMIT_BYTES", 4 * 1024 * 1024 * 1024, 0, 1 << 50),
            shutdown_grace=e.duration("GOQ_SHUTDOWN_GRACE", 10.0),
            heartbeat=e.duration("GOQ_HEARTBEAT", 5.0),
            adopt_after=e.duration("GOQ_ADOPT_AFTER", 20.0),
            kubernetes=e.kubernetes(),
            kubeconfig=e.get("GOQ_KUBECONFIG") or None,
            status_interval=e.duration("GOQ_STATUS_INTERVAL", 10.0),
            log_level=e.choice("GOQ_LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR")),
            log_format=e.choice("GOQ_LOG_FORMAT", "auto", ("auto", "json", "text")),
            event_loop=e.choice("GOQ_EVENT_LOOP", "asyncio", ("asyncio", "uvloop", "auto")),
        )
        if settings.adopt_after <= 2 * settings.heartbeat:
            raise ConfigError(
                f"GOQ_ADOPT_AFTER must be more than twice GOQ_HEARTBEAT, or a live replica's messages are adopted "
                f"(got {settings.adopt_after:g}s and {settings.heartbeat:g}s)"
            )
        settings = replace(settings, retry_policy=_within_window(settings, e.json("GOQ_RETRY_POLICY")))
        if settings.resolver == "static" and not settings.peers:
            raise ConfigError("GOQ_RESOLVER=static needs GOQ_PEERS, e.g. billing=127.0.0.1:7702")
        return replace(settings, unknown=e.unknown())


def _within_window(settings: SidecarSettings, spec: object) -> RetryPolicy:
    """The policy, if its maxAge fits the window; a maxAge set longer is refused, the default one is cut to fit
    (a short window needs no policy of its own)."""
    policy, window = settings.retry_policy, settings.dedupe_window
    if isinstance(spec, dict) and "maxAge" in spec:
        check_max_age(policy.max_age, window, "GOQ_RETRY_POLICY maxAge", "GOQ_DEDUPE_WINDOW")
    return within_window(policy, window)


KNOWN_ELSEWHERE = {"GOQ_POD_NAME", "GOQ_POD_IP", "GOQ_HMAC_ACTIVE"}


class _Env:
    """Reads variables, remembering which, so that unknown ``GOQ_*`` names can be reported."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.read: set[str] = set(KNOWN_ELSEWHERE)

    def get(self, name: str, default: str = "") -> str:
        self.read.add(name)
        return self.env.get(name, default)

    def required(self, name: str) -> str:
        value = self.get(name)
        if not value:
            raise ConfigError(f"{name} is required")
        return value

    def duration(self, name: str, default: float) -> float:
        value = self.get(name)
        return parse_duration(value, name) if value else default

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        value = self.get(name)
        if not value:
            return default
        if not value.isdigit() or not low <= int(value) <= high:
            raise ConfigError(f"{name} must be an integer from {low} to {high}, got {value!r}")
        return int(value)

    def choice(self, name: str, default: str, allowed: tuple[str, ...]) -> str:
        value = self.get(name) or default
        if value not in allowed:
            raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
        return value

    def listen(self, name: str, default: str) -> str:
        value = self.get(name) or default
        host, colon, port = value.rpartition(":")
        if not colon or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ConfigError(f"{name} must be <host>:<port>, got {value!r}")
        return value

    def kubernetes(self) -> bool:
        """``GOQ_KUBERNETES``: ``auto`` (the default) means on inside a pod, where the API server is known."""
        choice = self.choice("GOQ_KUBERNETES", "auto", ("auto", "true", "false"))
        if choice == "auto":
            return bool(self.env.get("KUBERNETES_SERVICE_HOST"))
        return choice == "true"

    def json(self, name: str) -> object:
        value = self.get(name)
        if not value:
            return {}
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{name} is not valid JSON: {exc}") from exc

    def keyring(self) -> Keyring | None:
        """``GOQ_KEYS_DIR`` (a mounted Secret) or ``GOQ_HMAC_KEYS`` (``id=base64,…`` with ``GOQ_HMAC_ACTIVE``)."""
        directory = self.get("GOQ_KEYS_DIR")
        inline = self.get("GOQ_HMAC_KEYS")
        if directory and inline:
            raise ConfigError("set GOQ_KEYS_DIR or GOQ_HMAC_KEYS, not both")
        if directory:
            return Keyring.from_directory(Path(directory))
        if not inline:
            return None
        keys = {}
        for item in inline.split(","):
            key_id, equals, encoded = item.strip().partition("=")
            try:
                keys[key_id] = base64.b64decode(encoded, validate=True)
            except ValueError:
                raise ConfigError(f"GOQ_HMAC_KEYS entry {key_id!r} is not <id>=<base64 key>") from None
            if not equals or not key_id:
                raise ConfigError(f"GOQ_HMAC_KEYS entry {item!r} is not <id>=<base64 key>")
        return Keyring(keys, self.env.get("GOQ_HMAC_ACTIVE") or next(iter(keys)))

    def unknown(self) -> tuple[str, ...]:
        return tuple(sorted(k for k in self.env if k.startswith("GOQ_") and k not in self.read))
