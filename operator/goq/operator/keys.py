"""The HMAC key ring Secrets: one master in the operator's namespace, and one ring in each GoQueue namespace.

With ``GOQ_KEY_SCOPE=namespace`` (the default) a namespace's ring holds only the keys derived from the master
for the pairs of namespaces with it on one side (``goq.pair_keys``), never a master key: its holder can sign
messages from or to that namespace only. With ``cluster`` it is a copy of the master (GoQ before scopes).

Created when missing, never overwritten by a guess (a 409 means another writer won; its keys stand),
rotated on a schedule: a new key is added first and named ``active`` only once every sidecar can
verify it (``goq.keyring``). Key material never reaches a log line or an Event.

Two annotations on the master ask for what the schedule would not do yet (docs/operator.md):
``goq.io/rotate-now`` adds a new key at the next sweep, as a scheduled rotation would, and is removed;
``goq.io/retire-keys: <id>,...`` drops each listed key once it no longer signs and its successor has
signed for the propagation delay (every sidecar signs with the successor by then), and is removed
when all are gone.
"""

import base64
import logging
import math
import time
from typing import Any, Final, NamedTuple

from kubernetes_asyncio import client as k8s
from kubernetes_asyncio.client.exceptions import ApiException

from goq import names, pair_keys
from goq.keyring import ACTIVE_ENTRY, SCHEDULE_ANNOTATION, SECRET_NAME, HmacKey, KeyRing
from goq.operator.kube import body, call, custom, get_or_none
from goq.operator.settings import OperatorSettings

log = logging.getLogger("goq.operator")
MANAGED_LABELS = {"app.kubernetes.io/managed-by": "goq-operator", "app.kubernetes.io/part-of": "goq"}
SecretData = tuple[dict[str, str], dict[str, str]]
"""A ring as the API spells it: (``data``, base64 values; the schedule annotation)."""
ROTATE_ANNOTATION: Final = "goq.io/rotate-now"
"""On the master: rotate at the next sweep (any value); the operator removes it."""
RETIRE_ANNOTATION: Final = "goq.io/retire-keys"
"""On the master: comma-separated key ids to drop as soon as that is safe; removed once they are gone."""


class KeyData(NamedTuple):
    """The master ring as the API spells it, and what each namespace's ring is made from."""

    data: dict[str, str]
    """The master's ``data`` (base64 values)."""
    annotations: dict[str, str]
    """The schedule annotation (key ids and times, no key material)."""
    scope: pair_keys.KeyScope = "cluster"
    namespaces: frozenset[str] = frozenset()
    """Every namespace with a GoQueue: each namespace's ring holds its pair keys with each of them."""

    def for_namespace(self, namespace: str) -> SecretData:
        """The ring of ``namespace``: its pair keys (scope ``namespace``) or the master's copy (``cluster``)."""
        if self.scope == "cluster":
            return self.data, self.annotations
        raw = {k: base64.b64decode(v) for k, v in self.data.items()}
        active = raw.pop(ACTIVE_ENTRY).decode()
        ring = pair_keys.namespace_ring(raw, active, namespace, self.namespaces | {namespace})
        return {k: base64.b64encode(v).decode() for k, v in ring.items()}, self.annotations


async def goqueue_namespaces(api: k8s.ApiClient) -> frozenset[str]:
    """The namespaces that hold a GoQueue (one list of every GoQueue; none while the CRD is not installed)."""
    listed = await get_or_none(
        "listing GoQueues", custom(api).list_cluster_custom_object(names.GROUP, names.VERSION, names.GOQUEUE_PLURAL)
    )
    return frozenset(item["metadata"]["namespace"] for item in (listed or {}).get("items", []))


_listed: dict[int, tuple[float, frozenset[str]]] = {}
"""The last list of namespaces per API client (by ``id``), and when it was made."""


async def _key_data(api: k8s.ApiClient, settings: OperatorSettings, master: SecretData) -> KeyData:
    """The master and, with scope ``namespace``, the namespaces to pair with. The list is reused for up to one
    sweep interval: a burst of GoQueue events (every GoQueue at the operator's start) then costs one list of
    every GoQueue, not one each. A namespace made meanwhile still gets its own pair (``for_namespace``), and
    its pairs with the others, everywhere, at the next sweep after that."""
    if settings.keys.scope == "cluster":
        return KeyData(*master)
    now = time.monotonic()
    made, namespaces = _listed.get(id(api), (-math.inf, frozenset()))
    if now - made >= min(settings.sweep_interval, 10.0):
        namespaces = await goqueue_namespaces(api)
        _listed[id(api)] = (now, namespaces)
    return KeyData(*master, scope="namespace", namespaces=namespaces)


def _encode(ring: KeyRing, now: float) -> SecretData:
    content = ring.to_secret(now)
    return {k: base64.b64encode(v).decode() for k, v in content.data.items()}, content.annotations


