"""The sidecar container the webhook adds, as a plain Kubernetes dict."""

from typing import Any

from goq import names
from goq.durations import format_duration
from goq.webhook.settings import (
    CONTAINER_NAME,
    KEYS_MOUNT_PATH,
    KEYS_VOLUME,
    SPILL_MOUNT_PATH,
    SPILL_VOLUME,
    TLS_FILES,
    TLS_MOUNT_PATH,
    TLS_VOLUME,
    InjectionSettings,
)

PORTS: tuple[tuple[str, int], ...] = (
    ("goq-rest", names.PORT_REST),
    ("goq-grpc", names.PORT_GRPC),
    ("goq-peer", names.PORT_PEER),
    ("goq-health", names.PORT_HEALTH),
)


def _field_env(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def _probe(path: str, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": names.PORT_HEALTH},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def sidecar_container(identity: str, settings: InjectionSettings) -> dict[str, Any]:
    """The sidecar for ``identity``: downward-API env, named ports, probes, locked-down security."""
    env: list[dict[str, Any]] = [
        {"name": "GOQ_IDENTITY", "value": identity},
        _field_env("GOQ_NAMESPACE", "metadata.namespace"),
        _field_env("GOQ_POD_NAME", "metadata.name"),
        _field_env("GOQ_POD_IP", "status.podIP"),
        {"name": "GOQ_KEYS_DIR", "value": KEYS_MOUNT_PATH},
        {"name": "GOQ_SPILL_DIR", "value": SPILL_MOUNT_PATH},
        {"name": "GOQ_DEDUPE_WINDOW", "value": format_duration(settings.dedupe_window)},
    ]
    if settings.peer_tls:
        env.append({"name": "GOQ_TLS_DIR", "value": TLS_MOUNT_PATH})
    env.extend({"name": name, "value": value} for name, value in settings.extra_env)
    if settings.mongodb_secret:
        env.append(
            {
                "name": "GOQ_MONGODB_URI",
                "valueFrom": {"secretKeyRef": {"name": settings.mongodb_secret, "key": "uri"}},
            }
        )
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": settings.image,
        "imagePullPolicy": settings.image_pull_policy,
        "env": env,
        "ports": [{"name": name, "containerPort": port, "protocol": "TCP"} for name, port in PORTS],
        "resources": {"requests": dict(settings.requests), "limits": dict(settings.limits)},
        # Startup allows a minute (MongoDB may be slow to answer); then liveness takes over.
        "startupProbe": _probe("/healthz", 2, 30),
        "livenessProbe": _probe("/healthz", 10, 3),
        "readinessProbe": _probe("/readyz", 5, 2),
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": settings.run_as_user,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [
            {"name": KEYS_VOLUME, "mountPath": KEYS_MOUNT_PATH, "readOnly": True},
            {"name": SPILL_VOLUME, "mountPath": SPILL_MOUNT_PATH},
        ],
    }
    if settings.peer_tls:
        container["volumeMounts"].append({"name": TLS_VOLUME, "mountPath": TLS_MOUNT_PATH, "readOnly": True})
    if settings.native_sidecar:
        container["restartPolicy"] = "Always"
    return container


def tls_volume(identity: str) -> dict[str, Any]:
    """The namespace's certificate Secret, of which only ``identity``'s keys (and the shared trust bundle) are
    mounted, under the file names the sidecar reads (``TLS_FILES``). Not optional: the kubelet waits for the
    Secret and those keys rather than start the sidecar in plaintext."""
    keys = {
        TLS_FILES[0]: names.tls_cert_key(identity),
        TLS_FILES[1]: names.tls_key_key(identity),
        TLS_FILES[2]: names.TLS_BUNDLE_KEY,
    }
    items = [{"key": key, "path": path} for path, key in keys.items()]
    return {
        "name": TLS_VOLUME,
        "secret": {"secretName": names.IDENTITY_TLS_SECRET, "items": items, "defaultMode": 0o440},
    }


def sidecar_volumes(settings: InjectionSettings, identity: str) -> list[dict[str, Any]]:
    """The HMAC key ring Secret (read-only), an emptyDir where transient large bodies spill, and the identity's
    certificate (``peer_tls``: ``tls_volume``)."""
    volumes = [
        {"name": KEYS_VOLUME, "secret": {"secretName": settings.keys_secret, "defaultMode": 0o440}},
        {"name": SPILL_VOLUME, "emptyDir": {"sizeLimit": settings.spill_size_limit}},
    ]
    if settings.peer_tls:
        volumes.append(tls_volume(identity))
    return volumes
