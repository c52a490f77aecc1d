"""Kubernetes Events about GoQ objects, so that ``kubectl describe`` tells what the operator saw."""

import datetime
import hashlib
import logging
import time
from collections.abc import Mapping
from typing import Any, Final

from kubernetes_asyncio import client as k8s

from goq.errors import GoQError
from goq.operator.kube import body as as_body
from goq.operator.kube import call, status_of
from goq.queue_status import format_time

log = logging.getLogger("goq.operator")
COMPONENT = "goq-operator"
TOLD_FOR: Final = 3600.0
"""Seconds an Event posted with ``once_per`` is not posted again by this process (the API server's event TTL)."""
TOLD_MOST: Final = 10_000
_told: dict[str, float] = {}
"""Names of the Events posted with ``once_per`` lately, and when: a sweep that finds the same 300 unhealthy pods
again makes no API call for them, instead of one refused create each."""


def event_body(
    involved: Mapping[str, Any],
    kind_type: str,
    reason: str,
    message: str,
    now: datetime.datetime,
    once_per: str | None = None,
) -> dict[str, Any]:
    """A core/v1 Event about ``involved`` (a dict with apiVersion, kind, metadata).

    ``once_per``: a key (e.g. pod and cause) that names the Event, so that posting it again while the
    first one lives (the API server keeps Events an hour by default) is refused as a duplicate.
    """
    meta = involved.get("metadata") or {}
    stamp = format_time(now)
    naming: dict[str, str] = {"generateName": f"{meta.get('name', 'goq')}."}
    if once_per is not None:
        digest = hashlib.sha256(f"{meta.get('uid')}/{reason}/{once_per}".encode()).hexdigest()[:16]
        naming = {"name": f"{str(meta.get('name', 'goq'))[:200]}.{digest}"}
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {**naming, "namespace": meta.get("namespace")},
        "involvedObject": {
            "apiVersion": involved.get("apiVersion"),
            "kind": involved.get("kind"),
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
        },
        "type": kind_type,
        "reason": reason,
        "message": message[:1024],
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
    }


async def post_event(
    api: k8s.ApiClient,
    involved: Mapping[str, Any],
    kind_type: str,
    reason: str,
    message: str,
    once_per: str | None = None,
) -> None:
    """Post an Event; a failure is logged, never raised: events are a courtesy, not the state.

    With ``once_per`` an Event already posted for the same key is not repeated (see ``event_body``).
    """
    body = event_body(involved, kind_type, reason, message, datetime.datetime.now(datetime.UTC), once_per)
    namespace = body["metadata"]["namespace"]
    name = f"{namespace}/{body['metadata'].get('name')}" if once_per is not None else None
    if name is not None and _recently_told(name):
        return
    try:
        await call(f"posting event {reason}", k8s.CoreV1Api(api).create_namespaced_event(namespace, as_body(body)))
    except GoQError as exc:
        if name is None or status_of(exc) != 409:
            log.warning("could not post event %s about %s: %s", reason, body["involvedObject"]["name"], exc)
            return
    if name is not None:  # posted, or told already (409)
        _told[name] = time.monotonic()


def _recently_told(name: str) -> bool:
    now = time.monotonic()
    if len(_told) > TOLD_MOST:
        for old in [n for n, at in _told.items() if now - at > TOLD_FOR]:
            del _told[old]
    at = _told.get(name)
    return at is not None and now - at <= TOLD_FOR
