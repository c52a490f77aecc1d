"""One GoQueue brought in line: its Service, key ring and TLS Secret in place, its status true to the cluster.

Level-triggered and idempotent: the kopf handlers call it on changes, the sweeper on a timer; either
may run it any number of times. The status is the operator's alone: a summary of the identity's pods
(each judged from its heartbeat Lease and the kubelet's pod status, ``pod_health``), the worst few by
name, and the counters of pods that are gone (``status.retired``). Writes are JSON merge patches
guarded by resourceVersion (a conflict with another operator run is simply retried on the next sweep).
"""

import datetime
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from kubernetes_asyncio import client as k8s
from kubernetes_asyncio.client.exceptions import ApiException

from goq import names
from goq.operator.conditions import Condition, merge_conditions
from goq.operator.events import post_event
from goq.operator.identity_tls import Issuer, SecretView, ensure_identity
from goq.operator.keys import KeyData, ensure_copy
from goq.operator.kube import custom, get_or_none, patch_goqueue_status, translate
from goq.operator.pod_health import PodProblem, judge, worst
from goq.operator.services import ensure_service
from goq.queue_status import HEARTBEAT_LABEL, Heartbeat, read_heartbeat

log = logging.getLogger("goq.operator")


@dataclass(frozen=True)
class PodFacts:
    """What the operator sees of the identity's pods."""

    existing: frozenset[str]
    """Names of every pod in the namespace (a heartbeat Lease of any other pod is folded and removed)."""
    not_injected: tuple[str, ...]
    """Annotated with this identity, running, without the sidecar."""
    injected: tuple[Mapping[str, Any], ...] = ()
    """Annotated with this identity and given the sidecar: the pods READY and PODS count."""


def pod_facts(identity: str, pods: Sequence[Mapping[str, Any]]) -> PodFacts:
    """Sort the namespace's pods (as dicts). Pure."""
    missing, injected = [], []
    for pod in pods:
        meta = pod.get("metadata") or {}
        annotations = meta.get("annotations") or {}
        if annotations.get(names.ANNOTATION_ID) != identity:
            continue
        if names.ANNOTATION_INJECTED in annotations:
            injected.append(pod)
        elif not meta.get("deletionTimestamp"):
            missing.append(str(meta.get("name")))
    return PodFacts(
        frozenset(str((p.get("metadata") or {}).get("name")) for p in pods),
        tuple(sorted(missing)),
        tuple(sorted(injected, key=lambda p: str((p.get("metadata") or {}).get("name")))),
    )


WORST_PODS: Final = 5
"""How many unhealthy pods the status and the conditions name; the rest are counted."""


@dataclass(frozen=True)
class StatusPlan:
    """What one reconcile writes: the status patch (``None``: nothing to change), then what follows it."""

    patch: dict[str, Any] | None
    fold: tuple[Heartbeat, ...]
    """Heartbeat Leases of pods that are gone, counted in ``status.retired``: delete them after the patch."""
    announce: tuple[PodProblem, ...]
    """Problems not named in the status before: a Warning Event each."""


def _retired(status: Mapping[str, Any], gone: Sequence[Heartbeat]) -> dict[str, Any]:
    """``status.retired`` with the counters of the pods that are gone folded in, each Lease exactly once.

    A folded Lease's uid stays in ``folded`` until the Lease is seen deleted: an operator that stopped
    between the status write and the delete finds the uid and deletes without counting again.
    """
    old = status.get("retired") or {}
    done = set(old.get("folded") or [])
    fresh = [h for h in gone if h.uid not in done]
    return {
        "delivered": int(old.get("delivered") or 0) + sum(h.figures.delivered for h in fresh),
        "poisoned": int(old.get("poisoned") or 0) + sum(h.figures.poisoned for h in fresh),
        "pods": int(old.get("pods") or 0) + len(fresh),
        "folded": sorted(h.uid for h in gone),
    }


