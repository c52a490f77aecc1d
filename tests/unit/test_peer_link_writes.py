"""A batch's write on a peer stream ends when the stream is given up: gRPC leaves a write that waits for the
headers of a call cancelled meanwhile waiting for ever, and the lane writing it would stop delivering."""

import asyncio

import pytest

from goq.api.v1 import peer_pb2
from goq.identity import Address
from goq.sidecar.adapters.peering import PeerLink, PeerUnavailableError


class StuckCall:
    """A stream whose writes never end, as a gRPC call cancelled while its write waits for the headers."""

    def __init__(self) -> None:
        self.writing = asyncio.Event()

    async def write(self, batch: peer_pb2.DeliverBatch) -> None:
        self.writing.set()
        await asyncio.Event().wait()


async def test_a_write_stuck_on_a_stream_given_up_ends_and_its_batch_fails() -> None:
    link = PeerLink("127.0.0.1:9", window=8, max_message_bytes=1024, destination=Address.parse("billing.default"))
    call = StuckCall()
    link._call = call  # type: ignore[assignment]
    sending = asyncio.create_task(link.send(peer_pb2.DeliverBatch()))
    await call.writing.wait()
    link.reset("no answer within attemptTimeout")
    answer = await asyncio.wait_for(sending, 2.0)
    with pytest.raises(PeerUnavailableError, match="no answer within attemptTimeout"):
        await answer
    await link.close()
