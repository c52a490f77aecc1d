"""At-least-once delivery between real sidecar processes over real MongoDB, with and without faults."""

import asyncio
import json
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from goq.devenv.sidecars import SidecarProcess

from .conftest import App

Sidecars = Callable[..., dict[str, SidecarProcess]]
Apps = Callable[[SidecarProcess], App]


def payloads(count: int, size: int = 1024) -> list[bytes]:
    """Numbered payloads, so order and completeness can be checked from what arrives."""
    return [f"{i:08d}".encode().ljust(size, b".") for i in range(count)]


def numbers(messages: list) -> list[int]:  # type: ignore[type-arg]
    return [int(m.payload[:8]) for m in messages]


async def test_ten_thousand_persistent_messages_arrive_once_each_in_order_and_leave_no_outbox_record(
    sidecars: Sidecars, apps: Apps, mongo_client: AsyncMongoClient[dict[str, Any]], database: str
) -> None:
    group = sidecars("orders", "billing")
    orders, billing = apps(group["orders"]), apps(group["billing"])

    receiving = asyncio.create_task(billing.receive(10_000, within=120))
    results = await orders.send("billing", payloads(10_000))
    got = await receiving

    assert all(r.WhichOneof("result") == "accepted" for r in results)
    assert numbers(got) == list(range(10_000)), "not each exactly once, in order"
    assert {getattr(m, "from") for m in got} == {"orders.default"}
    assert all(m.persistent and m.attempt == 1 for m in got)
    stats = await orders.stats()
    assert (stats.sent, stats.delivered, stats.send_queue) == (10_000, 10_000, 0)
    # Delivery starts before the sender's write returns; each delete must still follow its write.
    outbox = mongo_client[database]["outbox"]
    for _ in range(100):
        if await outbox.count_documents({}) == 0:
            break
        await asyncio.sleep(0.1)
    assert await outbox.count_documents({}) == 0, "delivered messages left outbox records behind"


@pytest.mark.parametrize("victim", ["billing", "orders"])
async def test_a_sidecar_killed_mid_flow_loses_no_persistent_message(
    victim: str, sidecars: Sidecars, apps: Apps, capsys: pytest.CaptureFixture[str]
) -> None:
    group = sidecars("orders", "billing", GOQ_LEASE="2s")
    orders = apps(group["orders"])
    total, messages, accepted = 6000, payloads(6000), 0
    for start in range(0, total, 1000):
        results = await orders.send("billing", messages[start : start + 1000])
        accepted += sum(r.WhichOneof("result") == "accepted" for r in results)
        if start == 2000:  # a third of the way: kill -9, then start it again
            group[victim].kill()
            await asyncio.to_thread(group[victim].start)
            orders = apps(group["orders"])  # a fresh connection, as an application would make

    got = await apps(group["billing"]).receive(total, within=120, distinct=True)
    seen = Counter(numbers(got))
    assert accepted == total
    assert set(seen) == set(range(total)), f"lost: {sorted(set(range(total)) - set(seen))[:20]}"
    duplicates = sum(n - 1 for n in seen.values())
    with capsys.disabled():
        print(f"\n[{victim} killed] {accepted} accepted, {len(got)} received, {duplicates} duplicate(s) at the app")


async def test_unreachable_destination_poisons_each_message_with_reason_attempts_and_last_error(
    sidecars: Sidecars, apps: Apps, mongo_uri: str, database: str
) -> None:
    policy = {"maxAttempts": 3, "initialBackoff": "50ms", "maxBackoff": "100ms", "attemptTimeout": "1s"}
    group = sidecars("orders", "billing", start=False, GOQ_RETRY_POLICY=json.dumps(policy))
    group["orders"].start()  # billing never starts: unreachable
    orders = apps(group["orders"])

    results = await orders.send("billing", payloads(20))
    ids = [r.accepted.id for r in results]

    async with AsyncMongoClient[dict[str, object]](mongo_uri) as client:
        poison = client[database]["poison"]
        for _ in range(600):
            if await poison.count_documents({}) == 20:
                break
            await asyncio.sleep(0.1)
        docs = await poison.find({}).to_list(None)
    assert sorted(d["id"] for d in docs) == sorted(ids)
    for doc in docs:
        assert doc["reason"] == "max-attempts"
        assert doc["attempts"] == 3
        assert doc["dir"] == "outbound"
        assert doc["peer"] == "billing.default"
        assert "3 attempts failed (maxAttempts 3); last error: 127.0.0.1:" in doc["detail"]
        assert "UNAVAILABLE" in doc["detail"]
    stats = await orders.stats()
    assert (stats.poisoned, stats.send_queue) == (20, 0)


