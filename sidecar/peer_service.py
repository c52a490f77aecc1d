"""The receiving side of the peer protocol (``goq.v1.Peer``, port 7702).

Batches on one stream are checked in order, stored concurrently (so consecutive batches share a
group commit), and queued and answered in order. Storing and queueing run in tasks of their own:
once a batch is checked, it is queued even if the sender's stream breaks before the answer.
"""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc

from goq.api.v1 import peer_pb2, peer_pb2_grpc
from goq.sidecar.inbound import Arrival, Inbound, Result
from goq.sidecar.large.receiving import LargeReceiver

Context = grpc.aio.ServicerContext[Any, Any]


class PeerService(peer_pb2_grpc.PeerServicer):
    """Accepts deliveries from other sidecars into this sidecar's inbound queue."""

    def __init__(self, inbound: Inbound, window: int = 16, large: LargeReceiver | None = None) -> None:
        self.inbound = inbound
        self.window = window
        self.large = large

    async def Transfer(  # noqa: N802 - the gRPC method's name
        self, request_iterator: AsyncIterator[peer_pb2.TransferPart], context: Context
    ) -> AsyncIterator[peer_pb2.TransferAck]:
        """One large message (see ``goq.sidecar.large.receiving``)."""
        if self.large is None:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "this sidecar takes no large messages")
        assert self.large is not None  # abort raises
        async for ack in self.large.transfer(request_iterator):
            yield ack

    async def Deliver(  # noqa: N802 - the gRPC method's name
        self, request_iterator: AsyncIterator[peer_pb2.DeliverBatch], context: Context
    ) -> AsyncIterator[peer_pb2.DeliverAck]:
        answers: asyncio.Queue[tuple[int, asyncio.Task[list[Result]]] | None] = asyncio.Queue(self.window)
        reader = asyncio.get_running_loop().create_task(self._read(request_iterator, answers))
        try:
            while (entry := await answers.get()) is not None:
                seq, task = entry
                # shield: if the sender goes away while we wait, the batch must still be queued.
                yield peer_pb2.DeliverAck(seq=seq, results=await asyncio.shield(task))
        finally:
            reader.cancel()

    async def _read(
        self,
        batches: AsyncIterator[peer_pb2.DeliverBatch],
        answers: "asyncio.Queue[tuple[int, asyncio.Task[list[Result]]] | None]",
    ) -> None:
        previous: asyncio.Task[list[Result]] | None = None
        try:
            async for batch in batches:
                arrival = self.inbound.prepare(batch.messages)
                previous = asyncio.get_running_loop().create_task(self._keep(arrival, previous))
                await answers.put((batch.seq, previous))
        finally:
            await answers.put(None)

    async def _keep(self, arrival: Arrival, previous: "asyncio.Task[list[Result]] | None") -> list[Result]:
        """Store, then publish after the batch before: a task of its own, so a sender that vanishes
        mid-stream cannot strand a stored batch unpublished."""
        await self.inbound.store(arrival)
        if previous is not None:
            await asyncio.wait([previous])
        return self.inbound.publish(arrival)
