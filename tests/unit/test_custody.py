"""The engine resumes and adopts through the store port (``Custody``), never naming the store behind it: what
the store claims at start and at each heartbeat is queued both ways; without a store, persistent sends are
refused with the reason."""

import asyncio
import logging
import time
from collections.abc import Callable

import pytest

from goq.identity import Address
from goq.messages import Message
from goq.queue_spec import GoQueueSpec
from goq.retry import RetryPolicy
from goq.sidecar.adapters.resolving import StaticResolver
from goq.sidecar.adapters.stores.absent import REASON, NoCustody, NoInbox, NoOutbox
from goq.sidecar.adapters.stores.memory import MemoryInbox, MemoryOutbox
from goq.sidecar.core.engine import QUEUED, QueueManager, SendReceipt, SendRequest
from goq.sidecar.core.inbound import Inbound, InboundConfig
from goq.sidecar.core.outbound import Outbound, OutboundConfig
from goq.sidecar.domain.counting import Counters
from goq.sidecar.domain.poisoning import Poisoner
from goq.sidecar.domain.records import Incoming, Outgoing, PoisonRecord, inbound_key
from goq.sidecar.ports.stores import Claimed, InboxStore, OutboxStore, StoreUnavailableError
from goq.signing import Keyring

ORDERS = Address.parse("orders.shop")
BILLING = Address.parse("billing.shop")
KEYRING = Keyring({"k1": b"k" * 32}, "k1")
HEARTBEAT = 0.01


class Custody(NoCustody):
    """Claims what it is given: once at start, and at the heartbeats after ``failures`` failed ones."""

    def __init__(self, resumed: Claimed, adopted: Claimed, failures: int = 0) -> None:
        self.refusal = None
        self.resumed = resumed
        self.adopted: Claimed | None = adopted
        self.failures = failures
        self.heartbeats = 0

    async def resume(self) -> Claimed:
        return self.resumed

    async def heartbeat(self) -> Claimed:
        self.heartbeats += 1
        if self.heartbeats <= self.failures:
            raise StoreUnavailableError("MongoDB not reachable: test outage")
        adopted, self.adopted = self.adopted, None
        return adopted or Claimed()


class Sink:
    async def put(self, records: list[PoisonRecord]) -> None:
        return None

    async def close(self) -> None:
        return None


def outgoing(message_id: str) -> Outgoing:
    body = Message(message_id, ORDERS, BILLING, int(time.time() * 1000), b"order").encode()
    key_id, signature = KEYRING.sign(body)
    return Outgoing(message_id, BILLING, body, key_id, signature, persistent=True, created_at=time.time())


def incoming(message_id: str) -> Incoming:
    message = Message(message_id, BILLING, ORDERS, int(time.time() * 1000), b"invoice")
    body = message.encode()
    key_id, signature = KEYRING.sign(body)
    return Incoming(inbound_key(BILLING, message_id), message, body, key_id, signature, received_at=time.time())


def engine(store: Custody | None) -> QueueManager:
    counters = Counters()
    poisoner = Poisoner(Sink(), counters)
    outboxes: dict[bool, OutboxStore] = {True: NoOutbox(), False: MemoryOutbox()}
    inboxes: dict[bool, InboxStore] = {True: NoInbox(), False: MemoryInbox(60.0)}
    # No peer address is known: nothing is delivered during a test, so what is claimed stays pending.
    policy = RetryPolicy(initial_backoff=30.0)
    outbound = Outbound(ORDERS, lambda: policy, StaticResolver({}), outboxes, poisoner, counters, OutboundConfig())
    inbound = Inbound(ORDERS, lambda: KEYRING, GoQueueSpec, inboxes, poisoner, counters, InboundConfig())
    return QueueManager(
        ORDERS,
        lambda: KEYRING,
        GoQueueSpec,
        outbound,
        inbound,
        outboxes,
        inboxes,
        poisoner,
        counters,
        max_payload=1 << 20,
        store=store,
        heartbeat=HEARTBEAT,
    )


async def eventually(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    for _ in range(int(seconds / HEARTBEAT)):
        if condition():
            return
        await asyncio.sleep(HEARTBEAT)
    raise AssertionError(f"not so within {seconds:g} s")


async def test_what_the_store_resumes_at_start_is_queued_both_ways() -> None:
    store = Custody(Claimed([outgoing("o1"), outgoing("o2")], [incoming("i1")], {}, ["orders-0"]), Claimed())
    manager = engine(store)

    await manager.start()

    assert manager.stats().send_queue == 2
    assert [m.message.id for m in await manager.receive(10, wait=0)] == ["i1"]
    await manager.stop(0.0)


async def test_what_a_heartbeat_adopts_from_a_stopped_replica_is_queued_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = Custody(Claimed(), Claimed([outgoing("o1")], [incoming("i1")], {}, ["orders-1"]))
    manager = engine(store)
    caplog.set_level(logging.INFO, logger="goq.sidecar")

    await manager.start()
    await eventually(lambda: store.heartbeats >= 2)

    assert manager.stats().send_queue == 1
    assert [m.message.id for m in await manager.receive(10, wait=0)] == ["i1"]
    assert "adopted 1 outbound and 1 inbound message(s) from stopped instance(s) orders-1" in caplog.text
    await manager.stop(0.0)


async def test_a_failed_heartbeat_is_tried_again_and_adopts_then(caplog: pytest.LogCaptureFixture) -> None:
    store = Custody(Claimed(), Claimed([], [incoming("i1")], {}, ["orders-1"]), failures=2)
    manager = engine(store)

    await manager.start()
    await eventually(lambda: manager.inbound.depth == 1)

    assert store.heartbeats == 3
    assert caplog.text.count("heartbeat failed (MongoDB not reachable: test outage); trying again") == 2
    await manager.stop(0.0)


async def test_without_a_store_persistent_sends_are_refused_with_the_reason_and_transient_ones_accepted() -> None:
    manager = engine(None)
    await manager.start()

    persistent, transient = await manager.send(
        [SendRequest(to="billing", payload=b"order"), SendRequest(to="billing", payload=b"hint", persistent=False)]
    )

    assert isinstance(persistent, StoreUnavailableError)
    assert str(persistent) == REASON
    assert isinstance(transient, SendReceipt)
    assert transient.state == QUEUED
    await manager.stop(0.0)
