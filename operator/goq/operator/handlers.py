"""The kopf handlers: react to GoQueue changes at once and to pods that ask for an identity.

Registered on a registry of our own (no import-time side effects). GoQueue handling progress is kept
in annotations under ``operator.goq.io`` (never in the status, which the sidecars own). Pods are only
watched, never written: no kopf state lands on user pods.
"""

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import kopf
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio.client.exceptions import ApiException

from goq import names
from goq.errors import ConfigError, GoQError, PermanentError, TemporaryError
from goq.identity import validate_identity
from goq.operator.events import post_event
from goq.operator.kube import custom, get_goqueue, translate
from goq.operator.provisioning import NamespaceProvider

log = logging.getLogger("goq.operator")

Reconciler = Callable[[dict[str, Any]], Awaitable[None]]


def configure(settings: kopf.OperatorSettings) -> None:
    """kopf's own settings: progress in annotations, no peering objects, quiet posting."""
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="operator.goq.io")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="operator.goq.io", key="last-handled-configuration"
    )
    settings.posting.enabled = False  # we post our own Events (kopf's would repeat every retry)
    settings.watching.server_timeout = 300


async def _run(reconcile: Reconciler, body: kopf.Body) -> None:
    try:
        await reconcile(dict(body))
    except TemporaryError as exc:
        raise kopf.TemporaryError(str(exc), delay=exc.delay or 5.0) from exc
    except PermanentError as exc:
        raise kopf.PermanentError(str(exc)) from exc


def default_goqueue(identity: str, namespace: str) -> dict[str, Any]:
    """The GoQueue made for an identity that a pod uses without one: all defaults."""
    return {
        "apiVersion": names.API_VERSION,
        "kind": names.GOQUEUE_KIND,
        "metadata": {
            "name": identity,
            "namespace": namespace,
            "annotations": {"goq.io/created-for-pod": "true"},
        },
        "spec": {},
    }


@dataclass(frozen=True)
class PodFinding:
    """What a pod that asks for GoQ needs: a GoQueue for ``identity``, and a Warning if ``reason`` is set."""

    identity: str | None
    reason: str | None = None
    message: str = ""


def examine_pod(pod: Mapping[str, Any]) -> PodFinding:
    """Judge a pod annotated ``goq.io/id``. Pure.

    A refused pod never exists, so a pod with an invalid identity or without the sidecar got past the
    webhook while it was unavailable (or the pod opted out of injection): both deserve a word.
    """
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    if names.ANNOTATION_ID not in annotations:
        return PodFinding(None)
    try:
        identity = validate_identity(annotations[names.ANNOTATION_ID], f"annotation {names.ANNOTATION_ID}")
    except ConfigError as exc:
        return PodFinding(None, "InvalidIdentity", f"GoQ cannot serve this pod: {exc}")
    if names.ANNOTATION_INJECTED in annotations:
        return PodFinding(identity)
    return PodFinding(
        identity,
        "NotInjected",
        "this pod asks for GoQ but runs without the sidecar (the webhook was unavailable, or the pod or its "
        "namespace is labelled goq.io/injection=disabled); recreate it to get the sidecar",
    )


async def handle_pod(api: k8s.ApiClient, pod: dict[str, Any]) -> None:
    """A new pod asks for GoQ: make a default GoQueue if its identity has none, and tell the pod what is wrong."""
    meta = pod.get("metadata") or {}
    ns = meta.get("namespace")
    finding = examine_pod(pod)
    involved = {"apiVersion": "v1", "kind": "Pod", "metadata": meta}
    if finding.reason:
        await post_event(api, involved, "Warning", finding.reason, finding.message)
    identity = finding.identity
    if not identity or not ns or await get_goqueue(api, ns, identity) is not None:
        return
    try:
        await custom(api).create_namespaced_custom_object(
            names.GROUP, names.VERSION, ns, names.GOQUEUE_PLURAL, default_goqueue(identity, ns)
        )
    except ApiException as exc:
        if exc.status == 409:
            return
        raise translate(f"creating a default GoQueue {ns}/{identity}", exc) from exc
    await post_event(
        api,
        involved,
        "Normal",
        "GoQueueCreated",
        f"created GoQueue {identity} with default settings: no GoQueue existed for this identity",
    )


def build_registry(
    api: k8s.ApiClient, reconcile: Reconciler, provider: NamespaceProvider | None = None
) -> kopf.OperatorRegistry:
    """A kopf registry with GoQ's handlers bound to ``api``, ``reconcile`` and the namespace ``provider``."""
    registry = kopf.OperatorRegistry()
    gq = (names.GROUP, names.VERSION, names.GOQUEUE_PLURAL)

    @kopf.on.startup(registry=registry)
    def _configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        configure(settings)

    @kopf.on.login(registry=registry)
    async def _login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        info: kopf.ConnectionInfo | None = await kopf.login_via_async_client(**kwargs)
        return info

    @kopf.on.resume(*gq, registry=registry)
    @kopf.on.create(*gq, registry=registry)
    @kopf.on.update(*gq, field="spec", registry=registry)
    async def _goqueue_changed(body: kopf.Body, **_: Any) -> None:
        if provider is not None:  # reports what it cannot do on the GoQueue; never raises for the API
            await provider.goqueue_seen(dict(body))
        await _run(reconcile, body)

    @kopf.on.event("", "v1", "pods", annotations={names.ANNOTATION_ID: kopf.PRESENT}, registry=registry)
    async def _pod_seen(event: kopf.RawEvent, **_: Any) -> None:
        if event.get("type") not in (None, "ADDED"):  # new pods, and every pod once at (re)start
            return
        try:
            if provider is not None:  # first: the pod's sidecar needs the Secret and RoleBinding to start
                await provider.pod_seen(dict(event["object"]))
            await handle_pod(api, dict(event["object"]))
        except GoQError as exc:  # the sweeper and the next event try again; nothing to retry here
            log.warning("%s", exc)

    return registry