async def test_transient_messages_never_touch_mongodb(
    sidecars: Sidecars, apps: Apps, mongo_uri: str, database: str
) -> None:
    group = sidecars("orders", "billing")
    orders, billing = apps(group["orders"]), apps(group["billing"])
    receiving = asyncio.create_task(billing.receive(500, within=60))
    await orders.send("billing", payloads(500), persistent=False)
    got = await receiving
    assert numbers(got) == list(range(500))
    assert not any(m.persistent for m in got)
    async with AsyncMongoClient[dict[str, object]](mongo_uri) as client:
        db = client[database]
        assert await db["outbox"].count_documents({}) == 0
        assert await db["inbox"].count_documents({}) == 0
        assert await db["poison"].count_documents({}) == 0


async def test_a_send_queue_filled_exactly_to_its_limit_in_pipelined_batches_poisons_nothing(
    sidecars: Sidecars, apps: Apps
) -> None:
    """Messages already on their way while their batch is stored count once against the bound, not twice."""
    orders = apps(sidecars("orders", GOQ_QUEUE_SPEC=json.dumps({"sendQueueLimit": 400}))["orders"])
    # Batches of one stream are stored concurrently: each is bounded while others' writes are in flight.
    results = await orders.send("nobody", payloads(400), batch=20)
    assert [r.accepted.state for r in results] == ["queued"] * 400
    over = await orders.send("nobody", payloads(1))
    assert [r.accepted.state for r in over] == ["poisoned"]


async def test_send_overflow_poisons_by_default_and_refuses_when_told(sidecars: Sidecars, apps: Apps) -> None:
    limited = json.dumps({"sendQueueLimit": 5})
    rejecting = json.dumps({"sendQueueLimit": 5, "overflow": "reject"})
    poisoning = sidecars("orders", start=False, GOQ_QUEUE_SPEC=limited)["orders"]
    poisoning.start()  # its destination never runs, so the send queue only fills
    results = await apps(poisoning).send("nobody", payloads(8))
    states = [r.accepted.state for r in results]
    assert states == ["queued"] * 5 + ["poisoned"] * 3

    refusing = sidecars("billing", start=False, GOQ_QUEUE_SPEC=rejecting)["billing"]
    refusing.start()
    results = await apps(refusing).send("nobody", payloads(8))
    assert [r.WhichOneof("result") for r in results] == ["accepted"] * 5 + ["error"] * 3
    assert {r.error.code for r in results[5:]} == {"RESOURCE_EXHAUSTED"}
    assert "send queue full (sendQueueLimit 5); retry later" in results[5].error.message


async def test_receive_overflow_poisons_by_default_and_pushes_back_when_told(sidecars: Sidecars, apps: Apps) -> None:
    small = json.dumps({"receiveQueueLimit": 10})
    group = sidecars("orders", "billing", GOQ_QUEUE_SPEC=small)
    orders, billing = apps(group["orders"]), apps(group["billing"])
    await orders.send("billing", payloads(15))
    for _ in range(600):
        if (await orders.stats()).send_queue == 0:
            break
        await asyncio.sleep(0.05)
    stats = await billing.stats()
    assert (stats.receive_queue, stats.poisoned) == (10, 5)
    got = await billing.receive(10, within=60)
    assert len(got) == 10


async def test_a_replica_adopts_what_a_dead_replica_of_its_identity_held(sidecars: Sidecars, apps: Apps) -> None:
    timing = {"GOQ_HEARTBEAT": "300ms", "GOQ_ADOPT_AFTER": "1s"}
    group = sidecars("orders", "billing", **timing)
    orders, billing = apps(group["orders"]), apps(group["billing"])
    await orders.send("billing", payloads(100))
    for _ in range(600):
        if (await billing.stats()).receive_queue == 100:
            break
        await asyncio.sleep(0.05)
    group["billing"].kill()  # replica billing-0 dies holding 100 unconsumed messages

    group["billing"].env["GOQ_INSTANCE"] = "billing-1"  # another replica of the identity takes its place
    await asyncio.to_thread(group["billing"].start)
    got = await apps(group["billing"]).receive(100, within=60, distinct=True)
    assert set(numbers(got)) == set(range(100))  # at least once: a redelivery may repeat one
    assert "adopted 0 outbound and 100 inbound message(s) from stopped instance(s) billing-0" in group["billing"].log()


async def test_sigterm_stops_cleanly_and_the_next_start_delivers_what_was_left(sidecars: Sidecars, apps: Apps) -> None:
    group = sidecars("orders", "billing", start=False)
    group["orders"].start()  # billing is down: everything stays in orders' send queue
    await apps(group["orders"]).send("billing", payloads(300))
    group["orders"].stop()  # SIGTERM
    log = group["orders"].log()
    assert "shutting down (grace 10 s)" in log
    assert "sidecar orders.default stopped" in log

    group["billing"].start()
    group["orders"].start()
    assert "resumed 300 outbound and 0 inbound persistent message(s)" in group["orders"].log()
    got = await apps(group["billing"]).receive(300, within=60, distinct=True)
    assert sorted(numbers(got)) == list(range(300))
