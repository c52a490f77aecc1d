"""Persistent messages start on their way while their outbox write is still in flight (``Admission.storing``):
the store forgets a delivered message only after its write returned, a failed write accepts exactly what
was delivered meanwhile (or, asked again, is found stored by the receiver) and refuses the rest, and whatever
must keep its order or cannot be kept waits for its write."""

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from goq.api.v1 import peer_pb2
from goq.identity import Address
from goq.retry import RetryPolicy
from goq.sidecar.adapters.resolving import StaticResolver
from goq.sidecar.core.backlog import WindowConfig
from goq.sidecar.core.lane import Lane
from goq.sidecar.core.outbound import Outbound, OutboundConfig
from goq.sidecar.domain.attempts import STILL_STORING
from goq.sidecar.domain.counting import Counters
from goq.sidecar.domain.poisoning import Poisoner
from goq.sidecar.domain.records import Outgoing, PoisonRecord

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
    early = outbound.admission.storing(items, deliver_now=True)
    assert early == items
    assert outbound.pending == 3
    assert [m.id for m in outbound.lanes[BILLING].queued()] == ["m0", "m1", "m2"]


async def test_a_message_delivered_before_its_write_returns_is_forgotten_only_after_the_write(
    outbound: Outbound, outbox: RecordingOutbox
) -> None:
    items = messages(2)
    early = outbound.admission.storing(items, deliver_now=True)
    outbound.lanes[BILLING].withdraw({"m0"})  # as a lane takes it into a batch
    outbound.delivered(items[:1])
    assert outbox.forgotten == []  # its document may not be written yet: a delete now would miss it
    outbound.admission.stored(items, [True, True], early)
    assert outbox.forgotten == ["m0"]
    assert outbound.pending == 1  # m1 is still to deliver, and not delivered twice
    outbound.delivered(items[1:])
    assert outbox.forgotten == ["m0", "m1"]


async def test_an_attempt_that_failed_before_the_write_returned_is_recorded_after_it(
    outbound: Outbound, outbox: RecordingOutbox
) -> None:
    items = messages(2)
    early = outbound.admission.storing(items, deliver_now=True)
    lane = outbound.lanes[BILLING]
    lane.withdraw({"m0"})
    await outbound.failed(lane, items[:1], "billing: unreachable")
    assert outbox.failures == []  # no document to update yet
    outbound.admission.stored(items, [True, True], early)
    assert outbox.failures == ["m0"]


async def test_a_failed_write_accepts_what_was_delivered_meanwhile_and_withdraws_the_rest(
    outbound: Outbound, outbox: RecordingOutbox
) -> None:
    items = messages(3)
    early = outbound.admission.storing(items, deliver_now=True)
    outbound.lanes[BILLING].withdraw({"m0"})
    outbound.delivered(items[:1])
    accepted, unknown = await outbound.admission.not_stored(items, early)
    assert accepted == {"m0"}
    assert unknown == set()
    assert outbound.pending == 0
    assert outbound.lanes[BILLING].queued() == []
    await asyncio.sleep(0.05)  # the lane gets to run: nothing is left for it to send
    assert outbound.lanes[BILLING].queued() == []
    assert outbox.forgotten == []  # nothing was written, so nothing to delete


async def test_messages_with_the_applications_ids_wait_for_their_write(outbound: Outbound) -> None:
    items = messages(2, generated=False)
    assert outbound.admission.storing(items, deliver_now=True) == []
    assert outbound.pending == 0
    outbound.admission.stored(items, [True, True])
    assert outbound.pending == 2


async def test_a_send_behind_one_that_waits_for_its_write_waits_too_so_order_holds(outbound: Outbound) -> None:
    first, second = messages(1, generated=False), messages(1, start=1)
    assert outbound.admission.storing(first, deliver_now=True) == []
    assert outbound.admission.storing(second, deliver_now=True) == []
    outbound.admission.stored(first, [True])
    outbound.admission.stored(second, [True])
    assert [m.id for m in outbound.lanes[BILLING].queued()] == ["m0", "m1"]
    third = messages(1, start=2)
    assert outbound.admission.storing(third, deliver_now=True) == third  # nothing waits any more


