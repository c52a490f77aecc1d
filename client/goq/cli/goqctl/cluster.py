"""``goqctl list`` and ``goqctl status``: the GoQueues and their pods as the operator's status tells them.

Pure: dicts in (GoQueues and pods as the API returns them), rows and documents out. The figures are
those the operator writes into each GoQueue's status from the sidecars' heartbeats
(``goq.queue_status``); the pods' own state comes from the pods.
"""

import datetime
from collections.abc import Mapping, Sequence
from typing import Any

from goq import names
from goq.cli.goqctl.humanize import age
from goq.cli.goqctl.output import Table
from goq.queue_status import parse_time

Obj = Mapping[str, Any]


def _age(obj: Obj, now: datetime.datetime) -> str:
    created = parse_time((obj.get("metadata") or {}).get("creationTimestamp"))
    return "<unknown>" if created is None else age((now - created).total_seconds())


def _condition(queue: Obj, kind: str) -> Obj:
    conditions = (queue.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == kind), {})


def health(queue: Obj) -> str:
    """``Healthy``; the Ready condition's reason when it is not true; ``Unknown`` before the operator wrote one."""
    ready = _condition(queue, "Ready")
    if not ready:
        return "Unknown"
    return "Healthy" if ready.get("status") == "True" else str(ready.get("reason") or "NotReady")


def queue_json(queue: Obj) -> dict[str, Any]:
    """One GoQueue for ``-o json|yaml``: its figures, health and worst pods."""
    meta, status = queue["metadata"], queue.get("status") or {}
    return {
        "namespace": meta["namespace"],
        "identity": meta["name"],
        "ready": status.get("ready", ""),
        "readyPods": status.get("readyPods", 0),
        "pods": status.get("podCount", 0),
        "sendQueue": status.get("sendQueue", 0),
        "receiveQueue": status.get("receiveQueue", 0),
        "delivered": status.get("delivered", 0),
        "poisoned": status.get("poisoned", 0),
        "health": health(queue),
        "unhealthyPods": status.get("unhealthyPods", 0),
        "worstPods": status.get("worstPods") or [],
        "notInjected": status.get("notInjected") or [],
        "created": meta.get("creationTimestamp"),
    }


def list_table(queues: Sequence[Obj], now: datetime.datetime, all_namespaces: bool) -> Table:
    """kubectl-style rows; NAMESPACE first with ``-A``; wide adds UNHEALTHY and the worst pod's PROBLEM."""
    rows = []
    for queue in queues:
        q = queue_json(queue)
        worst = q["worstPods"][0] if q["worstPods"] else {}
        problem = f"{worst.get('pod')}: {worst.get('reason')}" if worst else ""
        row = [q["identity"], q["ready"], q["pods"], q["sendQueue"], q["receiveQueue"], q["delivered"]]
        row += [q["poisoned"], q["health"], _age(queue, now), q["unhealthyPods"], problem]
        rows.append([q["namespace"], *row] if all_namespaces else row)
    columns = ["IDENTITY", "READY", "PODS", "SENDQ", "RECVQ", "DELIVERED", "POISONED", "HEALTH", "AGE"]
    columns += ["UNHEALTHY", "PROBLEM"]
    if all_namespaces:
        columns.insert(0, "NAMESPACE")
    where = "in any namespace" if all_namespaces else "in this namespace"
    return Table(columns, rows, wide_from=len(columns) - 2, empty=f"no GoQueue {where}")


def _container(pod: Obj, name: str) -> Obj:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return next((c for c in statuses if c.get("name") == name), {})


def pod_ready(pod: Obj) -> bool:
    """Ready by the kubelet's verdict (the sidecar's readiness probe included) and not being deleted."""
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def pod_json(pod: Obj, problems: Mapping[str, Obj]) -> dict[str, Any]:
    meta, status = pod["metadata"], pod.get("status") or {}
    sidecar = _container(pod, names.SIDECAR_CONTAINER)
    problem = problems.get(meta["name"]) or {}
    return {
        "name": meta["name"],
        "phase": "Terminating" if meta.get("deletionTimestamp") else status.get("phase", "Unknown"),
        "ready": pod_ready(pod),
        "sidecarReady": bool(sidecar.get("ready")),
        "restarts": int(sidecar.get("restartCount") or 0),
        "podIP": status.get("podIP") or "",
        "node": (pod.get("spec") or {}).get("nodeName") or "",
        "problem": problem.get("reason", ""),
        "message": problem.get("message", ""),
        "created": meta.get("creationTimestamp"),
    }


