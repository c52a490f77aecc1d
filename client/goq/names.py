"""Names fixed by GoQ's contract: API group, annotations, labels, ports. One place, used everywhere."""

from typing import Final

GROUP: Final = "goq.io"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"
GOQUEUE_KIND: Final = "GoQueue"
GOQUEUE_PLURAL: Final = "goqueues"
RETRYPOLICY_KIND: Final = "RetryPolicy"
RETRYPOLICY_PLURAL: Final = "retrypolicies"

ANNOTATION_ID: Final = "goq.io/id"
"""On a pod: the identity it sends and receives as. The opt-in for sidecar injection."""
LABEL_ID: Final = "goq.io/id"
"""Added by the webhook: Services select labels, not annotations."""
ANNOTATION_INJECTED: Final = "goq.io/injected"
"""Added by the webhook: the GoQ version that injected the sidecar; its presence prevents a second injection."""
LABEL_INJECTION: Final = "goq.io/injection"
"""On a namespace or a pod: ``disabled`` (never sent to the pod webhook) or ``required`` (sent to an entry with
``failurePolicy: Fail``: a pod is created only once a replica answered). Any other value is refused."""
INJECTION_DISABLED: Final = "disabled"
INJECTION_REQUIRED: Final = "required"
SIDECAR_CONTAINER: Final = "goq-sidecar"
"""The injected sidecar container's name (the operator finds its status in a pod by it)."""

PORT_REST: Final = 7700
"""Application REST API, bound to 127.0.0.1."""
PORT_GRPC: Final = 7701
"""Application gRPC API (goq.v1.QueueManager), bound to 127.0.0.1."""
PORT_PEER: Final = 7702
"""Sidecar-to-sidecar gRPC (goq.v1.Peer), on the pod IP; the headless Service's port ``peer``."""
PORT_HEALTH: Final = 7703
"""/livez (and /healthz), /readyz and /metrics, on the pod IP."""


def service_name(identity: str) -> str:
    """The headless Service of an identity: ``goq-<id>``."""
    return f"goq-{identity}"


IDENTITY_TLS_SECRET: Final = "goq-identity-tls"
"""The Secret with the certificates of every identity of a namespace (made by the operator; the webhook
mounts only the pod's identity's keys of it). One fixed name, so that the operator's RBAC names it."""
TLS_BUNDLE_KEY: Final = "ca.crt"
"""The key of ``goq-identity-tls`` with the trust bundle every identity of the namespace shares."""


def tls_cert_key(identity: str) -> str:
    """The key of ``goq-identity-tls`` with an identity's certificate: ``<id>.tls.crt`` (never ``ca.crt``,
    even for an identity named ``ca``: an identity has no dot)."""
    return f"{identity}.tls.crt"


def tls_key_key(identity: str) -> str:
    """The key of ``goq-identity-tls`` with an identity's private key: ``<id>.tls.key``."""
    return f"{identity}.tls.key"
