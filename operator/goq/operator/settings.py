"""The operator's settings, read once from the environment (``OperatorSettings.from_env``)."""

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final

from goq.durations import parse_duration
from goq.errors import ConfigError
from goq.freshness import DEFAULT_DEDUPE_WINDOW
from goq.identity import validate_namespace
from goq.pair_keys import KeyScope, parse_scope
from goq.version import __version__

DEFAULT_NAMESPACE: Final = "goq-system"
MAX_DRAIN: Final = 25.0
_SIDECAR_SETTING: Final = re.compile(r"GOQ_[A-Z0-9_]+")


def _pairs(text: str, what: str) -> dict[str, str]:
    """``cpu=50m,memory=64Mi`` as a dict."""
    result = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        key, eq, value = item.partition("=")
        if not eq or not key or not value:
            raise ConfigError(f"{what} must look like 'cpu=50m,memory=64Mi', got {text!r}")
        result[key.strip()] = value.strip()
    return result


def _drain(value: float) -> float:
    if not 0 <= value <= MAX_DRAIN:
        raise ConfigError(
            f"GOQ_WEBHOOK_DRAIN must be from 0s to {MAX_DRAIN:g}s (within the pod's 30 s grace period), got {value:g}s"
        )
    return value


def _sidecar_env(text: str) -> tuple[tuple[str, str], ...]:
    """``GOQ_SIDECAR_ENV``: ``GOQ_STATUS_INTERVAL=2s,GOQ_LOG_FORMAT=text`` as pairs. The names the injection
    sets itself are refused by ``InjectionSettings``; values are checked by each sidecar as it starts (a bad
    one is reported in the GoQueue's status)."""
    pairs = _pairs(text, "GOQ_SIDECAR_ENV")
    for name in pairs:
        if not _SIDECAR_SETTING.fullmatch(name):
            raise ConfigError(f"GOQ_SIDECAR_ENV: {name!r} is not a sidecar setting; they are named GOQ_[A-Z0-9_]+")
    return tuple(pairs.items())


@dataclass(frozen=True)
class WebhookSettings:
    """Where the admission server listens and how the API server reaches it."""

    host: str = "0.0.0.0"
    port: int = 8443
    url: str | None = None
    """Base URL the API server calls (development: ``https://127.0.0.1:8443``); ``None``: the Service."""
    service: str = "goq-webhook"
    """The Service in front of the operator (in the operator's namespace), port 443."""
    timeout: int = 5
    """Seconds the API server waits for the webhook (1-30); short, so a slow webhook delays pods little."""
    tls_secret: str = "goq-webhook-tls"
    """Secret (operator's namespace) with the webhook's CA and serving certificate; made and renewed by the operator."""
    drain: float = 15.0
    """``GOQ_WEBHOOK_DRAIN`` (15s): how long a stopping replica goes on answering reviews, each on a connection it
    then closes, before it stops listening: the API server moves to the replicas that stay (``AdmissionServer.drain``).
    It must cover the time kube-proxy takes to stop routing the Service to a deleted pod: on a busy 2-core node
    reviews still reached a replica 7 s after its pod was deleted. At most 25 s, within the pod's 30 s grace period."""
    mutating_name: str = "goq-sidecar-injector"
    validating_name: str = "goq-validator"


@dataclass(frozen=True)
class SidecarSettings:
    """The injected sidecar."""

    image: str = f"goq/goq-sidecar:{__version__}"
    requests: dict[str, str] = field(default_factory=lambda: {"cpu": "50m", "memory": "64Mi"})
    limits: dict[str, str] = field(default_factory=lambda: {"memory": "256Mi"})
    native: str = "auto"
    """``auto`` (native sidecar from Kubernetes 1.29), ``true`` or ``false``."""
    mongodb_secret: str | None = None
    """Secret in each pod's namespace whose key ``uri`` the sidecar uses to reach MongoDB."""
    env: tuple[tuple[str, str], ...] = ()
    """``GOQ_SIDECAR_ENV``: more settings for every injected sidecar (``GOQ_STATUS_INTERVAL=2s,...``)."""


