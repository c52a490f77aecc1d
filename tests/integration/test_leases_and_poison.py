"""The application holds a message until it acknowledges it: leases run out and redeliver, nacks give
messages back or poison them, and poisoned messages can be listed and handed back."""

import asyncio
import json
import time
from collections.abc import Callable

from goq.api.v1 import queue_manager_pb2 as pb
from goq.devenv.sidecars import SidecarProcess

from .conftest import App

Sidecars = Callable[..., dict[str, SidecarProcess]]
Apps = Callable[[SidecarProcess], App]


async def test_an_unacknowledged_message_comes_back_when_its_lease_runs_out(sidecars: Sidecars, apps: Apps) -> None:
    group = sidecars("orders", "billing", GOQ_LEASE="1s")
    orders, billing = apps(group["orders"]), apps(group["billing"])
    await orders.send("billing", [b"work"])
    # On one stream, kept open: a stream the application cancels gives its messages back at once
    # (test_receive_streams.py).
    stream = billing.stub.Receive(pb.ReceiveRequest(max_in_flight=10))
    try:
        (first,) = (await asyncio.wait_for(stream.read(), 60)).messages
        started = time.monotonic()
        (again,) = (await asyncio.wait_for(stream.read(), 60)).messages
    finally:
        stream.cancel()
    assert again.id == first.id
    assert (first.attempt, again.attempt) == (1, 2)
    assert time.monotonic() - started >= 0.8, "handed out again before the lease ran out"
    assert (await billing.stats()).acknowledged == 0


async def test_a_message_never_acknowledged_is_poisoned_after_max_deliveries(sidecars: Sidecars, apps: Apps) -> None:
    group = sidecars("orders", "billing", GOQ_LEASE="300ms", GOQ_MAX_DELIVERIES="2")
    orders, billing = apps(group["orders"]), apps(group["billing"])
    await orders.send("billing", [b"poison pill"])
    got = await billing.receive(2, within=60, ack=False)
    assert [m.attempt for m in got] == [1, 2]
    await asyncio.sleep(0.8)
    (entry,) = (await billing.stub.ListPoisoned(pb.ListPoisonedRequest())).messages
    assert (entry.id, entry.reason, entry.direction, entry.peer) == (
        got[0].id,
        "max-deliveries",
        "inbound",
        "orders.default",
    )
    assert entry.attempts == 2
    assert entry.payload == b"poison pill"
    assert await billing.quiet(0.5) == []


async def test_nack_with_requeue_gives_the_message_back_after_the_delay(sidecars: Sidecars, apps: Apps) -> None:
    group = sidecars("orders", "billing")
    orders, billing = apps(group["orders"]), apps(group["billing"])
    await orders.send("billing", [b"later"])
    (first,) = await billing.receive(1, within=60, ack=False)
    await billing.stub.Nack(pb.NackRequest(id=first.id, requeue=True, delay_seconds=0.5))
    started = time.monotonic()
    (again,) = await billing.receive(1, within=60)
    assert again.id == first.id
    assert time.monotonic() - started >= 0.4


async def test_nack_without_requeue_poisons_with_the_applications_reason(sidecars: Sidecars, apps: Apps) -> None:
    group = sidecars("orders", "billing")
    orders, billing = apps(group["orders"]), apps(group["billing"])
    await orders.send("billing", [b"unparseable"])
    (message,) = await billing.receive(1, within=60, ack=False)
    await billing.stub.Nack(pb.NackRequest(id=message.id, requeue=False, reason="bad JSON"))
    (entry,) = (await billing.stub.ListPoisoned(pb.ListPoisonedRequest())).messages
    assert (entry.id, entry.reason, entry.detail) == (message.id, "nack", "rejected by the application: bad JSON")


async def test_a_poisoned_message_redriven_once_its_destination_is_back_is_delivered(
    sidecars: Sidecars, apps: Apps
) -> None:
    policy = json.dumps({"maxAttempts": 2, "initialBackoff": "50ms", "maxBackoff": "50ms"})
    group = sidecars("orders", "billing", start=False, GOQ_RETRY_POLICY=policy)
    group["orders"].start()
    orders = apps(group["orders"])
    (result,) = await orders.send("billing", [b"second chance"])
    for _ in range(600):
        listed = (await orders.stub.ListPoisoned(pb.ListPoisonedRequest())).messages
        if listed:
            break
        await asyncio.sleep(0.05)
    assert [(m.id, m.reason) for m in listed] == [(result.accepted.id, "max-attempts")]

    group["billing"].start()
    redriven = await orders.stub.Redrive(pb.RedriveRequest(ids=[result.accepted.id, "not-poisoned"]))
    assert list(redriven.ids) == [result.accepted.id]
    got = await apps(group["billing"]).receive(1, within=60)
    assert [(m.id, m.payload) for m in got] == [(result.accepted.id, b"second chance")]
    assert list((await orders.stub.ListPoisoned(pb.ListPoisonedRequest())).messages) == []


async def test_a_nack_that_says_nothing_gives_the_message_back_never_poisons_it(sidecars: Sidecars, apps: Apps) -> None:
    group = sidecars("orders", "billing")
    orders, billing = apps(group["orders"]), apps(group["billing"])
    await orders.send("billing", [b"careful"])
    (first,) = await billing.receive(1, within=60, ack=False)
    await billing.stub.Nack(pb.NackRequest(id=first.id))
    (again,) = await billing.receive(1, within=60)
    assert (again.id, again.attempt) == (first.id, 2)
    assert (await billing.stats()).poisoned == 0
