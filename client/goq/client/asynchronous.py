"""The asyncio client."""

import asyncio
import contextlib
import os
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Final

import grpc

from goq.api.v1 import queue_manager_pb2 as pb
from goq.api.v1 import queue_manager_pb2_grpc
from goq.client import models
from goq.client.errors import ClientError, UnavailableError, translate
from goq.client.models import Outgoing, Poisoned, Receipt, Received, Stats

DEFAULT_TARGET: Final = "127.0.0.1:7701"
TARGET_ENV: Final = "GOQ_SIDECAR"


def default_target() -> str:
    """``$GOQ_SIDECAR`` if set, else 127.0.0.1:7701.

    Set it to reach a sidecar elsewhere (one started by hand on another port); an injected sidecar listens on
    the default, inside the application's pod.
    """
    return os.environ.get(TARGET_ENV) or DEFAULT_TARGET


BATCH: Final = 500


class AsyncClient:
    """Talks to the sidecar at ``target`` (its application gRPC port; default: ``default_target()``)."""

    def __init__(self, target: str | None = None, *, timeout: float = 30.0) -> None:
        self.target = target or default_target()
        self.timeout = timeout
        self._channel = grpc.aio.insecure_channel(self.target)
        self._stub = queue_manager_pb2_grpc.QueueManagerStub(self._channel)

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()

    async def send(
        self,
        to: str,
        payload: bytes,
        *,
        persistent: bool = True,
        headers: dict[str, str] | None = None,
        id: str | None = None,
    ) -> Receipt:
        """Send one message; returns once it is queued (durably, if persistent)."""
        request = models.send_request(Outgoing(to, payload, persistent, headers or {}, id))
        try:
            response = await self._stub.Send(request, timeout=self.timeout)
        except grpc.RpcError as exc:
            raise translate(exc) from exc
        return Receipt(response.id, response.state)

    async def send_many(self, messages: Iterable[Outgoing]) -> list[Receipt | ClientError]:
        """Send many messages on one stream, in batches; per message a receipt or the error that refused it."""
        pending = list(messages)

        async def batches() -> AsyncIterator[pb.SendBatch]:
            for start in range(0, len(pending), BATCH):
                yield pb.SendBatch(messages=[models.send_request(m) for m in pending[start : start + BATCH]])

        results: list[Receipt | ClientError] = []
        try:
            async for answer in self._stub.SendStream(batches()):
                results.extend(models.receipt_or_error(r) for r in answer.results)
        except grpc.RpcError as exc:
            raise translate(exc) from exc
        return results

    async def send_large(
        self,
        to: str,
        chunks: AsyncIterable[bytes] | Iterable[bytes],
        *,
        size: int | None = None,
        persistent: bool = True,
        headers: dict[str, str] | None = None,
        id: str | None = None,
    ) -> Receipt:
        """Send one large message, its payload streamed from ``chunks``; returns once it is all stored.
        Give ``size`` when known: over the limit, the sidecar refuses before any byte is stored."""

        call = self._stub.SendLarge()
        try:
            await call.write(models.large_header(to, size=size, persistent=persistent, headers=headers, id=id))
            # The sidecar checked the header: it says "accepted", or the call ends with the reason.
            if (await call.initial_metadata()).get(models.ACCEPTED[0]) == models.ACCEPTED[1]:
                if isinstance(chunks, AsyncIterable):
                    async for chunk in chunks:
                        await call.write(pb.LargeSendPart(data=chunk))
                else:
                    for chunk in chunks:
                        await call.write(pb.LargeSendPart(data=chunk))
                await call.done_writing()
            response = await call
        except grpc.RpcError as exc:
            raise translate(exc) from exc
        return Receipt(response.id, response.state)

    async def send_file(
        self,
        to: str,
        path: Path,
        *,
        persistent: bool = True,
        headers: dict[str, str] | None = None,
        id: str | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> Receipt:
        """Send a file as one large message, never holding it whole; ``progress(sent, total)`` as it goes."""
        chunks = models.file_chunks(path, progress)

        async def read() -> AsyncIterator[bytes]:
            while data := await asyncio.to_thread(next, chunks, b""):
                yield data

        size = (await asyncio.to_thread(path.stat)).st_size
        return await self.send_large(to, read(), size=size, persistent=persistent, headers=headers, id=id)

    async def read_payload(self, id: str, offset: int = 0) -> AsyncIterator[bytes]:
        """A leased large message's payload (from ``offset``), a chunk at a time."""
        try:
            async for chunk in self._stub.ReadPayload(pb.ReadPayloadRequest(id=id, offset=offset)):
                yield chunk.data
        except grpc.RpcError as exc:
            raise translate(exc) from exc

    async def receive(self, *, max_in_flight: int = 100, within: float | None = None) -> AsyncIterator[Received]:
        """Messages as they arrive, for ``within`` seconds (None: until the loop is left); at most
        ``max_in_flight`` unacknowledged at a time."""
        request = pb.ReceiveRequest(max_in_flight=max_in_flight, max_batch=max_in_flight)
        call = self._stub.Receive(request, timeout=within)
        try:
            async for batch in call:
                for message in batch.messages:
                    yield models.received(message)
        except grpc.RpcError as exc:
            error = translate(exc)
            if error.code not in models.RECEIVE_ENDS:
                raise error from exc
        finally:
            call.cancel()

    async def ack(self, *ids: str) -> list[str]:
        """Done with these messages; returns the ids the sidecar did not hold."""
        try:
            response = await self._stub.Ack(pb.AckRequest(ids=ids), timeout=self.timeout)
        except grpc.RpcError as exc:
            raise translate(exc) from exc
        return list(response.unknown)

    def acknowledger(self) -> "AsyncAcknowledger":
        """Acknowledgements on one stream, for a consumer that acknowledges often (see ``AsyncAcknowledger``)."""
        return AsyncAcknowledger(self._stub)

    async def nack(self, id: str, *, requeue: bool = True, delay: float = 0.0, reason: str = "") -> None:
        """Give a message back (after ``delay`` seconds), or send it to the poison queue (``requeue=False``)."""
        request = pb.NackRequest(id=id, requeue=requeue, delay_seconds=delay, reason=reason)
        try:
            await self._stub.Nack(request, timeout=self.timeout)
        except grpc.RpcError as exc:
            raise translate(exc) from exc

    async def stats(self) -> Stats:
        """Queue depths and totals since the sidecar started."""
        try:
            return models.stats(await self._stub.Stats(pb.StatsRequest(), timeout=self.timeout))
        except grpc.RpcError as exc:
            raise translate(exc) from exc

    async def poisoned(self, limit: int = 100) -> list[Poisoned]:
        """The newest messages in this identity's poison queue."""
        try:
            response = await self._stub.ListPoisoned(pb.ListPoisonedRequest(limit=limit), timeout=self.timeout)
        except grpc.RpcError as exc:
            raise translate(exc) from exc
        return [models.poisoned(m) for m in response.messages]

    async def redrive(self, ids: Iterable[str]) -> list[str]:
        """Hand poisoned messages back; returns the ids handed back."""
        try:
            response = await self._stub.Redrive(pb.RedriveRequest(ids=list(ids)), timeout=self.timeout)
        except grpc.RpcError as exc:
            raise translate(exc) from exc
        return list(response.ids)


class AsyncAcknowledger:
    """Acknowledgements on one ``AckStream``: each costs the sidecar a fraction of an ``ack`` call, which
    matters to a consumer acknowledging every few milliseconds. ``async with client.acknowledger() as acks:
    await acks.ack(*ids)``."""

    def __init__(self, stub: "queue_manager_pb2_grpc.QueueManagerAsyncStub") -> None:  # a name only the stubs know
        self._call = stub.AckStream()
        self._turn = asyncio.Lock()  # answers come in order: one request and its answer at a time

    async def __aenter__(self) -> "AsyncAcknowledger":
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def ack(self, *ids: str) -> list[str]:
        """Done with these messages; returns the ids the sidecar did not hold."""
        async with self._turn:
            try:
                await self._call.write(pb.AckRequest(ids=ids))
                response = await self._call.read()
            except grpc.RpcError as exc:
                raise translate(exc) from exc
        if not isinstance(response, pb.AckResponse):  # the stream ended
            raise UnavailableError("the sidecar closed the acknowledgement stream", "UNAVAILABLE")
        return list(response.unknown)

    async def close(self) -> None:
        """End the stream (acknowledgements already answered are done)."""
        async with self._turn:
            with contextlib.suppress(grpc.RpcError):
                await self._call.done_writing()
            self._call.cancel()
