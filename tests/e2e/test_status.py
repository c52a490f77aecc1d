"""``kubectl get goqueues`` through the API: the figures the sidecars' heartbeats write, and a deleted pod
whose heartbeat stopped turning stale before it leaves the status."""

from typing import Any

from kubernetes_asyncio import client as k8s

from goq import names
from goq.devenv import tables

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
    entry = status["pods"][orders["metadata"]["name"]]
    assert entry["ready"] is True
    assert entry["stale"] is False
    assert entry["heartbeat"]
    table = await tables.goqueues_table(space.api, space.name)
    assert table.splitlines()[0].split() == list(tables.COLUMNS)
    assert table_row(table, "orders")[:7] == ["orders", "1/1", "1", "0", "0", "20", "0"]
    assert table_row(table, "billing")[:3] == ["billing", "1/1", "1"]


async def test_a_deleted_pod_turns_stale_when_its_heartbeat_stops_and_leaves_the_status_when_gone(
    space: ShopSpace,
) -> None:
    await space.queues(PATIENT, "billing")
    await space.pod("billing", more=[LINGER], terminationGracePeriodSeconds=20)
    billing = await space.running("billing")
    pod_name = billing["metadata"]["name"]

    async def heartbeating() -> bool:
        entry = ((await goqueue(space, "billing")).get("status") or {}).get("pods", {}).get(pod_name)
        return bool(entry and entry["ready"] and not entry["stale"])

    assert await eventually(heartbeating, 30)
    await k8s.CoreV1Api(space.api).delete_namespaced_pod(pod_name, space.name)

    async def stale() -> dict[str, Any] | None:
        status = (await goqueue(space, "billing")).get("status") or {}
        entry = status.get("pods", {}).get(pod_name) or {}
        return status if entry.get("stale") else None

    status = await eventually(stale, STALE_AFTER + 15)
    assert status, await goqueue(space, "billing")
    assert status["ready"] == "0/1"
    table = await tables.goqueues_table(space.api, space.name)
    assert table_row(table, "billing")[:3] == ["billing", "0/1", "1"]

    async def pruned() -> bool:
        status = (await goqueue(space, "billing")).get("status") or {}
        return pod_name not in (status.get("pods") or {}) and status.get("podCount") == 0

    assert await eventually(pruned, 60), await goqueue(space, "billing")
