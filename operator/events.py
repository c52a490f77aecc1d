"""Kubernetes Events about GoQ objects, so that ``kubectl describe`` tells what the operator saw."""

import datetime
import logging
from collections.abc import Mapping
from typing import Any

from kubernetes_asyncio import client as k8s

from goq.errors import GoQError
from goq.operator.kube import body as as_body
from goq.operator.kube import call
from goq.queue_status import format_time

log = logging.getLogger("goq.operator")
COMPONENT = "goq-operator"


def event_body(
    involved: Mapping[str, Any], kind_type: str, reason: str, message: str, now: datetime.datetime
) -> dict[str, Any]:
    """A core/v1 Event about ``involved`` (a dict with apiVersion, kind, metadata)."""
    meta = involved.get("metadata") or {}
    stamp = format_time(now)
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{meta.get('name', 'goq')}.", "namespace": meta.get("namespace")},
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
    api: k8s.ApiClient, involved: Mapping[str, Any], kind_type: str, reason: str, message: str
) -> None:
    """Post an Event; a failure is logged, never raised: events are a courtesy, not the state."""
    body = event_body(involved, kind_type, reason, message, datetime.datetime.now(datetime.UTC))
    namespace = body["metadata"]["namespace"]
    try:
        await call(f"posting event {reason}", k8s.CoreV1Api(api).create_namespaced_event(namespace, as_body(body)))
    except GoQError as exc:
        log.warning("could not post event %s about %s: %s", reason, body["involvedObject"]["name"], exc)
