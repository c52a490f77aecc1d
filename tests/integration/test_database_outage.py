"""A stopped MongoDB never loses an accepted persistent message: sends are refused while it is down
(nothing accepted), and everything accepted before and after is delivered once it is back."""

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from goq.api.v1 import queue_manager_pb2 as pb
from goq.devenv.mongo import MongoServer
from goq.devenv.sidecars import SidecarProcess

from .conftest import App
from .test_metrics import scrape

Sidecars = Callable[..., dict[str, SidecarProcess]]
Apps = Callable[[SidecarProcess], App]


async def test_sends_during_an_outage_are_refused_and_nothing_accepted_is_lost(
    sidecars: Sidecars, apps: Apps, tmp_path: Path
) -> None:
    mongo = MongoServer(tmp_path / "mongo")
    mongo.start()
    try:
        patient = json.dumps({"maxAttempts": 1000, "initialBackoff": "100ms", "maxBackoff": "500ms"})
        group = sidecars(
            "orders", "billing", GOQ_MONGODB_URI=mongo.uri, GOQ_STORE_TIMEOUT="2s", GOQ_RETRY_POLICY=patient
        )
        orders, billing = apps(group["orders"]), apps(group["billing"])
        before = await orders.send("billing", [f"before-{i}".encode() for i in range(200)])
        assert all(r.WhichOneof("result") == "accepted" for r in before)

        await asyncio.to_thread(mongo.stop)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await orders.stub.Send(pb.SendRequest(to="billing", payload=b"during"))
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "MongoDB could not make the messages durable" in (refused.value.details() or "")

        await asyncio.to_thread(mongo.start)
        after = await orders.send("billing", [f"after-{i}".encode() for i in range(200)])
        assert all(r.WhichOneof("result") == "accepted" for r in after)

        got = await billing.receive(400, within=60, distinct=True)
        payloads = {m.payload for m in got}
        expected = {f"before-{i}".encode() for i in range(200)} | {f"after-{i}".encode() for i in range(200)}
        assert payloads == expected
        assert b"during" not in payloads
    finally:
        mongo.stop()


async def test_with_only_the_senders_database_down_what_the_receiver_stored_is_accepted(
    sidecars: Sidecars, apps: Apps, tmp_path: Path
) -> None:
    """Delivery starts while the sender's write is on its way: a message the receiver stored durably is
    accepted though the sender's own write failed. One with the application's id waits for that write (its
    uniqueness is the sender's store's), so it is refused, and never arrives."""
    senders_mongo = MongoServer(tmp_path / "senders-mongo")
    senders_mongo.start()
    try:
        group = sidecars("orders", "billing", GOQ_STORE_TIMEOUT="2s", start=False)
        group["orders"].env["GOQ_MONGODB_URI"] = senders_mongo.uri
        for sidecar in group.values():
            sidecar.start()
        orders, billing = apps(group["orders"]), apps(group["billing"])
        await asyncio.to_thread(senders_mongo.stop)

        answer = await orders.stub.Send(pb.SendRequest(to="billing", payload=b"stored-by-billing"))
        assert answer.state == "queued"
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await orders.stub.Send(pb.SendRequest(to="billing", payload=b"with-my-id", id="order-17"))
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE

        got = await billing.receive(1, within=10)
        assert [m.payload for m in got] == [b"stored-by-billing"]
        assert [m.payload for m in await billing.quiet(2.0)] == []
        stats = await orders.stats()
        assert (stats.sent, stats.delivered, stats.send_queue) == (1, 1, 0)
    finally:
        senders_mongo.stop()


async def test_retries_while_the_receivers_write_waits_on_its_stopped_database_are_not_taken_as_delivered(
    sidecars: Sidecars, apps: Apps, tmp_path: Path
) -> None:
    """The loss of issue 16, reproduced: billing's MongoDB stops, so its write of a delivered batch waits
    (up to GOQ_STORE_TIMEOUT) while orders' attempt times out and is retried. The retry used to find the
    message reserved in billing's memory and be answered DUPLICATE: orders forgot it, billing's write failed,
    every message was lost. A repeat of a message still being stored is now answered "retry later"."""
    receivers_mongo = MongoServer(tmp_path / "receivers-mongo")
    receivers_mongo.start()
    try:
        patient = {"maxAttempts": 1000, "initialBackoff": "100ms", "maxBackoff": "500ms", "attemptTimeout": "1s"}
        group = sidecars("orders", "billing", GOQ_RETRY_POLICY=json.dumps(patient), start=False)
        group["billing"].env.update(GOQ_MONGODB_URI=receivers_mongo.uri, GOQ_STORE_TIMEOUT="4s")
        for sidecar in group.values():
            sidecar.start()
        orders, billing = apps(group["orders"]), apps(group["billing"])
        await asyncio.to_thread(receivers_mongo.stop)

        payloads = [f"during-{i}".encode() for i in range(80)]
        answers = await orders.send("billing", payloads, batch=20)
        assert all(r.WhichOneof("result") == "accepted" for r in answers)
        await asyncio.sleep(6.0)  # attempts time out and are repeated while billing's writes wait and fail
        metrics = scrape(group["billing"]).items()
        deferred = sum(v for (name, _), v in metrics if name == "goq_deliveries_deferred_while_storing_total")
        await asyncio.to_thread(receivers_mongo.start)

        got = await billing.receive(len(payloads), within=60, distinct=True)
        assert {m.payload for m in got} == set(payloads)
        assert deferred > 0, "no repeat met a write in flight: the scenario did not happen"
    finally:
        receivers_mongo.stop()
