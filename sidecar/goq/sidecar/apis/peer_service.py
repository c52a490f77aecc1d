"""The receiving side of the peer protocol (``goq.v1.Peer``, port 7702).

Batches on one stream are checked in order, stored concurrently (so consecutive batches share a
group commit), and queued and answered in order. Storing and queueing run in tasks of their own:
once a batch is checked, it is queued even if the sender's stream breaks before the answer.

Work per request is bounded (``goq.sidecar.apis.peer_limits``): a batch of more envelopes than any sender
makes is refused whole without looking at its envelopes (each counted as refused, ``batch-too-large``),
and the stream ends with RESOURCE_EXHAUSTED after the answers to the batches before it. A large batch is
checked a chunk at a time, other work let in between; the stream's next batch waits, so the order holds.
"""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc

from goq.api.v1 import peer_pb2, peer_pb2_grpc
from goq.errors import PermanentError
from goq.sidecar.apis.peer_limits import CHECK_CHUNK, MAX_BATCH_ENVELOPES
from goq.sidecar.core.inbound import Arrival, Inbound, Result
from goq.sidecar.domain.peer_identity import SENDER, identity_of
from goq.sidecar.large.receiving import LargeReceiver

Context = grpc.aio.ServicerContext[Any, Any]


class BatchTooLargeError(PermanentError):
    """A ``DeliverBatch`` with more envelopes than any sender puts in one: refused whole."""


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
        SENDER.set(identity_of(context.auth_context()))  # this call's task only: checked by ``Inbound``
        if self.large is None:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "this sidecar takes no large messages")
        assert self.large is not None  # abort raises
        async for ack in self.large.transfer(request_iterator):
            yield ack

    async def Deliver(  # noqa: N802 - the gRPC method's name
        self, request_iterator: AsyncIterator[peer_pb2.DeliverBatch], context: Context
    ) -> AsyncIterator[peer_pb2.DeliverAck]:
        SENDER.set(identity_of(context.auth_context()))  # this call's task and the reader's: checked by ``Inbound``
        answers: asyncio.Queue[tuple[int, asyncio.Task[list[Result]]] | None] = asyncio.Queue(self.window)
        reader = asyncio.get_running_loop().create_task(self._read(request_iterator, answers))
        try:
            while (entry := await answers.get()) is not None:
                seq, task = entry
                # shield: if the sender goes away while we wait, the batch must still be queued.
                yield peer_pb2.DeliverAck(seq=seq, results=await asyncio.shield(task))
            refused = await reader
            if refused is not None:
                await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(refused))
        finally:
            reader.cancel()

    async def _read(
        self,
        batches: AsyncIterator[peer_pb2.DeliverBatch],
        answers: "asyncio.Queue[tuple[int, asyncio.Task[list[Result]]] | None]",
    ) -> BatchTooLargeError | None:
        """Check each batch in turn; returns why the stream is to end, if a batch was refused whole."""
        previous: asyncio.Task[list[Result]] | None = None
        try:
            async for batch in batches:
                if len(batch.messages) > MAX_BATCH_ENVELOPES:
                    return self._too_large(batch)
                arrivals = await self._prepare(batch)
                previous = asyncio.get_running_loop().create_task(self._keep(arrivals, previous))
                await answers.put((batch.seq, previous))
            return None
        finally:
            await answers.put(None)

    def _too_large(self, batch: peer_pb2.DeliverBatch) -> BatchTooLargeError:
        n = len(batch.messages)
        detail = f"a batch of {n} envelopes (seq {batch.seq}); at most {MAX_BATCH_ENVELOPES} are taken in one batch"
        self.inbound.refusals.refuse("batch-too-large", detail, n)
        return BatchTooLargeError(f"batch-too-large: {detail}")

    async def _prepare(self, batch: peer_pb2.DeliverBatch) -> list[Arrival]:
        """Check a batch, a chunk at a time with other work let in between (see ``CHECK_CHUNK``)."""
        envelopes = batch.messages
        arrivals = [self.inbound.prepare(envelopes[:CHECK_CHUNK])]
        for start in range(CHECK_CHUNK, len(envelopes), CHECK_CHUNK):
            await asyncio.sleep(0)
            arrivals.append(self.inbound.prepare(envelopes[start : start + CHECK_CHUNK]))
        return arrivals

    async def _keep(self, arrivals: list[Arrival], previous: "asyncio.Task[list[Result]] | None") -> list[Result]:
        """Store, then publish after the batch before: a task of its own, so a sender that vanishes
        mid-stream cannot strand a stored batch unpublished."""
        if len(arrivals) == 1:
            await self.inbound.store(arrivals[0])
        else:
            await asyncio.gather(*(self.inbound.store(arrival) for arrival in arrivals))
        if previous is not None:
            await asyncio.wait([previous])
        return [result for arrival in arrivals for result in self.inbound.publish(arrival)]
