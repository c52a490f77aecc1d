"""The receiving side of the peer protocol (``goq.v1.Peer``, port 7702).

Batches on one stream are checked in order, stored concurrently (so consecutive batches share a
group commit), and answered and queued in order.
"""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc

from goq.api.v1 import peer_pb2, peer_pb2_grpc
from goq.sidecar.inbound import Arrival, Inbound

Context = grpc.aio.ServicerContext[Any, Any]


class PeerService(peer_pb2_grpc.PeerServicer):
    """Accepts deliveries from other sidecars into this sidecar's inbound queue."""

    def __init__(self, inbound: Inbound, window: int = 16) -> None:
        self.inbound = inbound
        self.window = window

    async def Deliver(  # noqa: N802 - the gRPC method's name
        self, request_iterator: AsyncIterator[peer_pb2.DeliverBatch], context: Context
    ) -> AsyncIterator[peer_pb2.DeliverAck]:
        storing: asyncio.Queue[tuple[int, asyncio.Task[Arrival]] | None] = asyncio.Queue(self.window)
        reader = asyncio.get_running_loop().create_task(self._read(request_iterator, storing))
        try:
            while (entry := await storing.get()) is not None:
                seq, task = entry
                arrival = await task
                yield peer_pb2.DeliverAck(seq=seq, results=self.inbound.publish(arrival))
        finally:
            reader.cancel()

    async def _read(
        self,
        batches: AsyncIterator[peer_pb2.DeliverBatch],
        storing: "asyncio.Queue[tuple[int, asyncio.Task[Arrival]] | None]",
    ) -> None:
        try:
            async for batch in batches:
                arrival = self.inbound.prepare(batch.messages)
                task = asyncio.get_running_loop().create_task(self.inbound.store(arrival))
                await storing.put((batch.seq, task))
        finally:
            await storing.put(None)
