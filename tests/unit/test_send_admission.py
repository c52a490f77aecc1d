"""``Outbound.admit``, the one way a send gets into the send queue: per message a receipt (``queued`` once
stored, ``poisoned`` over the bound) or the error that refused it (the bound under ``reject``, a failed
write), and early delivery's outcome decided in the same call (accepted if delivered meanwhile, refused
otherwise, never left held)."""

import asyncio
from collections.abc import AsyncIterator

import pytest

from goq.errors import GoQError
from goq.identity import Address
from goq.queue_spec import GoQueueSpec, Overflow
from goq.retry import RetryPolicy
from goq.sidecar.adapters.resolving import StaticResolver
from goq.sidecar.core.outbound import Outbound, OutboundConfig
from goq.sidecar.domain.counting import Counters
from goq.sidecar.domain.errors import QueueFullError
from goq.sidecar.domain.poisoning import Poisoner
from goq.sidecar.domain.receipts import POISONED, QUEUED, SendReceipt
from goq.sidecar.domain.records import Outgoing
from goq.sidecar.ports.stores import StoreUnavailableError

from .test_early_delivery import BILLING, KeepingSink, RecordingOutbox, messages


class GatedOutbox(RecordingOutbox):
    """An outbox whose write waits until the test lets it end: kept, or failed with ``StoreUnavailableError``."""

    def __init__(self) -> None:
        super().__init__()
        self.writing = asyncio.Event()
        self.outcome: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.written: list[str] = []

    async def add(self, items: list[Outgoing]) -> list[bool]:
        self.writing.set()
        if not await self.outcome:
            raise StoreUnavailableError("the store did not answer in time")
        self.written += [m.id for m in items]
        return [True] * len(items)


@pytest.fixture
async def sink() -> KeepingSink:
    return KeepingSink()


@pytest.fixture
async def outbox() -> GatedOutbox:
    return GatedOutbox()


@pytest.fixture
async def outbound(outbox: GatedOutbox, sink: KeepingSink) -> AsyncIterator[Outbound]:
    counters = Counters()
    # No peer address is known: a lane that runs fails its attempt and waits 30 s for a retry.
    outbound = Outbound(
        Address.parse("orders.shop"),
        lambda: RetryPolicy(initial_backoff=30.0),
        StaticResolver({}),
        {True: outbox, False: RecordingOutbox()},
        Poisoner(sink, counters),
        counters,
        OutboundConfig(),
    )
    yield outbound
    await outbound.close(0.0)


def spec(limit: int = 100, overflow: Overflow = Overflow.POISON) -> GoQueueSpec:
    return GoQueueSpec(send_queue_limit=limit, overflow=overflow)


async def admitting(
    outbound: Outbound, outbox: GatedOutbox, items: list[Outgoing], limit: int = 100
) -> "asyncio.Task[list[SendReceipt | GoQError]]":
    """``admit`` under way, its write in flight."""
    task = asyncio.create_task(outbound.admit(items, spec(limit)))
    await asyncio.wait_for(outbox.writing.wait(), 1)
    return task


async def test_stored_messages_are_queued_and_held_for_delivery(outbound: Outbound, outbox: GatedOutbox) -> None:
    items = messages(2, generated=False)
    outbox.outcome.set_result(True)
    assert await outbound.admit(items, spec()) == [SendReceipt("m0", QUEUED), SendReceipt("m1", QUEUED)]
    assert outbox.written == ["m0", "m1"]
    assert outbound.pending == 2
    assert outbound.counters.sent == 2


async def test_messages_over_the_bound_are_refused_under_reject_and_the_rest_queued(
    outbound: Outbound, outbox: GatedOutbox
) -> None:
    outbox.outcome.set_result(True)
    results = await outbound.admit(messages(3, generated=False), spec(2, Overflow.REJECT))
    assert results[:2] == [SendReceipt("m0", QUEUED), SendReceipt("m1", QUEUED)]
    assert isinstance(results[2], QueueFullError)
    assert "sendQueueLimit 2" in str(results[2])
    assert outbox.written == ["m0", "m1"]


async def test_messages_over_the_bound_are_poisoned_under_poison_never_stored(
    outbound: Outbound, outbox: GatedOutbox, sink: KeepingSink
) -> None:
    outbox.outcome.set_result(True)
    results = await outbound.admit(messages(3, generated=False), spec(2))
    assert results[2] == SendReceipt("m2", POISONED)
    assert [(r.id, r.reason) for r in sink.records] == [("m2", "overflow")]
    assert outbox.written == ["m0", "m1"]


async def test_persistent_messages_without_a_store_are_refused_before_the_bound(
    outbound: Outbound, sink: KeepingSink
) -> None:
    results = await outbound.admit(messages(3), spec(1), refusal="no MongoDB")
    assert all(isinstance(r, StoreUnavailableError) and "no MongoDB" in str(r) for r in results)
    assert sink.records == []  # refused, not poisoned over the bound
    assert outbound.pending == 0


async def test_a_failed_write_refuses_its_messages_and_holds_nothing(outbound: Outbound, outbox: GatedOutbox) -> None:
    task = await admitting(outbound, outbox, messages(2, generated=False))
    assert outbound.pending == 0  # waiting for their write, not delivering
    outbox.outcome.set_result(False)
    results = await task
    assert all(isinstance(r, StoreUnavailableError) for r in results)
    assert outbound.pending == 0
    assert outbound.admission.reserved == 0  # their room under the bound is free again
    assert outbound.counters.sent == 0


async def test_an_early_delivery_then_a_failed_write_accepts_the_delivered_and_withdraws_the_rest(
    outbound: Outbound, outbox: GatedOutbox
) -> None:
    items = messages(2)
    task = await admitting(outbound, outbox, items)
    assert outbound.pending == 2  # delivering while their write is in flight
    outbound.lanes[BILLING].withdraw({"m0"})  # as a lane takes it into a batch
    outbound.delivered(items[:1])
    assert outbox.forgotten == []  # not forgotten before the write returns
    outbox.outcome.set_result(False)
    results = await task
    assert results[0] == SendReceipt("m0", QUEUED)
    assert isinstance(results[1], StoreUnavailableError)
    assert outbound.pending == 0
    assert outbound.lanes[BILLING].queued() == []  # m1 withdrawn: never sent after its refusal
    assert outbox.forgotten == []
    assert outbound.counters.sent == 1


async def test_an_early_delivery_whose_write_returns_is_forgotten_once_stored(
    outbound: Outbound, outbox: GatedOutbox
) -> None:
    items = messages(2)
    task = await admitting(outbound, outbox, items)
    outbound.lanes[BILLING].withdraw({"m0"})
    outbound.delivered(items[:1])
    outbox.outcome.set_result(True)
    assert await task == [SendReceipt("m0", QUEUED), SendReceipt("m1", QUEUED)]
    assert outbox.forgotten == ["m0"]
    assert outbound.pending == 1


async def test_messages_delivering_while_their_write_is_in_flight_count_once_against_the_bound(
    outbound: Outbound, outbox: GatedOutbox, sink: KeepingSink
) -> None:
    first = await admitting(outbound, outbox, messages(3), limit=4)
    later = messages(1, generated=False, start=3)
    second = asyncio.create_task(outbound.admit(later, spec(4)))
    await asyncio.sleep(0)
    outbox.outcome.set_result(True)
    assert await second == [SendReceipt("m3", QUEUED)]  # room for one: the three are not counted twice
    assert [r.state for r in await first if isinstance(r, SendReceipt)] == [QUEUED] * 3
    assert sink.records == []