@dataclass(frozen=True)
class ProvisioningSettings:
    """What the operator puts into every namespace where a GoQueue or a pod asking for GoQ appears."""

    mongodb_source: str | None = None
    """Secret in the operator's namespace whose key ``uri`` is copied into each such namespace under the name
    ``GOQ_MONGODB_SECRET`` gives (``GOQ_MONGODB_SOURCE_SECRET``); ``None``: users make that Secret themselves."""
    sidecar_role: str | None = "goq-sidecar"
    """ClusterRole bound, by the RoleBinding ``goq-sidecar``, to the ServiceAccounts GoQ pods run as
    (``GOQ_SIDECAR_CLUSTER_ROLE``); ``None`` (set to empty): users bind it themselves."""
    mongodb_admin: str | None = None
    """``GOQ_MONGODB_ADMIN_SECRET``: Secret in the operator's namespace whose key ``uri`` names a MongoDB user
    that may manage users; set, each namespace gets a MongoDB user and database of its own
    (``goq.operator.mongodb_users``) instead of a copy of the source. ``None``: copies, as before."""


@dataclass(frozen=True)
class KeySettings:
    """The HMAC key ring."""

    rotation: float = 0.0
    """Seconds between automatic rotations of the HMAC key; 0: never."""
    propagation: float = 180.0
    """A new key signs only after this many seconds, once every sidecar has it. It must cover the slowest
    path from the master to a sidecar: a sweep to copy the ring (``GOQ_SWEEP_INTERVAL``, 10 s), the
    kubelet's Secret volume sync (its pod resync, 1 min plus up to 50 % jitter, plus its cache's delay:
    a watch's moment or a TTL of up to 1 min) and the sidecar's 2 s poll: up to about 160 s."""
    retention: float = 7 * 86400.0
    """An old key verifies for this long after the rotation: longer than any message may live."""
    scope: KeyScope = "namespace"
    """``GOQ_KEY_SCOPE``: ``namespace``, each namespace gets keys per pair of namespaces with itself on one side
    (``goq.pair_keys``); ``cluster``, the master ring is copied into every namespace (before GoQ had scopes)."""


@dataclass(frozen=True)
class TlsSettings:
    """Mutual TLS between sidecars: the identity CA and the certificate of each GoQueue (docs/security.md)."""

    enabled: bool = True
    """``GOQ_PEER_TLS`` (``true``): the operator issues every identity's certificate and the webhook mounts it,
    so the peer port speaks mutual TLS only. ``false``: no certificates, plaintext peer ports, for the whole
    cluster (a TLS sidecar and a plaintext one cannot talk to each other)."""
    trust_domain: str = "cluster.local"
    """``GOQ_TRUST_DOMAIN``: the SPIFFE trust domain in every identity's URI SAN."""
    cluster_domain: str = "cluster.local"
    """``GOQ_CLUSTER_DOMAIN``: the DNS suffix of the Service names in every identity's certificate."""
    ca_secret: str = "goq-identity-ca"
    """``GOQ_TLS_CA_SECRET``: the identity CA's Secret, in the operator's namespace (made once, then rotated)."""
    lifetime: float = 7 * 86400.0
    """``GOQ_TLS_CERT_LIFETIME`` (168h): how long an identity certificate is valid; renewed after two thirds."""
    ca_lifetime: float = 3 * 365 * 86400.0
    """``GOQ_TLS_CA_LIFETIME`` (26280h: 3 years): how long the identity CA is valid; a successor is made after
    two thirds."""
    propagation: float = 180.0
    """``GOQ_TLS_PROPAGATION`` (3m): a new CA is trusted by every sidecar this long before it signs (the
    path from the Secret to a sidecar, as for the HMAC key: see ``KeySettings.propagation``)."""


@dataclass(frozen=True)
class LeaderSettings:
    """Which replica handles resources: the holder of a Lease (``goq.operator.leadership``)."""

    lease: str = "goq-operator-leader"
    """``GOQ_LEADER_LEASE``: the Lease's name, in the operator's namespace."""
    duration: float = 15.0
    """``GOQ_LEADER_LEASE_DURATION`` (15s): a Lease seen unchanged this long is taken over by another replica."""
    renew_deadline: float = 10.0
    """``GOQ_LEADER_RENEW_DEADLINE`` (10s): a leader that could not renew for this long stops handling (and
    exits to be restarted); shorter than the duration, so it stops before anyone else may start."""
    retry_period: float = 2.0
    """``GOQ_LEADER_RETRY_PERIOD`` (2s): how often the leader renews and the others look."""


