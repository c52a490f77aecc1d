"""A destination gone for longer than the RetryPolicy allows: its messages are poisoned with the reason,
and ``goqctl`` (through the kubeconfig, as a user runs it) redrives them once the destination is back."""

import json

from .conftest import ACCEPTED, INVOICED, ShopSpace, eventually

IMPATIENT = {"maxAttempts": 3, "initialBackoff": "100ms", "maxBackoff": "200ms", "attemptTimeout": "1s", "maxAge": "3s"}


async def test_messages_for_a_deleted_pod_land_in_the_poison_queue_and_goqctl_redrives_them_when_it_is_back(
    space: ShopSpace,
) -> None:
    await space.queues(IMPATIENT, "orders", "billing")
    await space.pod("billing")
    await space.running("billing")
    await space.delete("billing")

    await space.pod("orders", {"ORDERS_COUNT": "5", "ORDERS_INTERVAL": "0"})
    orders = await space.running("orders")

    async def poisoned() -> list[dict[str, object]]:
        entries = await space.poison_list(orders)
        return entries if len(entries) >= 5 else []

    entries = await eventually(poisoned, 60, interval=2.0)
    assert len(entries) == 5, entries
    assert await space.numbers(orders, ACCEPTED) == {1, 2, 3, 4, 5}
    for entry in entries:
        assert entry["direction"] == "outbound"
        assert entry["peer"] == f"billing.{space.name}"
        assert entry["reason"] in ("max-attempts", "max-age")
        assert "goq-billing" in str(entry["detail"]), entry["detail"]

    await space.pod("billing")
    billing = await space.running("billing")
    redriven = await space.goqctl(orders, "poison", "redrive", "--all", "-o", "json")
    assert redriven.returncode == 0, redriven.stderr
    assert len(json.loads(redriven.stdout)["redriven"]) == 5

    async def all_invoiced() -> bool:
        return await space.numbers(billing, INVOICED) == {1, 2, 3, 4, 5}

    assert await eventually(all_invoiced, 60, interval=1.0), (await space.log(billing))[-2000:]
    assert await space.poison_list(orders) == []
