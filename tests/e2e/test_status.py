"""``kubectl get goqueues`` on the real node: the figures the sidecars' heartbeat Leases carry; a deleted pod
whose heartbeat stopped counting as not ready before it leaves the status (its counters kept); and a pod whose
sidecar cannot start, named with the kubelet's reason in ``kubectl get -o wide`` and ``kubectl describe``."""

import asyncio
from typing import Any

from kubernetes_asyncio import client as k8s

from goq import names
from goq.devenv import applying
from goq.devenv.node import dockerfiles
from goq.queue_status import lease_name
from goq.webhook.settings import CONTAINER_NAME

from .conftest import STALE_AFTER, ShopSpace, eventually

PATIENT = {"maxAttempts": 100, "initialBackoff": "100ms", "maxBackoff": "1s", "attemptTimeout": "2s", "maxAge": "5m"}
LINGER = {
    "name": "linger",
    "image": f"goq.local/goq-example-billing:{dockerfiles.TAG}",
    "imagePullPolicy": "Never",
    "command": ["python", "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"],
}
"""A container that ignores SIGTERM: its pod stays Terminating for its grace period, as slow apps do."""
COLUMNS = ("NAME", "READY", "PODS", "SENDQ", "RECVQ", "DELIVERED", "POISONED", "AGE")
"""The CRD's printer columns (``crds/goqueues.yaml``) that ``kubectl get`` shows without ``-o wide``."""


async def goqueue(space: ShopSpace, name: str) -> dict[str, Any]:
    found: dict[str, Any] = await k8s.CustomObjectsApi(space.api).get_namespaced_custom_object(
        names.GROUP, names.VERSION, space.name, names.GOQUEUE_PLURAL, name
    )
    return found


async def goqueues_table(space: ShopSpace) -> str:
    """``kubectl get goqueues``: the CRD's printer columns, as users see them."""
    return await asyncio.to_thread(space.cluster.kubectl, "-n", space.name, "get", "goqueues")


def table_row(table: str, name: str) -> list[str]:
    return next(line.split() for line in table.splitlines() if line.split()[0] == name)


async def test_the_goqueue_columns_show_the_sidecars_heartbeat_figures(space: ShopSpace) -> None:
    await space.queues(PATIENT, "orders", "billing")
    await space.pod("billing")
    await space.pod("orders", {"ORDERS_COUNT": "20", "ORDERS_INTERVAL": "0"})
    await space.running("billing")
    orders = await space.running("orders")

    async def reported() -> dict[str, Any] | None:
        status = (await goqueue(space, "orders")).get("status") or {}
        return status if status.get("delivered") == 20 and status.get("ready") == "1/1" else None

    status = await eventually(reported, 60)
    assert status, await goqueue(space, "orders")
    lease = await k8s.CoordinationV1Api(space.api).read_namespaced_lease(
        lease_name("orders", orders["metadata"]["name"]), space.name
    )
    assert lease.metadata.annotations["goq.io/ready"] == "true"
    assert lease.spec.renew_time
    assert status["worstPods"] == []
    table = await goqueues_table(space)
    assert table.splitlines()[0].split() == list(COLUMNS)
    assert table_row(table, "orders")[:7] == ["orders", "1/1", "1", "0", "0", "20", "0"]
    assert table_row(table, "billing")[:3] == ["billing", "1/1", "1"]


async def test_a_deleted_pod_is_not_ready_when_its_heartbeat_stops_and_leaves_the_count_when_gone(
    space: ShopSpace,
) -> None:
    await space.queues(PATIENT, "billing")
    await space.pod("billing", more=[LINGER], terminationGracePeriodSeconds=30)
    billing = await space.running("billing")
    pod_name = billing["metadata"]["name"]

    async def heartbeating() -> bool:
        status = (await goqueue(space, "billing")).get("status") or {}
        return status.get("ready") == "1/1"

    assert await eventually(heartbeating, 30)
    await space.core.delete_namespaced_pod(pod_name, space.name)

    async def not_ready() -> dict[str, Any] | None:
        status = (await goqueue(space, "billing")).get("status") or {}
        return status if status.get("ready") == "0/1" else None

    status = await eventually(not_ready, STALE_AFTER + 20)
    assert status, await goqueue(space, "billing")
    assert status["worstPods"] == []  # a terminating pod's silence is expected, not a problem
    table = await goqueues_table(space)
    assert table_row(table, "billing")[:3] == ["billing", "0/1", "1"]

    async def pruned() -> bool:
        status = (await goqueue(space, "billing")).get("status") or {}
        return status.get("podCount") == 0 and (status.get("retired") or {}).get("pods") == 1

    assert await eventually(pruned, 90), await goqueue(space, "billing")


async def test_a_pod_whose_sidecar_cannot_start_is_named_with_the_kubelets_reason(space: ShopSpace) -> None:
    """A GoQueue gives its sidecars too little memory (``spec.sidecar.resources``): the kubelet's OOM kills
    leave the sidecar crash-looping, and the GoQueue says which pod and why, where users look."""
    await space.queues(PATIENT, "billing")
    starved = {
        "apiVersion": names.API_VERSION,
        "kind": "GoQueue",
        "metadata": {"name": "billing"},
        "spec": {
            "retryPolicy": "e2e",
            "poisonQueue": {"type": "mongodb"},
            "sidecar": {"resources": {"requests": {"memory": "12Mi"}, "limits": {"memory": "12Mi"}}},
        },
    }
    await applying.apply(space.api, starved, space.name)

    async def starved_pod() -> bool:
        """Each operator replica learns ``spec.sidecar`` within a sweep interval: until then, pods get the defaults."""
        created = await space.pod("billing")
        [sidecar] = [c for c in created["spec"]["containers"] if c["name"] == CONTAINER_NAME]
        if sidecar["resources"]["limits"]["memory"] == "12Mi":
            return True
        await space.delete("billing")
        return False

    assert await eventually(starved_pod, 30, interval=1.0), "the webhook never applied the GoQueue's spec.sidecar"

    async def reported() -> dict[str, Any] | None:
        status = (await goqueue(space, "billing")).get("status") or {}
        worst = status.get("worstPods") or []
        return worst[0] if worst and worst[0].get("reason") in ("SidecarCrashLooping", "SidecarCannotStart") else None

    worst = await eventually(reported, 120, interval=2.0)
    pod = await space.read("billing")
    assert worst, f"{await goqueue(space, 'billing')}\npod status: {(pod or {}).get('status')}"
    assert worst["pod"] == "billing"
    assert worst["message"].startswith("pod billing: sidecar "), worst
    assert "OOMKilled" in worst["message"] or "exit code 137" in worst["message"], worst
    status = (await goqueue(space, "billing"))["status"]
    assert status["ready"] == "0/1"
    assert status.get("unhealthyPods") == 1

    wide = space.cluster.kubectl("-n", space.name, "get", "goqueue", "billing", "-o", "wide")
    assert "pod billing: sidecar " in wide, wide
    described = space.cluster.kubectl("-n", space.name, "describe", "goqueue", "billing")
    assert worst["reason"] in described, described
    assert "pod billing: sidecar" in described, described