@dataclass(frozen=True)
class OperatorSettings:
    """Everything the operator reads from its environment, with the defaults a cluster install uses."""

    namespace: str = DEFAULT_NAMESPACE
    """The operator's own namespace: master key Secret, webhook TLS Secret, webhook Service."""
    stale_after: float = 30.0
    """A pod whose sidecar has not reported for this many seconds is marked stale."""
    sweep_interval: float = 10.0
    """How often every GoQueue's status, Service and keys are checked (level-triggered repair)."""
    dedupe_window: float = DEFAULT_DEDUPE_WINDOW
    """Seconds (``GOQ_DEDUPE_WINDOW``, 2h): the de-duplication window of every injected sidecar (passed to it
    as its ``GOQ_DEDUPE_WINDOW``); RetryPolicies whose ``maxAge`` exceeds it are refused at admission."""
    webhook: WebhookSettings = WebhookSettings()
    sidecar: SidecarSettings = SidecarSettings()
    keys: KeySettings = KeySettings()
    provisioning: ProvisioningSettings = ProvisioningSettings()
    tls: TlsSettings = TlsSettings()
    leader: LeaderSettings = LeaderSettings()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "OperatorSettings":
        """Read ``GOQ_*`` variables (see docs/operator.md); a bad value is a ConfigError naming it."""
        e = os.environ if env is None else env
        d = cls()

        def seconds(name: str, default: float) -> float:
            return parse_duration(e[name], name) if e.get(name) else default

        native = e.get("GOQ_NATIVE_SIDECAR", d.sidecar.native)
        if native not in ("auto", "true", "false"):
            raise ConfigError(f"GOQ_NATIVE_SIDECAR must be auto, true or false, got {native!r}")
        try:
            port = int(e.get("GOQ_WEBHOOK_PORT", d.webhook.port))
            timeout = int(e.get("GOQ_WEBHOOK_TIMEOUT", d.webhook.timeout))
        except ValueError as exc:
            raise ConfigError(f"GOQ_WEBHOOK_PORT and GOQ_WEBHOOK_TIMEOUT must be integers ({exc})") from exc
        if not 1 <= timeout <= 30:
            raise ConfigError(f"GOQ_WEBHOOK_TIMEOUT must be from 1 to 30 seconds, got {timeout}")
        tls = _tls(e, seconds, d.tls)
        return cls(
            tls=tls,
            leader=_leader(e, seconds, d.leader),
            namespace=validate_namespace(e.get("GOQ_OPERATOR_NAMESPACE", d.namespace), "GOQ_OPERATOR_NAMESPACE"),
            stale_after=seconds("GOQ_STALE_AFTER", d.stale_after),
            sweep_interval=seconds("GOQ_SWEEP_INTERVAL", d.sweep_interval),
            dedupe_window=seconds("GOQ_DEDUPE_WINDOW", d.dedupe_window),
            webhook=WebhookSettings(
                host=e.get("GOQ_WEBHOOK_HOST", d.webhook.host),
                port=port,
                url=e.get("GOQ_WEBHOOK_URL") or None,
                service=e.get("GOQ_WEBHOOK_SERVICE", d.webhook.service),
                timeout=timeout,
                tls_secret=e.get("GOQ_WEBHOOK_TLS_SECRET", d.webhook.tls_secret),
                drain=_drain(seconds("GOQ_WEBHOOK_DRAIN", d.webhook.drain)),
            ),
            sidecar=SidecarSettings(
                image=e.get("GOQ_SIDECAR_IMAGE", d.sidecar.image),
                requests=_pairs(e["GOQ_SIDECAR_REQUESTS"], "GOQ_SIDECAR_REQUESTS")
                if "GOQ_SIDECAR_REQUESTS" in e
                else d.sidecar.requests,
                limits=_pairs(e["GOQ_SIDECAR_LIMITS"], "GOQ_SIDECAR_LIMITS")
                if "GOQ_SIDECAR_LIMITS" in e
                else d.sidecar.limits,
                native=native,
                mongodb_secret=e.get("GOQ_MONGODB_SECRET") or None,
                env=_sidecar_env(e.get("GOQ_SIDECAR_ENV", "")),
            ),
            keys=KeySettings(
                rotation=seconds("GOQ_KEY_ROTATION", d.keys.rotation),
                propagation=seconds("GOQ_KEY_PROPAGATION", d.keys.propagation),
                retention=seconds("GOQ_KEY_RETENTION", d.keys.retention),
                scope=parse_scope(e.get("GOQ_KEY_SCOPE", "")),
            ),
            provisioning=ProvisioningSettings(
                mongodb_source=e.get("GOQ_MONGODB_SOURCE_SECRET") or None,
                sidecar_role=e.get("GOQ_SIDECAR_CLUSTER_ROLE", d.provisioning.sidecar_role) or None,
                mongodb_admin=_mongodb_admin(e),
            ),
        )