async def test_without_a_store_that_keeps_them_nothing_is_delivered_before_it_is_kept(outbound: Outbound) -> None:
    items = messages(2)
    assert outbound.admission.storing(items, deliver_now=False) == []
    assert await outbound.admission.not_stored(items, []) == (set(), set())
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
        assert len(outbound.admission.storing(messages(3), deliver_now=True)) == 3
        fourth, fifth = messages(1, start=3), messages(1, start=4)
        assert outbound.admission.storing(fourth, deliver_now=True) == fourth  # room for one more, not spilled
        assert outbound.admission.storing(fifth, deliver_now=True) == []  # the window is full: it waits in the store
        assert fifth[0].spill
    finally:
        await outbound.close(0.0)


class ScriptedReceiver:
    """Stands in for the receiver when a lane asks it again (``Lane.probe``): one scripted answer per ask,
    the same outcome for every message (None: no answer within the attempt timeout)."""

    def __init__(self, lane: Lane, *answers: tuple[int, str] | None) -> None:
        self.answers = list(answers)
        self.asked: list[list[str]] = []
        lane.probe = self.probe  # type: ignore[method-assign]

    async def probe(self, batch: list[Outgoing], patience: float) -> list[peer_pb2.MessageResult] | None:
        self.asked.append([m.id for m in batch])
        answer = self.answers.pop(0) if self.answers else None
        if answer is None:
            return None
        outcome, reason = answer
        return [peer_pb2.MessageResult(outcome=outcome, reason=reason) for _ in batch]


async def timed_out(outbound: Outbound, items: list[Outgoing]) -> Lane:
    """``items`` taken into a batch whose attempt got no answer in time: the receiver may store them yet."""
    lane = outbound.lanes[BILLING]
    lane.withdraw({m.id for m in items})
    await outbound.failed(lane, items, "billing: no answer within attemptTimeout", unknown=True)
    return lane


@pytest.mark.parametrize("outcome", [peer_pb2.OUTCOME_DUPLICATE, peer_pb2.OUTCOME_ACCEPTED, peer_pb2.OUTCOME_POISONED])
async def test_a_failed_write_accepts_a_timed_out_message_the_receiver_then_says_it_holds(
    outbound: Outbound, outcome: int
) -> None:
    items = messages(2)
    early = outbound.admission.storing(items, deliver_now=True)
    receiver = ScriptedReceiver(await timed_out(outbound, items[:1]), (outcome, ""))
    accepted, unknown = await outbound.admission.not_stored(items, early)
    assert receiver.asked == [["m0"]]  # m1 was never sent: nothing to ask about
    assert (accepted, unknown) == ({"m0"}, set())
    assert outbound.counters.delivered == 1
    assert outbound.pending == 0


async def test_a_timed_out_message_still_being_stored_by_the_receiver_is_asked_about_until_it_answers(
    outbound: Outbound,
) -> None:
    items = messages(1)
    early = outbound.admission.storing(items, deliver_now=True)
    still_storing = (peer_pb2.OUTCOME_RETRY_LATER, STILL_STORING)
    receiver = ScriptedReceiver(await timed_out(outbound, items), still_storing, None, (peer_pb2.OUTCOME_DUPLICATE, ""))
    assert await outbound.admission.not_stored(items, early) == ({"m0"}, set())
    assert len(receiver.asked) == 3


@pytest.mark.parametrize(
    "answer",
    [(peer_pb2.OUTCOME_RETRY_LATER, "MongoDB could not make the messages durable"), (peer_pb2.OUTCOME_REJECTED, "x")],
)
async def test_a_timed_out_message_the_receiver_then_says_it_does_not_hold_is_refused(
    outbound: Outbound, outbox: RecordingOutbox, answer: tuple[int, str]
) -> None:
    items = messages(1)
    early = outbound.admission.storing(items, deliver_now=True)
    receiver = ScriptedReceiver(await timed_out(outbound, items), answer)
    assert await outbound.admission.not_stored(items, early) == (set(), set())
    assert len(receiver.asked) == 1
    assert outbound.pending == 0
    assert outbound.lanes[BILLING].queued() == []
    assert outbox.forgotten == []


