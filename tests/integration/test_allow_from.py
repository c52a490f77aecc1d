"""``allowFrom`` with real sidecar processes: an allowed sender's messages arrive; a forbidden sender's, small
or large, are refused by the receiver (counted, never handed to its application) and poisoned at the sender
with reason ``forbidden`` after exactly one attempt."""

import asyncio
import json
from collections.abc import Callable

from goq.api.v1 import queue_manager_pb2 as pb
from goq.devenv.sidecars import SidecarProcess

from .conftest import App
from .test_metrics import scrape
from .test_peer_bounds import refused_metrics

Sidecars = Callable[..., dict[str, SidecarProcess]]
Apps = Callable[[SidecarProcess], App]
ONLY_ORDERS = json.dumps({"allowFrom": [{"namespace": "default", "identity": "orders"}]})
LARGE = 2 * 1024 * 1024
"""Over 1 MiB: sent as a large message, through ``Peer.Transfer``."""


async def poisoned(app: App, count: int, within: float = 30.0) -> list[pb.PoisonedMessage]:
    listed: list[pb.PoisonedMessage] = []
    for _ in range(int(within / 0.05)):
        listed = list((await app.stub.ListPoisoned(pb.ListPoisonedRequest())).messages)
        if len(listed) >= count:
            break
        await asyncio.sleep(0.05)
    return listed


async def test_an_allowed_sender_delivers_and_a_forbidden_one_is_poisoned_forbidden_after_one_attempt(
    sidecars: Sidecars, apps: Apps
) -> None:
    group = sidecars("orders", "audit", "billing", start=False)
    group["billing"].env["GOQ_QUEUE_SPEC"] = ONLY_ORDERS
    for sidecar in group.values():
        sidecar.start()
    orders, audit, billing = apps(group["orders"]), apps(group["audit"]), apps(group["billing"])

    await orders.send("billing", [b"from orders"])
    (small,) = await audit.send("billing", [b"from audit"])
    (large,) = await audit.send("billing", [b"L" * LARGE])

    assert [m.payload for m in await billing.receive(1, within=30)] == [b"from orders"]
    listed = await poisoned(audit, 2)
    # ``attempts`` counts failed attempts: the one attempt was answered (refused), none failed or was retried.
    assert sorted((m.id, m.reason, m.attempts, m.direction, m.peer) for m in listed) == sorted(
        (result.accepted.id, "forbidden", 0, "outbound", "billing.default") for result in (small, large)
    )
    expected = "forbidden: audit.default may not send to billing.default (allowFrom orders.default)"
    assert all(expected in m.detail for m in listed), [m.detail for m in listed]
    assert await billing.quiet(1.0) == []
    assert refused_metrics(group["billing"]) == {"forbidden": 2}  # each refused once: one attempt each
    sent = {name: value for (name, _), value in scrape(group["audit"]).items() if name.startswith("goq_delivery_")}
    assert sent.get("goq_delivery_attempts_failed_total") == 0
    assert (await audit.stats()).send_queue == 0  # nothing left to retry
    assert (await orders.stub.ListPoisoned(pb.ListPoisonedRequest())).messages == []
