"""Persistent messages start on their way while their outbox write is still in flight (``Outbound.storing``):
the store forgets a delivered message only after its write returned, a failed write accepts exactly what
was delivered meanwhile, and whatever must keep its order or cannot be kept waits for its write."""

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from goq.identity import Address
from goq.retry import RetryPolicy
from goq.sidecar.backlog import WindowConfig
from goq.sidecar.counting import Counters
from goq.sidecar.outbound import Outbound, OutboundConfig
from goq.sidecar.poisoning import Poisoner
from goq.sidecar.records import Outgoing, PoisonRecord
from goq.sidecar.resolving import StaticResolver

BILLING = Address.parse("billing.shop")


class RecordingOutbox:
    """An outbox that keeps nothing and notes what it was told to forget."""

    def __init__(self) -> None:
        self.forgotten: list[str] = []
        self.failures: list[str] = []

    async def add(self, items: list[Outgoing]) -> list[bool]:
        return [True] * len(items)

    def forget(self, ids: list[str]) -> None:
        self.forgotten += ids

    def record_failures(self, items: list[Outgoing]) -> None:
        self.failures += [m.id for m in items]

    async def recover(self) -> list[Outgoing]:
        return []

    async def close(self) -> None:
        return None


class KeepingSink:
    def __init__(self) -> None:
        self.records: list[PoisonRecord] = []

    async def put(self, records: list[PoisonRecord]) -> None:
        self.records += records


@pytest.fixture
async def outbox() -> RecordingOutbox:
    return RecordingOutbox()


@pytest.fixture
async def outbound(outbox: RecordingOutbox) -> AsyncIterator[Outbound]:
    counters = Counters()
    # No peer address is known: a lane that gets to run fails its attempt and waits for a retry, so
    # what a test sees delivered is what it reported delivered itself.
    outbound = Outbound(
        Address.parse("orders.shop"),
        lambda: RetryPolicy(initial_backoff=30.0),
        StaticResolver({}),
        {True: outbox, False: RecordingOutbox()},
        Poisoner(KeepingSink(), counters),
        counters,
        OutboundConfig(),
    )
    yield outbound
    await outbound.close(0.0)


def messages(count: int, *, generated: bool = True, start: int = 0) -> list[Outgoing]:
    return [
        Outgoing(
            id=f"m{i}",
            destination=BILLING,
            body=b"x",
            key_id="k",
            signature=b"s",
            persistent=True,
            created_at=time.time(),
            generated=generated,
        )
        for i in range(start, start + count)
    ]


async def test_messages_with_ids_made_by_the_sidecar_are_delivering_before_their_write_returns(
    outbound: Outbound,
) -> None:
    items = messages(3)
    early = outbound.storing(items, deliver_now=True)
    assert early == items
    assert outbound.pending == 3
    assert [m.id for m in outbound.lanes[BILLING].queued()] == ["m0", "m1", "m2"]


async def test_a_message_delivered_before_its_write_returns_is_forgotten_only_after_the_write(
    outbound: Outbound, outbox: RecordingOutbox
) -> None:
    items = messages(2)
    early = outbound.storing(items, deliver_now=True)
    outbound.lanes[BILLING].withdraw({"m0"})  # as a lane takes it into a batch
    outbound.delivered(items[:1])
    assert outbox.forgotten == []  # its document may not be written yet: a delete now would miss it
    outbound.stored(items, [True, True], early)
    assert outbox.forgotten == ["m0"]
    assert outbound.pending == 1  # m1 is still to deliver, and not delivered twice
    outbound.delivered(items[1:])
    assert outbox.forgotten == ["m0", "m1"]


async def test_an_attempt_that_failed_before_the_write_returned_is_recorded_after_it(
    outbound: Outbound, outbox: RecordingOutbox
) -> None:
    items = messages(2)
    early = outbound.storing(items, deliver_now=True)
    lane = outbound.lanes[BILLING]
    lane.withdraw({"m0"})
    await outbound.failed(lane, items[:1], "billing: unreachable")
    assert outbox.failures == []  # no document to update yet
    outbound.stored(items, [True, True], early)
    assert outbox.failures == ["m0"]


async def test_a_failed_write_accepts_what_was_delivered_meanwhile_and_withdraws_the_rest(
    outbound: Outbound, outbox: RecordingOutbox
) -> None:
    items = messages(3)
    early = outbound.storing(items, deliver_now=True)
    outbound.lanes[BILLING].withdraw({"m0"})
    outbound.delivered(items[:1])
    accepted = await outbound.not_stored(items, early)
    assert accepted == {"m0"}
    assert outbound.pending == 0
    assert outbound.lanes[BILLING].queued() == []
    await asyncio.sleep(0.05)  # the lane gets to run: nothing is left for it to send
    assert outbound.lanes[BILLING].queued() == []
    assert outbox.forgotten == []  # nothing was written, so nothing to delete


async def test_messages_with_the_applications_ids_wait_for_their_write(outbound: Outbound) -> None:
    items = messages(2, generated=False)
    assert outbound.storing(items, deliver_now=True) == []
    assert outbound.pending == 0
    outbound.stored(items, [True, True])
    assert outbound.pending == 2


async def test_a_send_behind_one_that_waits_for_its_write_waits_too_so_order_holds(outbound: Outbound) -> None:
    first, second = messages(1, generated=False), messages(1, start=1)
    assert outbound.storing(first, deliver_now=True) == []
    assert outbound.storing(second, deliver_now=True) == []
    outbound.stored(first, [True])
    outbound.stored(second, [True])
    assert [m.id for m in outbound.lanes[BILLING].queued()] == ["m0", "m1"]
    third = messages(1, start=2)
    assert outbound.storing(third, deliver_now=True) == third  # nothing waits any more


async def test_without_a_store_that_keeps_them_nothing_is_delivered_before_it_is_kept(outbound: Outbound) -> None:
    items = messages(2)
    assert outbound.storing(items, deliver_now=False) == []
    assert await outbound.not_stored(items, []) == set()
    assert outbound.pending == 0


class NoSpills:
    async def load_spilled(self, destination: str, limit: int) -> list[Outgoing]:
        return []

    async def spilled_counts(self) -> dict[str, int]:
        return {}


async def test_messages_delivering_while_stored_count_once_against_their_memory_window(
    outbox: RecordingOutbox,
) -> None:
    counters = Counters()
    outbound = Outbound(
        Address.parse("orders.shop"),
        lambda: RetryPolicy(initial_backoff=30.0),
        StaticResolver({}),
        {True: outbox, False: RecordingOutbox()},
        Poisoner(KeepingSink(), counters),
        counters,
        OutboundConfig(),
        spill_store=NoSpills(),
        window=WindowConfig(messages=4),
    )
    try:
        assert len(outbound.storing(messages(3), deliver_now=True)) == 3
        fourth, fifth = messages(1, start=3), messages(1, start=4)
        assert outbound.storing(fourth, deliver_now=True) == fourth  # room for one more, not spilled
        assert outbound.storing(fifth, deliver_now=True) == []  # the window is full: it waits in the store
        assert fifth[0].spill
    finally:
        await outbound.close(0.0)
