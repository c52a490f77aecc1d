"""``kubectl get goqueues`` through the API: the figures the sidecars' heartbeat Leases carry, and a deleted
pod whose heartbeat stopped counting as not ready before it leaves the status (its counters kept)."""

from typing import Any

from kubernetes_asyncio import client as k8s

from goq import names
from goq.devenv import tables
from goq.queue_status import lease_name

from .conftest import STALE_AFTER, ShopSpace, eventually

PATIENT = {"maxAttempts": 100, "initialBackoff": "100ms", "maxBackoff": "1s", "attemptTimeout": "2s", "maxAge": "5m"}
LINGER = {
    "name": "linger",
    "image": "python:3.11-slim",
    "command": ["python", "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"],
}
"""A container that ignores SIGTERM: its pod stays Terminating for its grace period, as slow apps do."""


async def goqueue(space: ShopSpace, name: str) -> dict[str, Any]:
    found: dict[str, Any] = await k8s.CustomObjectsApi(space.api).get_namespaced_custom_object(
        names.GROUP, names.VERSION, space.name, names.GOQUEUE_PLURAL, name
    )
    return found


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
        return status if status.get("delivered") == 20 else None

    status = await eventually(reported, 60)
    assert status, await goqueue(space, "orders")
    lease = await k8s.CoordinationV1Api(space.api).read_namespaced_lease(
        lease_name("orders", orders["metadata"]["name"]), space.name
    )
    assert lease.metadata.annotations["goq.io/ready"] == "true"
    assert lease.spec.renew_time
    assert status["worstPods"] == []
    table = await tables.goqueues_table(space.api, space.name)
    assert table.splitlines()[0].split() == list(tables.COLUMNS)
    assert table_row(table, "orders")[:7] == ["orders", "1/1", "1", "0", "0", "20", "0"]
    assert table_row(table, "billing")[:3] == ["billing", "1/1", "1"]


async def test_a_deleted_pod_is_not_ready_when_its_heartbeat_stops_and_leaves_the_count_when_gone(
    space: ShopSpace,
) -> None:
    await space.queues(PATIENT, "billing")
    await space.pod("billing", more=[LINGER], terminationGracePeriodSeconds=20)
    billing = await space.running("billing")
    pod_name = billing["metadata"]["name"]

    async def heartbeating() -> bool:
        status = (await goqueue(space, "billing")).get("status") or {}
        return status.get("ready") == "1/1"

    assert await eventually(heartbeating, 30)
    await k8s.CoreV1Api(space.api).delete_namespaced_pod(pod_name, space.name)

    async def not_ready() -> dict[str, Any] | None:
        status = (await goqueue(space, "billing")).get("status") or {}
        return status if status.get("ready") == "0/1" else None

    status = await eventually(not_ready, STALE_AFTER + 15)
    assert status, await goqueue(space, "billing")
    assert status["worstPods"] == []  # a terminating pod's silence is expected, not a problem
    table = await tables.goqueues_table(space.api, space.name)
    assert table_row(table, "billing")[:3] == ["billing", "0/1", "1"]

    async def pruned() -> bool:
        status = (await goqueue(space, "billing")).get("status") or {}
        return status.get("podCount") == 0 and (status.get("retired") or {}).get("pods") == 1

    assert await eventually(pruned, 60), await goqueue(space, "billing")