def _mongodb_admin(e: Mapping[str, str]) -> str | None:
    """``GOQ_MONGODB_ADMIN_SECRET``, refused where the sidecars could not use a user per namespace."""
    admin = e.get("GOQ_MONGODB_ADMIN_SECRET") or None
    if admin and not e.get("GOQ_MONGODB_SECRET"):
        raise ConfigError(
            "GOQ_MONGODB_ADMIN_SECRET needs GOQ_MONGODB_SECRET: the Secret of each namespace where the operator "
            "writes the URI of the namespace's MongoDB user"
        )
    if admin and "GOQ_MONGODB_DATABASE" in dict(_sidecar_env(e.get("GOQ_SIDECAR_ENV", ""))):
        raise ConfigError(
            "GOQ_SIDECAR_ENV sets GOQ_MONGODB_DATABASE, but with GOQ_MONGODB_ADMIN_SECRET each namespace's sidecars "
            "store in the database their URI names (goq-<namespace>), the only one their user may use: remove it"
        )
    return admin


def _leader(e: Mapping[str, str], seconds: Callable[[str, float], float], d: LeaderSettings) -> LeaderSettings:
    leader = LeaderSettings(
        lease=e.get("GOQ_LEADER_LEASE") or d.lease,
        duration=seconds("GOQ_LEADER_LEASE_DURATION", d.duration),
        renew_deadline=seconds("GOQ_LEADER_RENEW_DEADLINE", d.renew_deadline),
        retry_period=seconds("GOQ_LEADER_RETRY_PERIOD", d.retry_period),
    )
    if not 0 < leader.retry_period < leader.renew_deadline < leader.duration:
        raise ConfigError(
            "GOQ_LEADER_RETRY_PERIOD < GOQ_LEADER_RENEW_DEADLINE < GOQ_LEADER_LEASE_DURATION must hold (a leader "
            "renews several times before it gives up, and gives up before another replica may take over), got "
            f"{leader.retry_period:g} s, {leader.renew_deadline:g} s and {leader.duration:g} s"
        )
    if leader.duration < 1:
        raise ConfigError(
            f"GOQ_LEADER_LEASE_DURATION must be at least 1 s (a Lease counts whole seconds), got {leader.duration:g} s"
        )
    return leader


def _tls(e: Mapping[str, str], seconds: Callable[[str, float], float], d: TlsSettings) -> TlsSettings:
    enabled = e.get("GOQ_PEER_TLS", "true").strip().lower()
    if enabled not in ("true", "false"):
        raise ConfigError(f"GOQ_PEER_TLS must be true or false, got {enabled!r}")
    tls = TlsSettings(
        enabled=enabled == "true",
        trust_domain=e.get("GOQ_TRUST_DOMAIN") or d.trust_domain,
        cluster_domain=e.get("GOQ_CLUSTER_DOMAIN") or d.cluster_domain,
        ca_secret=e.get("GOQ_TLS_CA_SECRET") or d.ca_secret,
        lifetime=seconds("GOQ_TLS_CERT_LIFETIME", d.lifetime),
        ca_lifetime=seconds("GOQ_TLS_CA_LIFETIME", d.ca_lifetime),
        propagation=seconds("GOQ_TLS_PROPAGATION", d.propagation),
    )
    overlap = tls.lifetime / 3
    if overlap <= tls.propagation:
        raise ConfigError(
            f"GOQ_TLS_CERT_LIFETIME ({tls.lifetime:g} s) must be over three times GOQ_TLS_PROPAGATION "
            f"({tls.propagation:g} s): a certificate is renewed with a third of its life left, which must outlast "
            "the renewed one's way to every sidecar"
        )
    if tls.ca_lifetime < 3 * tls.lifetime:
        raise ConfigError(
            f"GOQ_TLS_CA_LIFETIME ({tls.ca_lifetime:g} s) must be at least three times GOQ_TLS_CERT_LIFETIME "
            f"({tls.lifetime:g} s): the old CA stays trusted for a third of its life after its successor is made"
        )
    return tls
