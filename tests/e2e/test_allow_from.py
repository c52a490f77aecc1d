"""``allowFrom`` end to end on the local cluster: billing's GoQueue lets only orders send. Orders' messages
arrive; those of audit (the same program, another identity) are poisoned at audit's sidecar with reason
``forbidden`` and never reach billing; once the GoQueue also allows audit, the running sidecar follows the
change and audit's redriven messages arrive."""

from typing import Any

from goq import names
from goq.devenv import applying

from .conftest import ACCEPTED, INVOICED, ShopSpace, eventually

PATIENT = {"maxAttempts": 100, "initialBackoff": "100ms", "maxBackoff": "1s", "attemptTimeout": "2s", "maxAge": "5m"}


def billing_queue(*senders: str, namespace: str) -> dict[str, Any]:
    allow = [{"namespace": namespace, "identity": s} for s in senders]
    spec = {"retryPolicy": "e2e", "poisonQueue": {"type": "mongodb"}, "allowFrom": allow}
    return {"apiVersion": names.API_VERSION, "kind": "GoQueue", "metadata": {"name": "billing"}, "spec": spec}


async def test_only_allowed_senders_reach_billing_and_a_changed_allow_from_applies_without_restart(
    space: ShopSpace,
) -> None:
    await space.queues(PATIENT, "orders", "audit")
    await applying.apply(space.api, billing_queue("orders", namespace=space.name), space.name)
    await space.provided("billing")
    await space.pod("billing")
    await space.pod("orders", {"ORDERS_COUNT": "3", "ORDERS_INTERVAL": "0"})
    # audit: the same program as orders (it sends to billing), as another identity.
    await space.pod("orders", {"ORDERS_COUNT": "3", "ORDERS_INTERVAL": "0", "ORDERS_START": "101"}, identity="audit")
    billing, orders, audit = [await space.running(app) for app in ("billing", "orders", "audit")]

    async def forbidden_poisoned() -> list[dict[str, Any]]:
        entries = await space.poison_list(audit)
        return entries if len(entries) >= 3 else []

    entries = await eventually(forbidden_poisoned, 60, interval=2.0)
    # Attempts that failed before billing's pod could be reached may come first (its address appears when it is
    # ready); once billing answers, the refusal poisons at once (tests/integration/test_allow_from.py counts it).
    assert sorted((e["reason"], e["peer"]) for e in entries) == [("forbidden", f"billing.{space.name}")] * 3
    assert all(f"audit.{space.name} may not send to billing.{space.name}" in str(e["detail"]) for e in entries)
    assert await space.numbers(audit, ACCEPTED) == {101, 102, 103}

    async def orders_invoiced() -> bool:
        return await space.numbers(billing, INVOICED) >= {1, 2, 3}

    assert await eventually(orders_invoiced, 60, interval=1.0), (await space.log(billing))[-2000:]
    assert await space.numbers(billing, INVOICED) == {1, 2, 3}
    assert await space.poison_list(orders) == []

    # billing's running sidecar follows its GoQueue: allow audit too, then hand its messages back.
    await applying.apply(space.api, billing_queue("orders", "audit", namespace=space.name), space.name)

    async def redriven_and_invoiced() -> bool:
        left = [e["id"] for e in await space.poison_list(audit)]
        if left:
            await space.goqctl(audit, "poison", "redrive", *left)
        return await space.numbers(billing, INVOICED) == {1, 2, 3, 101, 102, 103}

    assert await eventually(redriven_and_invoiced, 60, interval=2.0), (await space.log(billing))[-2000:]
    assert space.restarts(await space.read("billing")) == 0