async def test_a_message_whose_later_attempt_was_answered_not_stored_is_not_asked_about_again(
    outbound: Outbound,
) -> None:
    items = messages(1)
    early = outbound.admission.storing(items, deliver_now=True)
    lane = await timed_out(outbound, items)
    await outbound.failed(lane, items, "receive queue full", unknown=False)  # the receiver's answer, after it
    receiver = ScriptedReceiver(lane)
    assert await outbound.admission.not_stored(items, early) == (set(), set())
    assert receiver.asked == []


async def test_an_attempt_that_never_reached_the_receiver_leaves_an_earlier_unknown_outcome_unknown(
    outbound: Outbound,
) -> None:
    items = messages(1)
    early = outbound.admission.storing(items, deliver_now=True)
    lane = await timed_out(outbound, items)
    await outbound.failed(lane, items, "billing: no address")  # learned nothing about the earlier attempt
    receiver = ScriptedReceiver(lane, (peer_pb2.OUTCOME_DUPLICATE, ""))
    assert await outbound.admission.not_stored(items, early) == ({"m0"}, set())
    assert len(receiver.asked) == 1


async def test_a_timed_out_message_the_receiver_never_answers_for_is_refused_as_possibly_arriving(
    outbox: RecordingOutbox,
) -> None:
    counters = Counters()
    outbound = Outbound(
        Address.parse("orders.shop"),
        lambda: RetryPolicy(initial_backoff=30.0, attempt_timeout=0.1),
        StaticResolver({}),
        {True: outbox, False: RecordingOutbox()},
        Poisoner(KeepingSink(), counters),
        counters,
        OutboundConfig(settle_timeout=0.5),
    )
    try:
        items = messages(2)
        early = outbound.admission.storing(items, deliver_now=True)
        receiver = ScriptedReceiver(await timed_out(outbound, items))
        started = time.monotonic()
        assert await outbound.admission.not_stored(items, early) == (set(), {"m0", "m1"})
        assert 0.2 <= time.monotonic() - started < 2.0  # asked for settle_timeout, no longer
        assert len(receiver.asked) >= 2
        assert outbound.pending == 0
    finally:
        await outbound.close(0.0)


async def test_a_message_the_receiver_is_still_storing_past_settle_timeout_is_asked_about_until_it_answers(
    outbox: RecordingOutbox,
) -> None:
    """Its write may take longer than one store timeout (queued behind another write that fails): given up on
    while "still being stored", the send was refused and the message then delivered (issue 16, seed 105)."""
    counters = Counters()
    outbound = Outbound(
        Address.parse("orders.shop"),
        lambda: RetryPolicy(initial_backoff=30.0, attempt_timeout=0.1),
        StaticResolver({}),
        {True: outbox, False: RecordingOutbox()},
        Poisoner(KeepingSink(), counters),
        counters,
        OutboundConfig(settle_timeout=0.5),
    )
    try:
        items = messages(1)
        early = outbound.admission.storing(items, deliver_now=True)
        still_storing = (peer_pb2.OUTCOME_RETRY_LATER, STILL_STORING)
        # Each ask waits RESOLVE_PAUSE (0.25 s): eight "still storing" answers last about 2 s, 4 x settle_timeout.
        answers = [still_storing] * 8 + [(peer_pb2.OUTCOME_ACCEPTED, "")]
        receiver = ScriptedReceiver(await timed_out(outbound, items), *answers)
        started = time.monotonic()
        assert await outbound.admission.not_stored(items, early) == ({"m0"}, set())
        assert time.monotonic() - started > 1.5
        assert len(receiver.asked) == 9
        assert outbound.pending == 0
    finally:
        await outbound.close(0.0)