def _pods_condition(problems: Sequence[PodProblem], count: int) -> Condition:
    if not problems:
        return Condition("PodsHealthy", True, "AllPodsHealthy", "no pod of this identity has a problem")
    shown = worst(problems, WORST_PODS)
    more = f"; and {len(problems) - len(shown)} more" if len(problems) > len(shown) else ""
    message = f"{len(problems)} of {count} pods unhealthy: " + "; ".join(p.message for p in shown) + more
    return Condition("PodsHealthy", False, shown[0].reason, message)


def status_patch(
    goqueue: Mapping[str, Any],
    facts: PodFacts,
    ready: Condition,
    now: datetime.datetime,
    stale_after: float,
    heartbeats: Sequence[Heartbeat] = (),
    certificate: Condition | None = None,
) -> StatusPlan:
    """The status merge patch, from the pods and the identity's heartbeat Leases. Pure.

    ``certificate``: the condition ``Certificate`` (``None``: peer TLS is off); when it is False, so is Ready:
    the sidecars cannot start without the Secret they mount."""
    meta = goqueue["metadata"]
    status = goqueue.get("status") or {}
    beats = {h.pod: h for h in heartbeats}
    verdicts = [judge(pod, beats.get(str(pod["metadata"]["name"])), now, stale_after) for pod in facts.injected]
    live = [h for h in heartbeats if h.pod in facts.existing]
    gone = tuple(h for h in heartbeats if h.pod not in facts.existing)
    retired = _retired(status, gone)
    problems = [v.problem for v in verdicts if v.problem is not None]
    pods = _pods_condition(problems, len(verdicts))
    if ready.status and certificate is not None and not certificate.status:
        ready = Condition("Ready", False, certificate.reason, certificate.message)
    if ready.status and problems:
        ready = Condition("Ready", False, "PodsUnhealthy", pods.message)
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
    ready_pods = sum(1 for v in verdicts if v.ready)
    wanted: dict[str, Any] = {
        "ready": f"{ready_pods}/{len(verdicts)}",
        "readyPods": ready_pods,
        "podCount": len(verdicts),
        "sendQueue": sum(h.figures.send_queue for h in live),
        "receiveQueue": sum(h.figures.receive_queue for h in live),
        "delivered": retired["delivered"] + sum(h.figures.delivered for h in live),
        "poisoned": retired["poisoned"] + sum(h.figures.poisoned for h in live),
        "unhealthyPods": len(problems),
        "worstPods": [
            {"pod": p.pod, "reason": p.reason, "message": p.message[:300]} for p in worst(problems, WORST_PODS)
        ],
        "retired": retired,
        "conditions": merge_conditions(
            status.get("conditions"), [ready, injected, pods, *([certificate] if certificate else [])], now, generation
        ),
        "notInjected": list(facts.not_injected),
        "observedGeneration": generation,
    }
    told = {(w.get("pod"), w.get("reason")) for w in status.get("worstPods") or [] if isinstance(w, Mapping)}
    announce = tuple(p for p in problems if (p.pod, p.reason) not in told)
    if all(status.get(k) == v for k, v in wanted.items()) and "pods" not in status:
        return StatusPlan(None, gone, announce)
    patch: dict[str, Any] = {"metadata": {"resourceVersion": meta["resourceVersion"]}, "status": wanted}
    if "pods" in status:
        patch["status"] = {**wanted, "pods": None}  # per-pod entries of GoQ before heartbeat Leases
    return StatusPlan(patch, gone, announce)


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
    leases: list[dict[str, Any]] = field(default_factory=list)
    """Every heartbeat Lease of the namespace, as dicts; read before the pods, so that each Lease's pod,
    created before its Lease, is in ``pods`` unless it is really gone."""
    certificates: SecretView = field(default_factory=SecretView)
    """The namespace's certificate Secret, read once for all its GoQueues (it holds up to 1 MiB)."""

    def heartbeats(self, identity: str) -> list[Heartbeat]:
        found = (read_heartbeat(lease) for lease in self.leases if _labels(lease).get(HEARTBEAT_LABEL) == identity)
        return [h for h in found if h is not None]


def _labels(obj: Mapping[str, Any]) -> Mapping[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}


