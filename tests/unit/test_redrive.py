"""A redrive takes a message out of the poison queue only once it is stored again: a store that fails
leaves it where it was, never in neither place."""

import time

import pytest

from goq.identity import Address
from goq.messages import Message
from goq.queue_spec import GoQueueSpec
from goq.retry import RetryPolicy
from goq.sidecar.adapters.resolving import StaticResolver
from goq.sidecar.adapters.stores.absent import NoInbox, NoOutbox
from goq.sidecar.core.engine import QueueManager
from goq.sidecar.core.inbound import Inbound, InboundConfig
from goq.sidecar.core.outbound import Outbound, OutboundConfig
from goq.sidecar.domain.counting import Counters
from goq.sidecar.domain.poisoning import Poisoner
from goq.sidecar.domain.records import OUTBOUND, Incoming, Outgoing, PoisonRecord
from goq.sidecar.ports.poison import PoisonSinkError
from goq.sidecar.ports.stores import StoreUnavailableError
from goq.signing import Keyring

ORDERS = Address.parse("orders.shop")
BILLING = Address.parse("billing.shop")
KEYRING = Keyring({"k1": b"k" * 32}, "k1")


class Outbox(NoOutbox):
    """Keeps what it is given, or fails as told."""

    def __init__(self) -> None:
        self.fail = False
        self.kept: list[str] = []

    async def add(self, items: list[Outgoing]) -> list[bool]:
        if self.fail and items:
            raise StoreUnavailableError("MongoDB could not make the messages durable: test outage")
        self.kept += [m.id for m in items]
        return [True] * len(items)


class Inbox(NoInbox):
    """Takes every delivery (the stand-in's other answers: nothing to recover or close)."""

    async def add(self, items: list[Incoming]) -> list[bool]:
        return [True] * len(items)

    async def restore(self, items: list[Incoming]) -> None:
        return None


class PoisonQueue:
    """A browsable sink in memory; its removal can fail as told."""

    def __init__(self) -> None:
        self.records: list[PoisonRecord] = []
        self.fail_removal = False

    async def put(self, records: list[PoisonRecord]) -> None:
        self.records += records

    async def browse(self, owner: str, limit: int = 100) -> list[PoisonRecord]:
        return [r for r in self.records if r.owner == owner][:limit]

    async def find(self, owner: str, ids: list[str]) -> list[PoisonRecord]:
        return [r for r in self.records if r.owner == owner and r.id in ids]

    async def remove(self, owner: str, ids: list[str]) -> None:
        if self.fail_removal:
            raise PoisonSinkError("MongoDB poison sink failed: test outage")
        self.records = [r for r in self.records if not (r.owner == owner and r.id in ids)]

    async def close(self) -> None:
        return None


def poisoned(message_id: str) -> PoisonRecord:
    body = Message(message_id, ORDERS, BILLING, int(time.time() * 1000), b"order").encode()
    key_id, signature = KEYRING.sign(body)
    return PoisonRecord(
        id=message_id,
        owner=str(ORDERS),
        direction=OUTBOUND,
        peer=str(BILLING),
        reason="max-attempts",
        detail="billing was down",
        attempts=8,
        poisoned_at=time.time(),
        persistent=True,
        body=body,
        key_id=key_id,
        signature=signature,
    )


@pytest.fixture
async def parts() -> tuple[QueueManager, Outbox, PoisonQueue]:
    counters, outbox, sink = Counters(), Outbox(), PoisonQueue()
    poisoner = Poisoner(sink, counters)
    # No peer address is known: nothing redriven gets delivered during a test.
    outbound = Outbound(
        ORDERS,
        lambda: RetryPolicy(initial_backoff=30.0),
        StaticResolver({}),
        {True: outbox, False: Outbox()},
        poisoner,
        counters,
        OutboundConfig(),
    )
    inboxes = {True: Inbox(), False: Inbox()}
    inbound = Inbound(ORDERS, lambda: KEYRING, GoQueueSpec, inboxes, poisoner, counters, InboundConfig())
    engine = QueueManager(
        ORDERS,
        lambda: KEYRING,
        GoQueueSpec,
        outbound,
        inbound,
        {True: outbox, False: Outbox()},
        inboxes,
        poisoner,
        counters,
        max_payload=1 << 20,
    )
    await sink.put([poisoned("m1"), poisoned("m2")])
    return engine, outbox, sink


async def test_a_redriven_message_leaves_the_poison_queue_once_stored_again(
    parts: tuple[QueueManager, Outbox, PoisonQueue],
) -> None:
    engine, outbox, sink = parts

    assert await engine.redrive(["m1", "not-poisoned"]) == ["m1"]

    assert outbox.kept == ["m1"]
    assert [r.id for r in sink.records] == ["m2"]
    await engine.outbound.close(0.0)


async def test_a_redrive_whose_store_fails_leaves_the_message_in_the_poison_queue(
    parts: tuple[QueueManager, Outbox, PoisonQueue],
) -> None:
    engine, outbox, sink = parts
    outbox.fail = True

    with pytest.raises(StoreUnavailableError):
        await engine.redrive(["m1"])

    assert [r.id for r in sink.records] == ["m1", "m2"]
    await engine.outbound.close(0.0)


async def test_a_redrive_whose_removal_fails_is_stored_and_stays_listed(
    parts: tuple[QueueManager, Outbox, PoisonQueue],
) -> None:
    engine, outbox, sink = parts
    sink.fail_removal = True

    assert await engine.redrive(["m1"]) == ["m1"]

    assert outbox.kept == ["m1"]
    assert [r.id for r in sink.records] == ["m1", "m2"]
    await engine.outbound.close(0.0)
