"""A batch whose answer is late, on a stream that still answers others, fails alone: its outcome is unknown and
it is tried again, while the stream stays open and the batches in flight on it with it are answered as usual.
Before, the late answer broke the stream and failed every batch in flight on it (at 100 identities, tens of
thousands of extra attempts, each repeated, checked and de-duplicated by its receiver). A stream that answers
nothing at all for the attempt timeout is still given up, and the next attempt opens a new one."""

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import grpc
import pytest

from goq.api.v1 import peer_pb2, peer_pb2_grpc
from goq.identity import Address
from goq.retry import RetryPolicy
from goq.sidecar.adapters.resolving import StaticResolver
from goq.sidecar.adapters.stores.memory import MemoryOutbox
from goq.sidecar.core.outbound import Outbound, OutboundConfig
from goq.sidecar.domain.counting import Counters
from goq.sidecar.domain.poisoning import Poisoner
from goq.sidecar.domain.records import Outgoing, PoisonRecord

BILLING = Address.parse("billing.shop")
ATTEMPT_TIMEOUT = 0.5
ACCEPTED = peer_pb2.MessageResult(outcome=peer_pb2.OUTCOME_ACCEPTED)


class Receiver(peer_pb2_grpc.PeerServicer):
    """Answers each batch after ``delay`` seconds, in any order; the bodies of ``held`` get their answer only
    after ``hold`` seconds, or never (``None``)."""

    def __init__(self, held: set[bytes], hold: float | None, delay: float) -> None:
        self.held, self.hold, self.delay = held, hold, delay
        self.streams = 0
        self.batches: list[list[bytes]] = []

    async def Deliver(  # noqa: N802
        self, request_iterator: AsyncIterator[peer_pb2.DeliverBatch], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[peer_pb2.DeliverAck]:
        self.streams += 1
        acks: asyncio.Queue[peer_pb2.DeliverAck] = asyncio.Queue()

        async def answer(batch: peer_pb2.DeliverBatch, delay: float | None) -> None:
            if delay is None:
                return
            await asyncio.sleep(delay)
            await acks.put(peer_pb2.DeliverAck(seq=batch.seq, results=[ACCEPTED] * len(batch.messages)))

        async def read() -> None:
            async for batch in request_iterator:
                bodies = [m.body for m in batch.messages]
                self.batches.append(bodies)
                held = any(body in self.held for body in bodies)
                self.held -= set(bodies)  # a repeat of a held batch is answered as usual
                tasks.add(asyncio.ensure_future(answer(batch, self.hold if held else self.delay)))

        tasks: set[asyncio.Future[None]] = set()
        reader = asyncio.ensure_future(read())
        try:
            while True:
                yield await acks.get()
        finally:
            reader.cancel()
            for task in tasks:
                task.cancel()


class NoSink:
    async def put(self, records: list[PoisonRecord]) -> None:
        raise AssertionError(f"nothing is poisoned here: {records}")


async def serve(receiver: Receiver) -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server()
    peer_pb2_grpc.add_PeerServicer_to_server(receiver, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port


def outbound_to(port: int, counters: Counters) -> Outbound:
    policy = RetryPolicy(attempt_timeout=ATTEMPT_TIMEOUT, initial_backoff=0.05, max_backoff=0.1)
    return Outbound(
        Address.parse("orders.shop"),
        lambda: policy,
        StaticResolver({str(BILLING): f"127.0.0.1:{port}"}),
        {True: MemoryOutbox(), False: MemoryOutbox()},  # the lane under test needs no durable store
        Poisoner(NoSink(), counters),
        counters,
        OutboundConfig(),
    )


def message(name: str) -> Outgoing:
    return Outgoing(
        id=name,
        destination=BILLING,
        body=name.encode(),
        key_id="k",
        signature=b"s",
        persistent=True,
        created_at=time.time(),
    )


async def until(condition: Callable[[], bool], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "not within the time allowed"
        await asyncio.sleep(0.01)


@pytest.fixture
def counters() -> Counters:
    return Counters()


async def test_a_late_answer_fails_only_its_own_batch_and_the_stream_carries_on(counters: Counters) -> None:
    receiver = Receiver(held={b"late"}, hold=3 * ATTEMPT_TIMEOUT, delay=0.3)
    server, port = await serve(receiver)
    outbound = outbound_to(port, counters)
    try:
        outbound.enqueue([message("late")])
        await until(lambda: len(receiver.batches) == 1)
        outbound.enqueue([message("answered-before")])  # answered 0.3 s on: the stream is heard from
        await until(lambda: counters.delivered == 1)
        # Sent before the late batch's attempt times out, answered after it: before, the timeout broke the
        # stream and failed this batch with it.
        outbound.enqueue([message("in-flight-at-the-timeout")])
        await until(lambda: outbound.pending == 0)
        assert receiver.streams == 1
        assert counters.attempts_failed == 1  # the late batch's attempt alone
        assert counters.delivered == 3
        assert receiver.batches == [[b"late"], [b"answered-before"], [b"in-flight-at-the-timeout"], [b"late"]]
    finally:
        await outbound.close(0.0)
        await server.stop(None)


async def test_a_stream_that_answers_nothing_for_the_attempt_timeout_is_given_up(counters: Counters) -> None:
    receiver = Receiver(held={b"never"}, hold=None, delay=0.05)
    server, port = await serve(receiver)
    outbound = outbound_to(port, counters)
    try:
        outbound.enqueue([message("never")])
        await until(lambda: outbound.pending == 0)
        assert counters.attempts_failed == 1
        assert receiver.streams == 2  # the silent stream was given up; its repeat went on a new one
        assert receiver.batches == [[b"never"], [b"never"]]
    finally:
        await outbound.close(0.0)
        await server.stop(None)
