"""What the receiver answers a delivery, and the invariant each answer relies on: DUPLICATE (the sender
forgets the message) only for a message this sidecar holds durably or has consumed; a repeat of a message
whose store write has not returned waits for that write: DUPLICATE once it held, RETRY_LATER if it failed or
outlasted JOIN_WAIT."""

import asyncio
import time

import pytest

from goq.api.v1 import envelope_pb2, peer_pb2
from goq.identity import Address
from goq.messages import Message
from goq.queue_spec import GoQueueSpec
from goq.sidecar.core import inbound as inbound_module
from goq.sidecar.core.inbound import Inbound, InboundConfig
from goq.sidecar.domain.counting import Counters
from goq.sidecar.domain.poisoning import Poisoner
from goq.sidecar.domain.records import Incoming, PoisonRecord
from goq.sidecar.ports.stores import StoreUnavailableError
from goq.signing import Keyring

ORDERS = Address.parse("orders.shop")
BILLING = Address.parse("billing.shop")
KEYRING = Keyring({"k1": b"k" * 32}, "k1")
ACCEPTED, DUPLICATE, RETRY_LATER = peer_pb2.OUTCOME_ACCEPTED, peer_pb2.OUTCOME_DUPLICATE, peer_pb2.OUTCOME_RETRY_LATER


class GatedInbox:
    """An inbox whose writes wait until the test opens the gate, then succeed or fail as told."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.fail = False
        self.held: set[str] = set()

    async def add(self, items: list[Incoming]) -> list[bool]:
        await self.gate.wait()
        if self.fail:
            raise StoreUnavailableError("MongoDB could not make the messages durable: test outage")
        fresh = [m.key not in self.held for m in items]
        self.held.update(m.key for m in items)
        return fresh

    def acknowledge(self, keys: list[str]) -> None:
        return None

    async def restore(self, items: list[Incoming]) -> None:
        return None

    async def recover(self) -> list[Incoming]:
        return []

    async def close(self) -> None:
        return None


class KeepingSink:
    async def put(self, records: list[PoisonRecord]) -> None:
        return None


@pytest.fixture
async def inbox() -> GatedInbox:
    return GatedInbox()


@pytest.fixture
async def inbound(inbox: GatedInbox) -> Inbound:
    counters = Counters()
    return Inbound(
        BILLING,
        lambda: KEYRING,
        GoQueueSpec,
        {True: inbox, False: GatedInbox()},
        Poisoner(KeepingSink(), counters),
        counters,
        InboundConfig(),
    )


def envelope(message_id: str) -> envelope_pb2.SignedEnvelope:
    body = Message(message_id, ORDERS, BILLING, int(time.time() * 1000), b"order").encode()
    key_id, signature = KEYRING.sign(body)
    return envelope_pb2.SignedEnvelope(body=body, key_id=key_id, signature=signature)


def outcomes(results: list[peer_pb2.MessageResult]) -> list[int]:
    return [r.outcome for r in results]


async def test_a_repeat_while_the_first_write_is_in_flight_waits_and_is_a_duplicate_once_it_held(
    inbound: Inbound, inbox: GatedInbox
) -> None:
    first = asyncio.create_task(inbound.accept([envelope("m1")]))
    await asyncio.sleep(0)  # the first delivery is checked and its write waits on the gate
    repeat = asyncio.create_task(inbound.accept([envelope("m1")]))
    await asyncio.sleep(0.05)
    assert not repeat.done()  # never DUPLICATE before the write held: the sender would forget the message

    inbox.gate.set()

    assert outcomes(await first) == [ACCEPTED]
    assert outcomes(await repeat) == [DUPLICATE]
    assert (inbound.counters.duplicates, inbound.counters.repeats_while_storing) == (1, 1)


async def test_a_repeat_whose_first_write_outlasts_the_join_wait_is_answered_retry_later(
    inbound: Inbound, inbox: GatedInbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inbound_module, "JOIN_WAIT", 0.05)
    first = asyncio.create_task(inbound.accept([envelope("m1")]))
    await asyncio.sleep(0)

    repeat = await inbound.accept([envelope("m1")])

    assert outcomes(repeat) == [RETRY_LATER]
    assert "still being stored" in repeat[0].reason
    assert (inbound.counters.duplicates, inbound.counters.repeats_while_storing) == (0, 1)
    inbox.gate.set()
    assert outcomes(await first) == [ACCEPTED]


async def test_a_repeat_after_the_write_returned_is_a_duplicate(inbound: Inbound, inbox: GatedInbox) -> None:
    inbox.gate.set()
    assert outcomes(await inbound.accept([envelope("m1")])) == [ACCEPTED]

    assert outcomes(await inbound.accept([envelope("m1")])) == [DUPLICATE]
    assert inbound.counters.duplicates == 1


async def test_after_a_failed_write_the_senders_retry_is_stored_anew(inbound: Inbound, inbox: GatedInbox) -> None:
    first = asyncio.create_task(inbound.accept([envelope("m1")]))
    await asyncio.sleep(0)
    repeat = asyncio.create_task(inbound.accept([envelope("m1")]))
    await asyncio.sleep(0)
    inbox.fail = True
    inbox.gate.set()
    assert outcomes(await first) == [RETRY_LATER]  # what the sender's timed-out attempt no longer hears
    assert outcomes(await repeat) == [RETRY_LATER]  # the write it waited for did not hold

    inbox.fail = False
    retried = await inbound.accept([envelope("m1")])

    assert outcomes(retried) == [ACCEPTED]
    assert [m.id for m in inbound.leases.take(10)] == ["m1"]


async def test_a_cancelled_write_lets_go_of_its_messages(inbound: Inbound, inbox: GatedInbox) -> None:
    first = asyncio.create_task(inbound.accept([envelope("m1")]))
    await asyncio.sleep(0)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert inbound.storing == {}
    assert inbound.depth == 0

    inbox.gate.set()
    assert outcomes(await inbound.accept([envelope("m1")])) == [ACCEPTED]


async def test_an_acknowledged_message_delivered_again_is_a_duplicate(inbound: Inbound, inbox: GatedInbox) -> None:
    inbox.gate.set()
    await inbound.accept([envelope("m1")])
    (taken,) = inbound.leases.take(1)
    assert inbound.leases.acknowledge([taken.id]) == []

    assert outcomes(await inbound.accept([envelope("m1")])) == [DUPLICATE]
    assert inbound.leases.take(1) == []


async def test_a_repeat_waiting_on_a_cancelled_write_is_answered_retry_later_at_once(
    inbound: Inbound, inbox: GatedInbox
) -> None:
    first = asyncio.create_task(inbound.accept([envelope("m1")]))
    await asyncio.sleep(0)
    repeat = asyncio.create_task(inbound.accept([envelope("m1")]))
    await asyncio.sleep(0)

    first.cancel()  # the sidecar stops while the write runs: the repeat must not wait out JOIN_WAIT
    with pytest.raises(asyncio.CancelledError):
        await first
    answer = await asyncio.wait_for(repeat, timeout=1.0)

    assert outcomes(answer) == [RETRY_LATER]
    assert inbound.counters.duplicates == 0
    inbox.gate.set()
    assert outcomes(await inbound.accept([envelope("m1")])) == [ACCEPTED]  # the sender's retry is stored anew
