"""The HMAC key ring Secrets: one master in the operator's namespace, a copy in each GoQueue namespace.

Created when missing, never overwritten by a guess (a 409 means another writer won; its keys stand),
rotated on a schedule: a new key is added first and named ``active`` only once every sidecar can
verify it (``goq.keyring``). Key material never reaches a log line or an Event.
"""

import base64
import logging
import time
from typing import Any

from kubernetes_asyncio import client as k8s
from kubernetes_asyncio.client.exceptions import ApiException

from goq.keyring import SCHEDULE_ANNOTATION, SECRET_NAME, KeyRing
from goq.operator.kube import body, call, get_or_none
from goq.operator.settings import OperatorSettings

log = logging.getLogger("goq.operator")
MANAGED_LABELS = {"app.kubernetes.io/managed-by": "goq-operator", "app.kubernetes.io/part-of": "goq"}
KeyData = tuple[dict[str, str], dict[str, str]]
"""A ring as the API spells it: (``data``, base64 values; the schedule annotation)."""


def _encode(ring: KeyRing, now: float) -> KeyData:
    content = ring.to_secret(now)
    return {k: base64.b64encode(v).decode() for k, v in content.data.items()}, content.annotations


def _current(secret: Any) -> KeyData:
    annotations = secret.metadata.annotations or {}
    schedule = {SCHEDULE_ANNOTATION: annotations[SCHEDULE_ANNOTATION]} if SCHEDULE_ANNOTATION in annotations else {}
    return dict(secret.data or {}), schedule


def _decode(secret: Any) -> KeyRing:
    data, annotations = _current(secret)
    return KeyRing.from_secret({k: base64.b64decode(v) for k, v in data.items()}, annotations)


def _body(namespace: str, ring: KeyData, resource_version: str | None = None) -> Any:
    meta: dict[str, Any] = {
        "name": SECRET_NAME,
        "namespace": namespace,
        "labels": MANAGED_LABELS,
        "annotations": ring[1],
    }
    if resource_version:
        meta["resourceVersion"] = resource_version
    return body({"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": "Opaque", "data": ring[0]})


async def ensure_master(api: k8s.ApiClient, settings: OperatorSettings, now: float | None = None) -> KeyData:
    """The master ring, made when missing, rotated when due, ``active`` moved when a new key's time came."""
    core = k8s.CoreV1Api(api)
    ns = settings.namespace
    now = time.time() if now is None else now
    secret = await get_or_none(f"reading Secret {ns}/{SECRET_NAME}", core.read_namespaced_secret(SECRET_NAME, ns))
    if secret is None:
        wanted = _encode(KeyRing.generate(now), now)
        try:
            await core.create_namespaced_secret(ns, _body(ns, wanted))
            log.info("created the HMAC key ring %s/%s", ns, SECRET_NAME)
            return wanted
        except ApiException as exc:
            if exc.status != 409:
                raise
            secret = await call("reading the HMAC key ring", core.read_namespaced_secret(SECRET_NAME, ns))
    ring = _decode(secret)
    rotation = settings.keys.rotation
    if rotation > 0 and now - max(k.created for k in ring.keys) >= rotation:
        ring = ring.rotated(now, settings.keys.propagation, settings.keys.retention)
        log.info(
            "rotating the HMAC key ring: %d keys valid, the new one signs in %.0f s",
            len(ring.keys),
            settings.keys.propagation,
        )
    wanted = _encode(ring, now)
    if wanted != _current(secret):
        await call(
            "updating the HMAC key ring",
            core.replace_namespaced_secret(SECRET_NAME, ns, _body(ns, wanted, secret.metadata.resource_version)),
        )
    return wanted


async def ensure_copy(api: k8s.ApiClient, namespace: str, ring: KeyData) -> bool:
    """The ring's copy in a GoQueue namespace equals the master; True if it was written."""
    core = k8s.CoreV1Api(api)
    secret = await get_or_none(
        f"reading Secret {namespace}/{SECRET_NAME}", core.read_namespaced_secret(SECRET_NAME, namespace)
    )
    if secret is None:
        try:
            await core.create_namespaced_secret(namespace, _body(namespace, ring))
        except ApiException as exc:
            if exc.status != 409:
                raise
        return True
    if _current(secret) == ring:
        return False
    await call(
        f"updating Secret {namespace}/{SECRET_NAME}",
        core.replace_namespaced_secret(
            SECRET_NAME, namespace, _body(namespace, ring, secret.metadata.resource_version)
        ),
    )
    return True
