"""One GoQueue brought in line: its Service and key ring in place, its status true to the cluster.

Level-triggered and idempotent: the kopf handlers call it on changes, the sweeper on a timer; either
may run it any number of times. Status writes are JSON merge patches guarded by resourceVersion, so
they never overwrite a sidecar's heartbeat that came in between (a conflict is simply retried later).
"""

import datetime
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubernetes_asyncio import client as k8s
from kubernetes_asyncio.client.exceptions import ApiException

from goq import names
from goq.operator.conditions import Condition, merge_conditions
from goq.operator.events import post_event
from goq.operator.keys import KeyData, ensure_copy
from goq.operator.kube import custom, get_or_none, patch_goqueue_status, translate
from goq.operator.services import ensure_service
from goq.queue_status import stale_pods, totals

log = logging.getLogger("goq.operator")


@dataclass(frozen=True)
class PodFacts:
    """What the operator sees of the identity's pods."""

    existing: frozenset[str]
    """Names of every pod in the namespace (to prune entries of pods that are gone)."""
    not_injected: tuple[str, ...]
    """Annotated with this identity, running, without the sidecar."""


def pod_facts(identity: str, pods: Sequence[Mapping[str, Any]]) -> PodFacts:
    """Sort the namespace's pods (as dicts). Pure."""
    missing = []
    for pod in pods:
        meta = pod.get("metadata") or {}
        annotations = meta.get("annotations") or {}
        if annotations.get(names.ANNOTATION_ID) != identity or meta.get("deletionTimestamp"):
            continue
        if names.ANNOTATION_INJECTED not in annotations:
            missing.append(str(meta.get("name")))
    return PodFacts(frozenset(str((p.get("metadata") or {}).get("name")) for p in pods), tuple(sorted(missing)))


def status_patch(
    goqueue: Mapping[str, Any],
    facts: PodFacts,
    ready: Condition,
    now: datetime.datetime,
    stale_after: float,
) -> tuple[dict[str, Any] | None, list[str]]:
    """The status merge patch (``None``: nothing to change) and the pods newly found stale. Pure."""
    meta = goqueue["metadata"]
    status = goqueue.get("status") or {}
    pods = dict(status.get("pods") or {})
    gone = [name for name in pods if name not in facts.existing]
    newly_stale = [name for name in stale_pods(pods, now, stale_after) if name not in gone]
    pod_changes: dict[str, Any] = dict.fromkeys(gone)
    for name in newly_stale:
        pod_changes[name] = {"stale": True, "ready": False}
        pods[name] = {**pods[name], "stale": True, "ready": False}
    for name in gone:
        del pods[name]
    injected = Condition(
        "Injected",
        not facts.not_injected,
        "NotInjected" if facts.not_injected else "AllInjected",
        (
            f"pods annotated {names.ANNOTATION_ID}={meta['name']} run without the GoQ sidecar: "
            f"{', '.join(facts.not_injected)}; was the webhook down when they were created? Recreate them."
        )
        if facts.not_injected
        else "every pod of this identity has the sidecar",
    )
    generation = meta.get("generation")
    wanted: dict[str, Any] = {
        **totals(pods),
        "conditions": merge_conditions(status.get("conditions"), [ready, injected], now, generation),
        "notInjected": list(facts.not_injected),
        "observedGeneration": generation,
    }
    unchanged = all(status.get(k) == v for k, v in wanted.items()) and not pod_changes
    if unchanged:
        return None, []
    patch: dict[str, Any] = {"metadata": {"resourceVersion": meta["resourceVersion"]}, "status": dict(wanted)}
    if pod_changes:
        patch["status"]["pods"] = pod_changes
    return patch, newly_stale


async def _ready_condition(api: k8s.ApiClient, goqueue: Mapping[str, Any]) -> Condition:
    spec = goqueue.get("spec") or {}
    ns = goqueue["metadata"]["namespace"]
    policy = spec.get("retryPolicy")
    if policy:
        found = await get_or_none(
            f"reading RetryPolicy {ns}/{policy}",
            custom(api).get_namespaced_custom_object(names.GROUP, names.VERSION, ns, names.RETRYPOLICY_PLURAL, policy),
        )
        if found is None:
            return Condition(
                "Ready",
                False,
                "RetryPolicyNotFound",
                f"spec.retryPolicy names RetryPolicy {policy!r}, which does not exist in namespace {ns}; "
                "the sidecars use the built-in defaults until it does",
            )
    service = names.service_name(goqueue["metadata"]["name"])
    return Condition("Ready", True, "Reconciled", f"Service {service} and the HMAC key ring are in place")


@dataclass
class NamespaceView:
    """What a sweep reads once per namespace rather than once per GoQueue."""

    pods: list[dict[str, Any]]
    """Every pod of the namespace, as dicts (the key ring copy was brought in line when it was read)."""


async def view_namespace(api: k8s.ApiClient, namespace: str, key_data: KeyData) -> NamespaceView:
    """Bring the namespace's key ring copy in line and read its pods."""
    if await ensure_copy(api, namespace, key_data):
        log.info("HMAC key ring copied to namespace %s", namespace)
    pods = await k8s.CoreV1Api(api).list_namespaced_pod(namespace)
    return NamespaceView([api.sanitize_for_serialization(p) for p in pods.items])


def namespace_terminating(exc: ApiException) -> bool:
    """The API refused because the namespace is being deleted: nothing left to do there."""
    return exc.status == 403 and "being terminated" in str(exc.body)


async def reconcile(
    api: k8s.ApiClient,
    goqueue: Mapping[str, Any],
    key_data: KeyData,
    stale_after: float,
    view: NamespaceView | None = None,
) -> None:
    """Service, key ring copy, then status and Events for one GoQueue (a dict as read from the API).

    ``view``: the namespace as a sweep already read it; ``None``: read it now.
    """
    meta = goqueue["metadata"]
    ns, identity = meta["namespace"], meta["name"]
    try:
        if await ensure_service(api, goqueue):
            await post_event(api, goqueue, "Normal", "ServiceReady", f"Service {names.service_name(identity)} in place")
        if view is None:
            view = await view_namespace(api, ns, key_data)
        facts = pod_facts(identity, view.pods)
        ready = await _ready_condition(api, goqueue)
    except ApiException as exc:
        if namespace_terminating(exc):
            log.debug("namespace %s is being deleted; nothing to reconcile for %s", ns, identity)
            return
        raise translate(f"reconciling GoQueue {ns}/{identity}", exc) from exc
    now = datetime.datetime.now(datetime.UTC)
    patch, newly_stale = status_patch(goqueue, facts, ready, now, stale_after)
    if patch is None:
        return
    await patch_goqueue_status(api, ns, identity, patch)
    old_missing = set((goqueue.get("status") or {}).get("notInjected") or [])
    for pod in newly_stale:
        await post_event(
            api, goqueue, "Warning", "PodStale", f"pod {pod} sent no heartbeat for over {stale_after:.0f} s"
        )
    if new_missing := [p for p in facts.not_injected if p not in old_missing]:
        await post_event(
            api, goqueue, "Warning", "NotInjected", f"pods without the GoQ sidecar: {', '.join(new_missing)}"
        )
    old_ready: Mapping[str, Any] = next(
        (c for c in (goqueue.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"), {}
    )
    if old_ready.get("reason") != ready.reason:
        await post_event(api, goqueue, "Normal" if ready.status else "Warning", ready.reason, ready.message)
