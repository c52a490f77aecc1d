"""The headless Service ``goq-<id>`` through which peers find an identity's pods."""

from collections.abc import Mapping
from typing import Any

from kubernetes_asyncio import client as k8s
from kubernetes_asyncio.client.exceptions import ApiException

from goq import names
from goq.operator.kube import body as as_body
from goq.operator.kube import call, get_or_none


def owner_reference(goqueue: Mapping[str, Any]) -> dict[str, Any]:
    """Makes the GoQueue the owner, so that deleting it garbage-collects what the operator made for it."""
    meta = goqueue["metadata"]
    return {
        "apiVersion": names.API_VERSION,
        "kind": names.GOQUEUE_KIND,
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": False,
    }


def service_body(goqueue: Mapping[str, Any]) -> dict[str, Any]:
    """The Service for a GoQueue: headless, selects the identity's label, one port ``peer``."""
    identity = goqueue["metadata"]["name"]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": names.service_name(identity),
            "namespace": goqueue["metadata"]["namespace"],
            "labels": {names.LABEL_ID: identity, "app.kubernetes.io/managed-by": "goq-operator"},
            "ownerReferences": [owner_reference(goqueue)],
        },
        "spec": {
            "clusterIP": "None",
            "selector": {names.LABEL_ID: identity},
            # Peers must find pods that are starting too: their sidecar may already receive.
            "publishNotReadyAddresses": True,
            "ports": [{"name": "peer", "port": names.PORT_PEER, "targetPort": names.PORT_PEER, "protocol": "TCP"}],
        },
    }


async def ensure_service(api: k8s.ApiClient, goqueue: Mapping[str, Any]) -> bool:
    """Create the Service, or bring its selector, ports and owner back; True if anything was written."""
    core = k8s.CoreV1Api(api)
    body = service_body(goqueue)
    name, ns = body["metadata"]["name"], body["metadata"]["namespace"]
    existing = await get_or_none(f"reading Service {ns}/{name}", core.read_namespaced_service(name, ns))
    if existing is None:
        try:
            await core.create_namespaced_service(ns, as_body(body))
        except ApiException as exc:
            if exc.status != 409:  # 409: made meanwhile by an earlier event for the same GoQueue
                raise
        return True
    current = api.sanitize_for_serialization(existing)
    wanted_owner = body["metadata"]["ownerReferences"][0]
    owners = current["metadata"].get("ownerReferences") or []
    spec = current.get("spec") or {}
    ports = [{k: p.get(k) for k in ("name", "port", "targetPort", "protocol")} for p in spec.get("ports") or []]
    if (
        spec.get("selector") == body["spec"]["selector"]
        and ports == body["spec"]["ports"]
        and any(o.get("uid") == wanted_owner["uid"] for o in owners)
    ):
        return False
    patch = {
        "metadata": {"ownerReferences": [wanted_owner], "labels": body["metadata"]["labels"]},
        "spec": {"selector": body["spec"]["selector"], "ports": body["spec"]["ports"]},
    }
    await call(f"repairing Service {ns}/{name}", core.patch_namespaced_service(name, ns, patch))
    return True