def _current(secret: Any) -> SecretData:
    annotations = secret.metadata.annotations or {}
    schedule = {SCHEDULE_ANNOTATION: annotations[SCHEDULE_ANNOTATION]} if SCHEDULE_ANNOTATION in annotations else {}
    return dict(secret.data or {}), schedule


def _decode(secret: Any) -> KeyRing:
    data, annotations = _current(secret)
    return KeyRing.from_secret({k: base64.b64decode(v) for k, v in data.items()}, annotations)


def retire(ring: KeyRing, ids: set[str], now: float, propagation: float) -> tuple[KeyRing, set[str]]:
    """``ring`` without the keys of ``ids`` that may go now; and the ids that must wait.

    A key may go once it does not sign and the key that signs has done so for ``propagation`` s: every
    sidecar has loaded that key by then and signs with it, so only messages signed before (and still
    undelivered) carry the retired key. The key that signs never goes; an id not in the ring is done."""
    signing = ring.signing_key(now)
    settled = signing.not_before + propagation <= now

    def goes(key: HmacKey) -> bool:
        return key.id in ids and key is not signing and settled

    kept = tuple(k for k in ring.keys if not goes(k))
    return KeyRing(kept), {k.id for k in kept if k.id in ids}


def _ids(text: str) -> set[str]:
    return {i.strip() for i in text.split(",") if i.strip()}


def _body(
    namespace: str, ring: SecretData, resource_version: str | None = None, extra: dict[str, str] | None = None
) -> Any:
    meta: dict[str, Any] = {
        "name": SECRET_NAME,
        "namespace": namespace,
        "labels": MANAGED_LABELS,
        "annotations": ring[1] | (extra or {}),
    }
    if resource_version:
        meta["resourceVersion"] = resource_version
    return body({"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": "Opaque", "data": ring[0]})


async def ensure_master(api: k8s.ApiClient, settings: OperatorSettings, now: float | None = None) -> KeyData:
    """The master ring, made when missing, rotated when due, ``active`` moved when a new key's time came; with
    scope ``namespace``, also the namespaces each namespace's ring holds pair keys with."""
    core = k8s.CoreV1Api(api)
    ns = settings.namespace
    now = time.time() if now is None else now
    secret = await get_or_none(f"reading Secret {ns}/{SECRET_NAME}", core.read_namespaced_secret(SECRET_NAME, ns))
    if secret is None:
        wanted = _encode(KeyRing.generate(now), now)
        try:
            await core.create_namespaced_secret(ns, _body(ns, wanted))
            log.info("created the HMAC key ring %s/%s", ns, SECRET_NAME)
            return await _key_data(api, settings, wanted)
        except ApiException as exc:
            if exc.status != 409:
                raise
            secret = await call("reading the HMAC key ring", core.read_namespaced_secret(SECRET_NAME, ns))
            # Another replica made it just now, by its clock (later than our ``now``, or ahead of ours): its
            # first key signs from the moment it was made, which is now for us too.
            now = max(now, *(k.not_before for k in _decode(secret).keys))
    ring = _decode(secret)
    annotations = secret.metadata.annotations or {}
    rotation, propagation = settings.keys.rotation, settings.keys.propagation
    asked = ROTATE_ANNOTATION in annotations
    if asked or (rotation > 0 and now - max(k.created for k in ring.keys) >= rotation):
        ring = ring.rotated(now, propagation, settings.keys.retention)
        log.info(
            "rotating the HMAC key ring%s: %d keys valid, the new one signs in %.0f s",
            f" (asked by {ROTATE_ANNOTATION})" if asked else "",
            len(ring.keys),
            propagation,
        )
    retiring = _ids(annotations.get(RETIRE_ANNOTATION, ""))
    if retiring:
        before = {k.id for k in ring.keys}
        ring, waiting = retire(ring, retiring, now, propagation)
        if gone := before - {k.id for k in ring.keys}:
            log.info("retired HMAC keys %s (asked by %s)", ", ".join(sorted(gone)), RETIRE_ANNOTATION)
        retiring = waiting
    wanted = _encode(ring, now)
    extra = {RETIRE_ANNOTATION: ",".join(sorted(retiring))} if retiring else {}
    if wanted != _current(secret) or asked or annotations.get(RETIRE_ANNOTATION) != extra.get(RETIRE_ANNOTATION):
        await call(
            "updating the HMAC key ring",
            core.replace_namespaced_secret(SECRET_NAME, ns, _body(ns, wanted, secret.metadata.resource_version, extra)),
        )
    return await _key_data(api, settings, wanted)


async def ensure_copy(api: k8s.ApiClient, namespace: str, keys: KeyData) -> bool:
    """The ring of a GoQueue namespace is what ``keys`` make for it (``KeyData.for_namespace``); True if it was
    written. Switching ``GOQ_KEY_SCOPE`` rewrites every namespace's ring at the next sweep."""
    ring = keys.for_namespace(namespace)
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