async def view_namespace(api: k8s.ApiClient, namespace: str, key_data: KeyData) -> NamespaceView:
    """Bring the namespace's key ring copy in line and read its heartbeat Leases, then its pods."""
    if await ensure_copy(api, namespace, key_data):
        log.info("HMAC key ring copied to namespace %s", namespace)
    leases = await k8s.CoordinationV1Api(api).list_namespaced_lease(namespace, label_selector=HEARTBEAT_LABEL)
    pods = await k8s.CoreV1Api(api).list_namespaced_pod(namespace)
    return NamespaceView(
        [api.sanitize_for_serialization(p) for p in pods.items],
        [api.sanitize_for_serialization(lease) for lease in leases.items],
    )


def namespace_terminating(exc: ApiException) -> bool:
    """The API refused because the namespace is being deleted: nothing left to do there."""
    return exc.status == 403 and "being terminated" in str(exc.body)


async def _delete_lease(api: k8s.ApiClient, namespace: str, heartbeat: Heartbeat) -> None:
    """Delete a folded heartbeat Lease (only that very Lease: a uid precondition); gone already is fine."""
    options = k8s.V1DeleteOptions(preconditions=k8s.V1Preconditions(uid=heartbeat.uid))
    try:
        await k8s.CoordinationV1Api(api).delete_namespaced_lease(heartbeat.lease, namespace, body=options)
    except ApiException as exc:
        if exc.status not in (404, 409):
            raise translate(f"deleting heartbeat Lease {namespace}/{heartbeat.lease}", exc) from exc
    log.info("pod %s is gone: its counters are kept in GoQueue status.retired", heartbeat.pod)


async def reconcile(
    api: k8s.ApiClient,
    goqueue: Mapping[str, Any],
    key_data: KeyData,
    stale_after: float,
    view: NamespaceView | None = None,
    issuer: Issuer | None = None,
) -> None:
    """Service, key ring copy, TLS Secret, then status and Events for one GoQueue (a dict as read from the API).

    ``view``: the namespace as a sweep already read it; ``None``: read it now. ``issuer``: the identity CA
    (``None``: peer TLS is off, no certificate).
    """
    meta = goqueue["metadata"]
    ns, identity = meta["namespace"], meta["name"]
    try:
        if await ensure_service(api, goqueue):
            await post_event(api, goqueue, "Normal", "ServiceReady", f"Service {names.service_name(identity)} in place")
        if view is None:
            view = await view_namespace(api, ns, key_data)
        certificate = await ensure_identity(api, goqueue, issuer, view=view.certificates) if issuer else None
        facts = pod_facts(identity, view.pods)
        ready = await _ready_condition(api, goqueue)
    except ApiException as exc:
        if namespace_terminating(exc):
            log.debug("namespace %s is being deleted; nothing to reconcile for %s", ns, identity)
            return
        raise translate(f"reconciling GoQueue {ns}/{identity}", exc) from exc
    now = datetime.datetime.now(datetime.UTC)
    plan = status_patch(goqueue, facts, ready, now, stale_after, view.heartbeats(identity), certificate)
    if plan.patch is not None:
        await patch_goqueue_status(api, ns, identity, plan.patch)
    for heartbeat in plan.fold:  # counted in status.retired by now (or before)
        await _delete_lease(api, ns, heartbeat)
    for problem in plan.announce:
        await post_event(api, goqueue, "Warning", problem.reason, problem.message, once_per=problem.pod)
    if plan.patch is None:
        return
    old_missing = set((goqueue.get("status") or {}).get("notInjected") or [])
    if new_missing := [p for p in facts.not_injected if p not in old_missing]:
        await post_event(
            api, goqueue, "Warning", "NotInjected", f"pods without the GoQ sidecar: {', '.join(new_missing)}"
        )
    old_ready: Mapping[str, Any] = next(
        (c for c in (goqueue.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"), {}
    )
    new_ready = next(c for c in plan.patch["status"]["conditions"] if c["type"] == "Ready")
    if old_ready.get("reason") != new_ready["reason"]:
        warning = new_ready["status"] != "True"
        await post_event(api, goqueue, "Warning" if warning else "Normal", new_ready["reason"], new_ready["message"])
