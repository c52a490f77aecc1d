"""Work per peer request is bounded: a batch over the envelope bound is refused whole and counted, a
large batch is checked in chunks that let other work in while its results keep the batch's order, and
the bound is never below what a sender may put in one batch."""

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from goq.api.v1 import envelope_pb2, peer_pb2
from goq.identity import Address
from goq.messages import Message
from goq.queue_spec import GoQueueSpec
from goq.sidecar.apis.peer_limits import MAX_BATCH_ENVELOPES, request_bytes_limit
from goq.sidecar.apis.peer_service import PeerService
from goq.sidecar.core.inbound import Inbound, InboundConfig
from goq.sidecar.domain.counting import Counters
from goq.sidecar.domain.poisoning import Poisoner
from goq.sidecar.domain.records import Incoming, PoisonRecord
from goq.sidecar.settings import SidecarSettings
from goq.signing import Keyring

ORDERS = Address.parse("orders.shop")
BILLING = Address.parse("billing.shop")
KEYRING = Keyring({"k1": b"k" * 32}, "k1")


class KeepingInbox:
    async def add(self, items: list[Incoming]) -> list[bool]:
        return [True] * len(items)

    def acknowledge(self, keys: list[str]) -> None:
        return None

    async def close(self) -> None:
        return None


class KeepingSink:
    async def put(self, records: list[PoisonRecord]) -> None:
        return None

    async def close(self) -> None:
        return None


class AbortedError(Exception):
    pass


class FakeContext:
    """What the service uses of a gRPC servicer context: abort, which raises; the caller's TLS identity (none)."""

    def __init__(self) -> None:
        self.aborted: tuple[grpc.StatusCode, str] | None = None

    def auth_context(self) -> dict[str, list[bytes]]:
        return {}  # plaintext: no certificate

    async def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.aborted = (code, details)
        raise AbortedError(details)


@pytest.fixture
def service() -> PeerService:
    counters = Counters()
    inbound = Inbound(
        BILLING,
        lambda: KEYRING,
        lambda: GoQueueSpec(receive_queue_limit=100_000),
        {True: KeepingInbox(), False: KeepingInbox()},  # type: ignore[dict-item]
        Poisoner(KeepingSink(), counters),
        counters,
        InboundConfig(),
    )
    return PeerService(inbound)


def good(message_id: str) -> envelope_pb2.SignedEnvelope:
    body = Message(message_id, ORDERS, BILLING, int(time.time() * 1000), b"order").encode()
    key_id, signature = KEYRING.sign(body)
    return envelope_pb2.SignedEnvelope(body=body, key_id=key_id, signature=signature)


def forged() -> envelope_pb2.SignedEnvelope:
    return envelope_pb2.SignedEnvelope(body=b"x" * 40, key_id="k1", signature=b"y" * 32)


async def stream(*batches: peer_pb2.DeliverBatch) -> AsyncIterator[peer_pb2.DeliverBatch]:
    for batch in batches:
        yield batch


async def answers(service: PeerService, context: FakeContext, *batches: peer_pb2.DeliverBatch) -> list[Any]:
    got = []
    try:
        async for ack in service.Deliver(stream(*batches), context):  # type: ignore[arg-type]
            got.append(ack)
    except AbortedError:
        pass
    return got


async def test_a_batch_over_the_envelope_bound_is_refused_whole_after_the_answers_before_it(
    service: PeerService,
) -> None:
    context = FakeContext()
    over = MAX_BATCH_ENVELOPES + 1

    acks = await answers(
        service,
        context,
        peer_pb2.DeliverBatch(seq=1, messages=[good("m1")]),
        peer_pb2.DeliverBatch(seq=2, messages=[forged()] * over),
        peer_pb2.DeliverBatch(seq=3, messages=[good("m3")]),
    )

    assert [(a.seq, [r.outcome for r in a.results]) for a in acks] == [(1, [peer_pb2.OUTCOME_ACCEPTED])]
    assert context.aborted is not None
    code, details = context.aborted
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert f"batch-too-large: a batch of {over} envelopes" in details
    assert f"at most {MAX_BATCH_ENVELOPES}" in details
    assert service.inbound.counters.refused == {"batch-too-large": over}
    assert [m.id for m in service.inbound.leases.take(10)] == ["m1"]


async def test_a_large_batch_is_checked_in_chunks_that_let_other_work_in_and_keep_its_order(
    service: PeerService,
) -> None:
    envelopes = [good(f"m{i}") if i % 3 == 0 else forged() for i in range(MAX_BATCH_ENVELOPES)]
    forgeries = len(envelopes) - len(range(0, len(envelopes), 3))
    seen: set[int] = set()  # refusals counted so far, as other work on the loop sees them

    async def other_work() -> None:
        while True:
            seen.add(service.inbound.counters.refused.get("bad-signature", 0))
            await asyncio.sleep(0)

    other = asyncio.create_task(other_work())
    try:
        (ack,) = await answers(service, FakeContext(), peer_pb2.DeliverBatch(seq=7, messages=envelopes))
    finally:
        other.cancel()

    assert len([n for n in seen if 0 < n < forgeries]) >= 5  # 10 chunks: 9 points in between
    expected = [peer_pb2.OUTCOME_ACCEPTED if i % 3 == 0 else peer_pb2.OUTCOME_REJECTED for i in range(len(envelopes))]
    assert (ack.seq, [r.outcome for r in ack.results]) == (7, expected)
    taken = service.inbound.leases.take(MAX_BATCH_ENVELOPES)
    assert [m.id for m in taken] == [f"m{i}" for i in range(0, len(envelopes), 3)]
    assert service.inbound.counters.refused == {"bad-signature": forgeries}


def test_no_sender_setting_makes_a_batch_over_the_envelope_bound() -> None:
    env = {"GOQ_IDENTITY": "orders"}
    assert SidecarSettings.from_env({**env, "GOQ_BATCH_MAX": str(MAX_BATCH_ENVELOPES)}).batch_max == MAX_BATCH_ENVELOPES
    with pytest.raises(Exception, match="GOQ_BATCH_MAX"):
        SidecarSettings.from_env({**env, "GOQ_BATCH_MAX": str(MAX_BATCH_ENVELOPES + 1)})


def test_the_bytes_bound_holds_a_full_batch_a_largest_payload_and_a_largest_chunk() -> None:
    envelope_overhead = len(peer_pb2.DeliverBatch(messages=[forged()]).SerializeToString()) - 40
    full_batch = 1024 * 1024 + MAX_BATCH_ENVELOPES * envelope_overhead
    assert request_bytes_limit(1024) >= full_batch
    assert request_bytes_limit(4 * 1024 * 1024) >= 4 * 1024 * 1024 + 64 * 1024  # a payload plus its envelope
    assert request_bytes_limit(64 * 1024) >= 4 * 1024 * 1024 + 64 * 1024  # a Transfer part with the largest chunk
    assert request_bytes_limit(4 * 1024**3) == 2**31 - 1  # what gRPC can take
