"""The HMAC key ring Secrets: one master in the operator's namespace, a copy in each GoQueue namespace.

Created when missing, never overwritten by a guess (a 409 means another writer won; its keys stand),
rotated on a schedule with the new key signing only after every sidecar can verify it. Key material
never reaches a log line or an Event.
"""

import base64
import logging
import time
from typing import Any

from goq.operator.kube import body, call, get_or_none
from goq.operator.settings import OperatorSettings
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio.client.exceptions import ApiException

from goq.keyring import SECRET_NAME, KeyRing

log = logging.getLogger("goq.operator")
MANAGED_LABELS = {"app.kubernetes.io/managed-by": "goq-operator", "app.kubernetes.io/part-of": "goq"}


def _encode(ring: KeyRing) -> dict[str, str]:
    return {k: base64.b64encode(v).decode() for k, v in ring.to_secret_data().items()}


def _decode(secret: Any) -> KeyRing:
    return KeyRing.from_secret_data({k: base64.b64decode(v) for k, v in (secret.data or {}).items()})


def _body(namespace: str, data: dict[str, str], resource_version: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": SECRET_NAME, "namespace": namespace, "labels": MANAGED_LABELS}
    if resource_version:
        meta["resourceVersion"] = resource_version
    return {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": "Opaque", "data": data}


async def ensure_master(api: k8s.ApiClient, settings: OperatorSettings, now: float | None = None) -> dict[str, str]:
    """The master ring's Secret data (base64), made when missing and rotated when due."""
    core = k8s.CoreV1Api(api)
    ns = settings.namespace
    now = time.time() if now is None else now
    secret = await get_or_none(f"reading Secret {ns}/{SECRET_NAME}", core.read_namespaced_secret(SECRET_NAME, ns))
    if secret is None:
        data = _encode(KeyRing.generate(now))
        try:
            await core.create_namespaced_secret(ns, body(_body(ns, data)))
            log.info("created the HMAC key ring %s/%s", ns, SECRET_NAME)
            return data
        except ApiException as exc:
            if exc.status != 409:
                raise
            secret = await call("reading the HMAC key ring", core.read_namespaced_secret(SECRET_NAME, ns))
    ring = _decode(secret)
    newest = max(k.created for k in ring.keys)
    rotation = settings.keys.rotation
    if rotation > 0 and now - newest >= rotation:
        ring = ring.rotated(now, settings.keys.propagation, settings.keys.retention)
        data = _encode(ring)
        await call(
            "rotating the HMAC key ring",
            core.replace_namespaced_secret(SECRET_NAME, ns, body(_body(ns, data, secret.metadata.resource_version))),
        )
        log.info(
            "rotated the HMAC key ring: %d keys valid, the new one signs in %.0f s",
            len(ring.keys),
            settings.keys.propagation,
        )
        return data
    return dict(secret.data or {})


async def ensure_copy(api: k8s.ApiClient, namespace: str, data: dict[str, str]) -> bool:
    """The ring's copy in a GoQueue namespace equals the master; True if it was written."""
    core = k8s.CoreV1Api(api)
    secret = await get_or_none(
        f"reading Secret {namespace}/{SECRET_NAME}", core.read_namespaced_secret(SECRET_NAME, namespace)
    )
    if secret is None:
        try:
            await core.create_namespaced_secret(namespace, body(_body(namespace, data)))
        except ApiException as exc:
            if exc.status != 409:
                raise
        return True
    if dict(secret.data or {}) == data:
        return False
    await call(
        f"updating Secret {namespace}/{SECRET_NAME}",
        core.replace_namespaced_secret(
            SECRET_NAME, namespace, body(_body(namespace, data, secret.metadata.resource_version))
        ),
    )
    return True
