"""What the injected sidecar looks like: image, resources and the features of the server."""

from dataclasses import dataclass, field
from typing import Final

from goq.errors import ConfigError
from goq.freshness import DEFAULT_DEDUPE_WINDOW
from goq.keyring import SECRET_NAME
from goq.version import __version__

CONTAINER_NAME: Final = "goq-sidecar"
KEYS_VOLUME: Final = "goq-hmac-keys"
KEYS_MOUNT_PATH: Final = "/var/run/goq/hmac"
TLS_VOLUME: Final = "goq-tls"
TLS_MOUNT_PATH: Final = "/var/run/goq/tls"
"""The identity's certificate (its keys of the namespace's Secret ``goq-identity-tls``, made by the operator):
the sidecar's ``GOQ_TLS_DIR``."""
TLS_FILES: Final = ("tls.crt", "tls.key", "ca.crt")
"""Certificate, key and trust bundle as files in ``TLS_MOUNT_PATH``: what ``goq.sidecar.adapters.peer_tls`` reads."""
SPILL_VOLUME: Final = "goq-spill"
SPILL_MOUNT_PATH: Final = "/var/run/goq/spill"
"""Where transient large bodies spill: the sidecar's root filesystem is read-only."""
INJECTED_ENV: Final = frozenset(
    {
        "GOQ_IDENTITY",
        "GOQ_NAMESPACE",
        "GOQ_POD_NAME",
        "GOQ_POD_IP",
        "GOQ_KEYS_DIR",
        "GOQ_SPILL_DIR",
        "GOQ_DEDUPE_WINDOW",
        "GOQ_TLS_DIR",
        "GOQ_MONGODB_URI",
    }
)
"""The sidecar settings the injection sets itself (``container``): never taken from ``extra_env``."""
NATIVE_SIDECARS_SINCE: Final = (1, 29)
"""Init containers with ``restartPolicy: Always`` are on by default from Kubernetes 1.29."""


@dataclass(frozen=True)
class InjectionSettings:
    """Everything the patch depends on besides the pod. Built once by the operator from its settings."""

    image: str = f"goq/goq-sidecar:{__version__}"
    """The sidecar image; pin a digest in production."""
    image_pull_policy: str = "IfNotPresent"
    requests: dict[str, str] = field(default_factory=lambda: {"cpu": "50m", "memory": "64Mi"})
    """Resource requests of the sidecar container."""
    limits: dict[str, str] = field(default_factory=lambda: {"memory": "256Mi"})
    """Resource limits of the sidecar container (no CPU limit: throttling hurts latency)."""
    native_sidecar: bool = False
    """Inject as an init container with ``restartPolicy: Always`` (servers >= 1.29) instead of a container."""
    peer_tls: bool = True
    """Mount the identity's certificate (its keys of the namespace's Secret ``goq-identity-tls``) and set
    ``GOQ_TLS_DIR``: mutual TLS on the peer port. The kubelet starts the sidecar only once the Secret holds
    them (the operator issues them for the GoQueue)."""
    keys_secret: str = SECRET_NAME
    """The Secret with the HMAC key ring, in the pod's namespace (the operator keeps it there)."""
    spill_size_limit: str = "4Gi"
    """``sizeLimit`` of the emptyDir where transient large bodies spill (the sidecar's own cap is
    ``GOQ_SPILL_LIMIT_BYTES``, 4 GiB by default)."""
    mongodb_secret: str | None = None
    """A Secret in the pod's namespace whose key ``uri`` is the MongoDB connection string; ``None``: none."""
    dedupe_window: float = DEFAULT_DEDUPE_WINDOW
    """Seconds; the sidecar's ``GOQ_DEDUPE_WINDOW``, the same for every sidecar of the cluster (the operator's)."""
    extra_env: tuple[tuple[str, str], ...] = ()
    """More settings for every injected sidecar (the operator's ``GOQ_SIDECAR_ENV``), e.g. a shorter
    ``GOQ_STATUS_INTERVAL``; never one of ``INJECTED_ENV``."""
    version: str = __version__
    """Written to the ``goq.io/injected`` annotation."""
    run_as_user: int = 65532

    def __post_init__(self) -> None:
        if taken := sorted(name for name, _ in self.extra_env if name in INJECTED_ENV):
            raise ConfigError(
                f"GOQ_SIDECAR_ENV: {', '.join(taken)} set by the injection itself; give only the other GOQ_* "
                "settings of docs/sidecar.md"
            )


def supports_native_sidecars(major: str, minor: str) -> bool:
    """Whether a server of this version runs native sidecars (``minor`` may carry a ``+``, as on GKE/EKS)."""
    try:
        version = (int(major), int(minor.rstrip("+")))
    except ValueError:
        return False
    return version >= NATIVE_SIDECARS_SINCE
