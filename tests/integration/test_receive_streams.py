"""A consumer that opens a new Receive stream for each message, with real sidecars. What a cancelled stream
held and the application had not acknowledged goes back to the queue at once, not when its lease ends: a
message handed to the stream just as the application acknowledged the last one and left (never read), or
one it read and let go. Until handed out again it is still the application's to acknowledge (docs/client.md
takes one with ``next(iter(goq.receive()))`` and acknowledges it after). A large message keeps its lease:
its body is read with ReadPayload, maybe after the stream.
"""

import asyncio
import hashlib
import time
from collections.abc import Callable

from goq.api.v1 import queue_manager_pb2 as pb
from goq.devenv.sidecars import SidecarProcess

from .conftest import App
from .test_large_messages import MiB, send_large

Sidecars = Callable[..., dict[str, SidecarProcess]]
Apps = Callable[[SidecarProcess], App]
LEASE = 20.0
PROMPT = 5.0
"""Well under the lease: a message that waited for a lease to end would take LEASE seconds."""


async def take_one(app: App, *, ack: bool, within: float = PROMPT) -> pb.ReceivedMessage:
    """Open a Receive stream for one message at a time, take the first, acknowledge it if ``ack``, cancel."""
    stream = app.stub.Receive(pb.ReceiveRequest(max_in_flight=1, max_batch=1))
    try:
        batch = await asyncio.wait_for(stream.read(), within)
        assert isinstance(batch, pb.ReceivedBatch), batch
        (message,) = batch.messages
        if ack:
            assert list((await app.stub.Ack(pb.AckRequest(ids=[message.id]))).unknown) == []
        return message
    finally:
        stream.cancel()


async def given_back(app: App, within: float) -> None:
    """Wait until nothing is leased: the sidecar gives a cancelled stream's messages back as soon as it
    learns the stream ended, a moment after the client cancelled it."""
    deadline = time.monotonic() + within
    while (await app.stats()).in_flight:
        assert time.monotonic() < deadline, f"a cancelled stream's messages were still leased after {within} s"
        await asyncio.sleep(0.05)


async def test_a_stream_per_message_acknowledged_before_cancelling_gets_each_next_message_at_once(
    sidecars: Sidecars, apps: Apps
) -> None:
    group = sidecars("orders", "billing", GOQ_LEASE=f"{LEASE:g}s")
    orders, billing = apps(group["orders"]), apps(group["billing"])
    payloads = [f"m{i}".encode() for i in range(20)]
    assert all(r.HasField("accepted") for r in await orders.send("billing", payloads))

    got, waits = [], []
    for _ in payloads:
        started = time.monotonic()
        got.append((await take_one(billing, ack=True)).payload)
        waits.append(time.monotonic() - started)
    print(f"slowest hand-over on a new stream: {max(waits):.3f} s")
    assert sorted(got) == sorted(payloads)
    stats = await billing.stats()
    assert (stats.in_flight, stats.receive_queue, stats.acknowledged) == (0, 0, len(payloads))


async def test_a_message_not_acknowledged_when_its_stream_is_cancelled_goes_back_at_once_and_stays_acknowledgeable(
    sidecars: Sidecars, apps: Apps
) -> None:
    group = sidecars("orders", "billing", GOQ_LEASE=f"{LEASE:g}s")
    orders, billing = apps(group["orders"]), apps(group["billing"])
    assert all(r.HasField("accepted") for r in await orders.send("billing", [b"first", b"second"]))

    first = await take_one(billing, ack=False)
    await given_back(billing, within=PROMPT)  # when the sidecar learns the stream ended, not after the lease
    again = await take_one(billing, ack=False)  # on a new stream: the same message, first in line
    assert (again.id, again.payload, again.attempt) == (first.id, first.payload, 2)
    # Its stream is cancelled too, and the application acknowledges it afterwards (as docs/client.md's
    # ``next(iter(goq.receive()))`` does): still the application's to acknowledge, whether the sidecar has
    # put it back by then or not.
    assert list((await billing.stub.Ack(pb.AckRequest(ids=[first.id]))).unknown) == []
    rest = await take_one(billing, ack=True)
    assert rest.payload != first.payload
    assert rest.attempt == 1
    assert await billing.quiet(1.0) == []  # the acknowledged one never comes again
    stats = await billing.stats()
    assert (stats.in_flight, stats.receive_queue, stats.acknowledged) == (0, 0, 2)


async def test_a_large_message_keeps_its_lease_after_its_stream_is_cancelled_so_its_body_can_be_read(
    sidecars: Sidecars, apps: Apps
) -> None:
    group = sidecars("orders", "billing", GOQ_LEASE=f"{LEASE:g}s")
    orders, billing = apps(group["orders"]), apps(group["billing"])
    receipt, digest = await send_large(orders, "billing", 5 * MiB)
    assert receipt.state in ("queued", "delivered"), receipt

    large = await take_one(billing, ack=False, within=60.0)
    assert large.large
    body = hashlib.sha256()
    async for chunk in billing.stub.ReadPayload(pb.ReadPayloadRequest(id=large.id)):  # after the stream ended
        body.update(chunk.data)
    assert body.hexdigest() == digest
    assert list((await billing.stub.Ack(pb.AckRequest(ids=[large.id]))).unknown) == []
    assert (await billing.stats()).in_flight == 0
