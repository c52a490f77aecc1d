"""Single sends (gRPC ``Send``, REST ``POST /v1/messages``) that arrive while earlier ones are being stored
are stored together, in one write, each still answered on its own; one alone is written at once."""

import asyncio

import pytest

from goq.errors import ConfigError
from goq.identity import Address
from goq.queue_spec import GoQueueSpec
from goq.retry import RetryPolicy
from goq.sidecar.adapters.resolving import StaticResolver
from goq.sidecar.adapters.stores.absent import NoInbox, NoOutbox
from goq.sidecar.core.engine import QUEUED, SINGLES_SENDING, QueueManager, SendReceipt, SendRequest
from goq.sidecar.core.inbound import Inbound, InboundConfig
from goq.sidecar.core.outbound import Outbound, OutboundConfig
from goq.sidecar.domain.counting import Counters
from goq.sidecar.domain.poisoning import Poisoner
from goq.sidecar.domain.records import Incoming, Outgoing, PoisonRecord
from goq.signing import Keyring

ORDERS = Address.parse("orders.shop")
KEYRING = Keyring({"k1": b"k" * 32}, "k1")


class GatedOutbox(NoOutbox):
    """Counts its writes; each waits until the test opens the gate, as a write in flight to MongoDB does."""

    def __init__(self) -> None:
        self.writes: list[list[str]] = []
        self.gate = asyncio.Event()

    async def add(self, items: list[Outgoing]) -> list[bool]:
        self.writes.append([m.id for m in items])
        await self.gate.wait()
        return [True] * len(items)


class Inbox(NoInbox):
    """Takes every delivery (the stand-in's other answers: nothing to recover or close)."""

    async def add(self, items: list[Incoming]) -> list[bool]:
        return [True] * len(items)

    async def restore(self, items: list[Incoming]) -> None:
        return None


class Sink:
    async def put(self, records: list[PoisonRecord]) -> None:
        return None

    async def close(self) -> None:
        return None


@pytest.fixture
async def engine() -> tuple[QueueManager, GatedOutbox]:
    counters, outbox = Counters(), GatedOutbox()
    poisoner = Poisoner(Sink(), counters)
    stores = {True: outbox, False: outbox}
    # No peer address is known: nothing sent is delivered during a test.
    outbound = Outbound(ORDERS, RetryPolicy, StaticResolver({}), stores, poisoner, counters, OutboundConfig())  # type: ignore[arg-type]
    inboxes = {True: Inbox(), False: Inbox()}
    inbound = Inbound(ORDERS, lambda: KEYRING, GoQueueSpec, inboxes, poisoner, counters, InboundConfig())  # type: ignore[arg-type]
    manager = QueueManager(
        ORDERS,
        lambda: KEYRING,
        GoQueueSpec,
        outbound,
        inbound,
        stores,  # type: ignore[arg-type]
        inboxes,  # type: ignore[arg-type]
        poisoner,
        counters,
        max_payload=1 << 20,
    )
    return manager, outbox


async def test_single_sends_arriving_during_a_write_share_the_next_one(
    engine: tuple[QueueManager, GatedOutbox],
) -> None:
    manager, outbox = engine
    request = SendRequest(to="billing", payload=b"order", persistent=False)

    first = manager.send_one(request)
    await asyncio.sleep(0.01)
    assert len(outbox.writes) == 1, "a send alone is written at once, without waiting for company"
    second = manager.send_one(request)
    await asyncio.sleep(0.01)
    assert len(outbox.writes) == SINGLES_SENDING, "one more is prepared while the first write is in flight"
    later = [manager.send_one(request) for _ in range(8)]
    await asyncio.sleep(0.01)
    assert len(outbox.writes) == SINGLES_SENDING, "sends arriving during the writes wait for them, not a write each"

    outbox.gate.set()
    answers = [a for (a,) in await asyncio.gather(first, second, *later)]

    assert [len(ids) for ids in outbox.writes] == [1, 1, 8]
    assert all(isinstance(a, SendReceipt) and a.state == QUEUED for a in answers)
    assert [a.id for a in answers if isinstance(a, SendReceipt)] == [i for ids in outbox.writes for i in ids]
    await manager.outbound.close(0.0)


async def test_a_refused_single_send_does_not_refuse_those_sent_with_it(
    engine: tuple[QueueManager, GatedOutbox],
) -> None:
    manager, outbox = engine
    good = SendRequest(to="billing", payload=b"order", persistent=False)

    first = [manager.send_one(good) for _ in range(SINGLES_SENDING)]
    await asyncio.sleep(0.01)
    together = [
        manager.send_one(r)
        for r in (good, SendRequest(to="billing", payload=b"order", persistent=False, id="has space"), good)
    ]
    outbox.gate.set()
    await asyncio.gather(*first)
    (before,), (refused,), (after,) = await asyncio.gather(*together)

    assert isinstance(refused, ConfigError)
    assert "message id" in str(refused)
    assert isinstance(before, SendReceipt)
    assert isinstance(after, SendReceipt)
    assert outbox.writes[-1] == [before.id, after.id]
    await manager.outbound.close(0.0)


async def test_a_single_send_whose_caller_hangs_up_is_still_stored(
    engine: tuple[QueueManager, GatedOutbox],
) -> None:
    manager, outbox = engine
    request = SendRequest(to="billing", payload=b"order", persistent=False)
    busy = []
    for _ in range(SINGLES_SENDING):
        busy.append(manager.send_one(request))
        await asyncio.sleep(0.01)
    assert len(outbox.writes) == SINGLES_SENDING, "every writer waits at the gate: the next send waits its turn"

    abandoned = manager.send_one(request)
    abandoned.cancel()  # what the gRPC or REST handler's cancellation does to its wait
    outbox.gate.set()
    await asyncio.gather(*busy)
    await asyncio.sleep(0.01)

    assert [len(ids) for ids in outbox.writes] == [1] * (SINGLES_SENDING + 1)
    assert manager.outbound.pending == SINGLES_SENDING + 1, "held for delivery like the others"
    await manager.outbound.close(0.0)
