"""A large message takes the same retry and poison decisions as a small one (``goq.sidecar.domain.attempts``):
given the same answer, the same RetryPolicy, clock and jitter, its next attempt is due at the same time and
it is poisoned with the same reason, detail and attempt count, whether a lane or ``LargeSender`` sent it."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from goq.api.v1 import peer_pb2
from goq.identity import Address
from goq.retry import RetryPolicy
from goq.sidecar.adapters.resolving import StaticResolver
from goq.sidecar.core.lane import Lane
from goq.sidecar.core.outbound import Outbound, OutboundConfig
from goq.sidecar.domain.counting import Counters
from goq.sidecar.domain.poisoning import Poisoner
from goq.sidecar.domain.records import Outgoing, PoisonRecord
from goq.sidecar.large.bodies import BodyStore, SpillBodies
from goq.sidecar.large.outbox import LargeOutbox, MemoryLargeOutbox
from goq.sidecar.large.progress import LargeProgress
from goq.sidecar.large.sending import LargeSender

from .test_early_delivery import BILLING, KeepingSink, RecordingOutbox

OWNER = "orders.shop"
NOW = 1000.0
POLICY = RetryPolicy(max_attempts=2, initial_backoff=0.05, max_backoff=1.0, jitter=0.2)
"""One retry, soon (the large sender sleeps until it is due), then poisoned for ``max-attempts``."""


def message() -> Outgoing:
    return Outgoing(
        id="m0",
        destination=BILLING,
        body=b"envelope",
        key_id="k",
        signature=b"s",
        persistent=False,
        created_at=NOW - 1,
    )


@pytest.fixture
async def small() -> AsyncIterator[tuple[Lane, KeepingSink]]:
    sink, counters = KeepingSink(), Counters()
    outbound = Outbound(
        Address.parse(OWNER),
        lambda: POLICY,
        StaticResolver({}),
        {True: RecordingOutbox(), False: RecordingOutbox()},
        Poisoner(sink, counters),
        counters,
        OutboundConfig(),
        clock=lambda: NOW,
        rand=lambda: 0.9,
    )
    lane = outbound.lanes[BILLING] = Lane(outbound, BILLING)
    yield lane, sink
    await outbound.close(0.0)


@pytest.fixture
async def large(tmp_path: Path) -> AsyncIterator[tuple[LargeSender, KeepingSink]]:
    sink, counters = KeepingSink(), Counters()
    spill = SpillBodies(tmp_path / "spill", 1024)
    await spill.open()
    outboxes: dict[bool, LargeOutbox] = {True: MemoryLargeOutbox(), False: MemoryLargeOutbox()}
    bodies: dict[bool, BodyStore | None] = {True: None, False: spill}
    sender = LargeSender(
        OWNER,
        StaticResolver({}),
        lambda: POLICY,
        Poisoner(sink, counters),
        counters,
        LargeProgress(),
        outboxes,
        bodies,
        clock=lambda: NOW,
        rand=lambda: 0.9,
    )
    yield sender, sink
    await sender.close()
    await spill.close()


async def small_answered(lane: Lane, answer: peer_pb2.MessageResult) -> tuple[list[float], list[PoisonRecord]]:
    """The lane's decisions for a message answered ``answer`` at each attempt: when each retry is due, and
    the poison record it ends with."""
    item, due = message(), []
    sink = lane.outbound.poisoner.sink
    assert isinstance(sink, KeepingSink)
    while not sink.records:
        await lane._settle([item], [answer])
        due.append(item.next_at)
        lane.withdraw({item.id})  # as the lane takes it into its next batch
    return due[:-1], sink.records


async def large_answered(sender: LargeSender, answer: peer_pb2.MessageResult) -> tuple[list[float], list[PoisonRecord]]:
    """The same for ``LargeSender``: each transfer is answered ``answer``."""
    item, due = message(), []

    async def attempt(m: Outgoing) -> peer_pb2.MessageResult:
        if m.failed_attempts:
            due.append(m.next_at)
        return answer

    sender._attempt = attempt  # type: ignore[method-assign]
    await sender._deliver(item)
    sink = sender.poisoner.sink
    assert isinstance(sink, KeepingSink)
    return due, sink.records


@pytest.mark.parametrize(
    "answer",
    [
        peer_pb2.MessageResult(outcome=peer_pb2.OUTCOME_RETRY_LATER),
        peer_pb2.MessageResult(outcome=peer_pb2.OUTCOME_RETRY_LATER, reason="receive queue full"),
        peer_pb2.MessageResult(outcome=peer_pb2.OUTCOME_REJECTED, reason="bad-signature: no key k"),
    ],
    ids=["retry-later", "retry-later-with-a-reason", "refused"],
)
async def test_a_large_message_is_retried_and_poisoned_as_a_small_one_answered_the_same(
    small: tuple[Lane, KeepingSink], large: tuple[LargeSender, KeepingSink], answer: peer_pb2.MessageResult
) -> None:
    small_due, small_poisoned = await small_answered(small[0], answer)
    large_due, large_poisoned = await large_answered(large[0], answer)
    assert large_due == small_due
    assert [(r.reason, r.detail, r.attempts, r.poisoned_at) for r in large_poisoned] == [
        (r.reason, r.detail, r.attempts, r.poisoned_at) for r in small_poisoned
    ]
    if answer.outcome == peer_pb2.OUTCOME_RETRY_LATER:
        assert small_due, "the scenario retried nothing"
        assert small_poisoned[0].reason == "max-attempts"
        assert small_poisoned[0].detail.endswith(f"last error: {answer.reason or 'peer asked to retry later'}")