def status_json(queue: Obj | None, namespace: str, identity: str, pods: Sequence[Obj]) -> dict[str, Any]:
    """One identity for ``status``: the GoQueue's figures and conditions, and each of its pods."""
    base: dict[str, Any] = queue_json(queue) if queue is not None else {"namespace": namespace, "identity": identity}
    if queue is None:
        base["health"] = "NoGoQueue"
    problems = {str(w.get("pod")): w for w in base.get("worstPods") or []}
    conditions = ((queue or {}).get("status") or {}).get("conditions") or []
    base["conditions"] = [
        {k: c.get(k) for k in ("type", "status", "reason", "message", "lastTransitionTime")} for c in conditions
    ]
    base["podList"] = [pod_json(p, problems) for p in pods]
    return base


def statuses(queues: Sequence[Obj], pods: Sequence[Obj], namespace: str, wanted: set[str]) -> list[dict[str, Any]]:
    """``status_json`` for every identity with a GoQueue or a pod (only ``wanted`` ones if given), sorted.

    An identity asked for in ``namespace`` is shown even with neither, as ``NoGoQueue``.
    """

    def key(obj: Obj, identity: str) -> tuple[str, str]:
        return str(obj["metadata"]["namespace"]), identity

    by_key = {key(q, q["metadata"]["name"]): q for q in queues}
    grouped: dict[tuple[str, str], list[Obj]] = {k: [] for k in by_key}
    for pod in pods:
        grouped.setdefault(key(pod, pod["metadata"]["labels"][names.LABEL_ID]), []).append(pod)
    if wanted:
        grouped = {k: v for k, v in grouped.items() if k[1] in wanted}
        if namespace:
            for identity in wanted:
                grouped.setdefault((namespace, identity), [])
    return [status_json(by_key.get(k), k[0], k[1], grouped[k]) for k in sorted(grouped)]


def status_text(doc: Mapping[str, Any], now: datetime.datetime, wide: bool) -> str:
    """A summary block, the conditions that are not true, then the pods' table, worst first."""
    lines = [f"{doc['identity']} in {doc['namespace']}: {doc['health']}"]
    if doc["health"] == "NoGoQueue":
        lines.append(
            f"  no GoQueue {doc['identity']!r} in namespace {doc['namespace']}: create one (see docs/operator.md)"
        )
    else:
        lines.append(
            f"  ready {doc['ready'] or '0/0'}   queued to send {doc['sendQueue']}   waiting for the app "
            f"{doc['receiveQueue']}   delivered {doc['delivered']}   poisoned {doc['poisoned']}"
        )
    for c in doc["conditions"]:
        if c.get("status") != "True":
            lines.append(f"  {c.get('type')}: {c.get('reason')}: {c.get('message')}")
    for worst in doc.get("worstPods") or []:
        lines.append(f"  worst pod {worst.get('pod')}: {worst.get('reason')}: {worst.get('message')}")
    for pod in doc.get("notInjected") or []:
        lines.append(f"  {pod}: not injected (no GoQ sidecar)")
    pods = sorted(doc["podList"], key=lambda p: (not p["problem"], p["ready"], p["name"]))
    rows = [
        [
            p["name"],
            "yes" if p["ready"] else "no",
            p["phase"],
            p["restarts"],
            _age({"metadata": {"creationTimestamp": p["created"]}}, now),
            p["problem"] or "-",
            p["podIP"],
            p["node"],
            p["message"],
        ]
        for p in pods
    ]
    columns = ("POD", "READY", "PHASE", "RESTARTS", "AGE", "PROBLEM", "IP", "NODE", "MESSAGE")
    table = Table(columns, rows, wide_from=6, empty="  no pods")
    rendered = table.render(wide)
    return "\n".join([*lines, "", rendered]) if rows else "\n".join([*lines, rendered])
