"""A sidecar without MongoDB runs transient-only, as docs/sidecar.md says; poisoned transient messages go to
the GoQueue's poison sink like any other (the ``log`` sink when there is no MongoDB)."""

import asyncio
import json
from collections.abc import Callable

import aiohttp
import grpc
import pytest

from goq.api.v1 import queue_manager_pb2 as pb
from goq.devenv.sidecars import SidecarProcess

from .conftest import App

Sidecars = Callable[..., dict[str, SidecarProcess]]
Apps = Callable[[SidecarProcess], App]


def poisoned_lines(sidecar: SidecarProcess) -> list[dict[str, object]]:
    """The ``log`` poison sink's records in a sidecar's log."""
    found = []
    for line in sidecar.log().splitlines():
        try:
            message = json.loads(line).get("message", "")
            record = json.loads(message)
        except (ValueError, AttributeError):
            continue
        if isinstance(record, dict) and record.get("event") == "poisoned":
            found.append(record)
    return found


async def test_without_mongodb_the_default_spec_starts_transient_only_and_delivers_transient_messages(
    sidecars: Sidecars, apps: Apps
) -> None:
    group = sidecars("orders", "billing", GOQ_MONGODB_URI="")
    orders, billing = apps(group["orders"]), apps(group["billing"])
    assert "poisoned messages are only logged" in group["orders"].log()
    assert "transient-only (no MongoDB)" in group["orders"].log()

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await orders.stub.Send(pb.SendRequest(to="billing", payload=b"kept?"))
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "persistent messages need MongoDB and this sidecar has none" in (refused.value.details() or "")
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{group['orders'].rest_url}/v1/messages", json={"to": "billing", "payload": "", "persistent": True}
        ) as response,
    ):
        assert response.status == 503
        assert (await response.json())["error"]["code"] == "unavailable"

    sent = await orders.stub.Send(pb.SendRequest(to="billing", payload=b"fleeting", persistent=False))
    assert sent.state == "queued"
    got = await billing.receive(1, within=20)
    assert [(m.id, m.payload, m.persistent) for m in got] == [(sent.id, b"fleeting", False)]
    stats = await orders.stats()
    assert (stats.sent, stats.delivered) == (1, 1)


async def test_without_mongodb_a_transient_message_poisoned_for_overflow_is_logged_with_its_reason(
    sidecars: Sidecars, apps: Apps
) -> None:
    sidecar = sidecars("orders", GOQ_MONGODB_URI="", GOQ_QUEUE_SPEC='{"sendQueueLimit": 1}')["orders"]
    app = apps(sidecar)
    first = await app.stub.Send(pb.SendRequest(to="billing", payload=b"1", persistent=False))
    over = await app.stub.Send(pb.SendRequest(to="billing", payload=b"2", persistent=False, id="over"))
    assert (first.state, over.state) == ("queued", "poisoned")
    for _ in range(50):
        if poisoned_lines(sidecar):
            break
        await asyncio.sleep(0.1)
    assert [(r["id"], r["reason"], r["direction"]) for r in poisoned_lines(sidecar)] == [
        ("over", "overflow", "outbound")
    ]


async def test_with_mongodb_a_transient_message_poisoned_for_overflow_is_kept_in_the_poison_queue(
    sidecars: Sidecars, apps: Apps
) -> None:
    app = apps(sidecars("orders", GOQ_QUEUE_SPEC='{"sendQueueLimit": 1}')["orders"])
    await app.stub.Send(pb.SendRequest(to="billing", payload=b"1", persistent=False))
    over = await app.stub.Send(pb.SendRequest(to="billing", payload=b"2", persistent=False, id="over"))
    assert over.state == "poisoned"
    listed = await app.stub.ListPoisoned(pb.ListPoisonedRequest(limit=10))
    assert [(m.id, m.reason, m.persistent, m.payload) for m in listed.messages] == [("over", "overflow", False, b"2")]


async def test_without_mongodb_a_persistent_send_over_the_send_queue_bound_is_refused_not_poisoned(
    sidecars: Sidecars, apps: Apps
) -> None:
    sidecar = sidecars("orders", GOQ_MONGODB_URI="", GOQ_QUEUE_SPEC='{"sendQueueLimit": 1}')["orders"]
    app = apps(sidecar)
    assert (await app.stub.Send(pb.SendRequest(to="billing", payload=b"1", persistent=False))).state == "queued"
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await app.stub.Send(pb.SendRequest(to="billing", payload=b"2", persistent=True, id="kept-by-nobody"))
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "persistent messages need MongoDB" in (refused.value.details() or "")
    assert (await app.stats()).poisoned == 0
    assert poisoned_lines(sidecar) == []


async def test_a_persistent_delivery_to_a_full_receiver_without_mongodb_stays_with_its_sender(
    sidecars: Sidecars, apps: Apps
) -> None:
    group = sidecars("orders", "billing", start=False, GOQ_QUEUE_SPEC='{"receiveQueueLimit": 1}')
    group["billing"].env["GOQ_MONGODB_URI"] = ""
    for sidecar in group.values():
        sidecar.start()
    orders, billing = apps(group["orders"]), apps(group["billing"])
    await orders.stub.Send(pb.SendRequest(to="billing", payload=b"fills", persistent=False))
    for _ in range(100):
        if (await billing.stats()).receive_queue == 1:
            break
        await asyncio.sleep(0.05)
    sent = await orders.stub.Send(pb.SendRequest(to="billing", payload=b"persistent", persistent=True))
    assert sent.state == "queued"
    await asyncio.sleep(3)  # several attempts, each answered "retry later"
    assert (await orders.stats()).send_queue == 1
    assert ((await billing.stats()).poisoned, (await orders.stats()).poisoned) == (0, 0)
    assert poisoned_lines(group["billing"]) == []
    assert "a persistent message cannot be poisoned on this sidecar" in group["billing"].log()
