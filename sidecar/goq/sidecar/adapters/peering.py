"""The sending side of the peer protocol: one stream to one replica of a destination, a window of batches.

Batches are written to one ``Deliver`` stream without waiting for each answer, up to ``window`` at a
time; answers come back in order and complete each batch's future. If the stream breaks, every
batch in flight fails with ``PeerUnavailableError`` and the next batch opens a new stream. A lane
keeps one link per ready replica and gives each batch to the link with the fewest messages
outstanding (``sidecar/core/lane.py``).
"""

import asyncio
import functools
import logging
import math
import time
from typing import Final

import grpc

from goq.api.v1 import peer_pb2, peer_pb2_grpc
from goq.errors import TemporaryError
from goq.identity import Address
from goq.sidecar.adapters.peer_tls import PLAINTEXT, PeerCredentials

log = logging.getLogger("goq.sidecar.peering")

GRPC_OVERHEAD: Final = 1024 * 1024


class PeerUnavailableError(TemporaryError):
    """The destination's sidecar could not be reached or did not answer."""


KEEPALIVE_MS: Final = 20_000


def _sizes(max_message_bytes: int) -> list[tuple[str, int]]:
    limit = max_message_bytes + GRPC_OVERHEAD
    return [("grpc.max_send_message_length", limit), ("grpc.max_receive_message_length", limit)]


def channel_options(max_message_bytes: int) -> list[tuple[str, int]]:
    """Client side: room for a batch of the largest messages; keepalive pings find dead peers on a quiet stream."""
    return [
        *_sizes(max_message_bytes),
        # The RetryPolicy paces attempts; gRPC's own reconnect backoff (up to 2 min) must not add to it.
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.min_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", 1000),
        ("grpc.keepalive_time_ms", KEEPALIVE_MS),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.http2.max_pings_without_data", 0),
    ]


def server_options(max_message_bytes: int) -> list[tuple[str, int]]:
    """Server side: the same sizes, and permission for the clients' keepalive pings."""
    return [
        *_sizes(max_message_bytes),
        ("grpc.http2.min_ping_interval_without_data_ms", KEEPALIVE_MS // 2),
        ("grpc.http2.max_ping_strikes", 0),
        ("grpc.keepalive_permit_without_calls", 1),
    ]


Results = list[peer_pb2.MessageResult]


class PeerLink:
    """A ``Deliver`` stream to one target, with at most ``window`` batches awaiting an answer."""

    def __init__(
        self,
        target: str,
        *,
        window: int,
        max_message_bytes: int,
        destination: Address,
        credentials: PeerCredentials = PLAINTEXT,
    ) -> None:
        self.target = target
        self.destination = destination
        """Whose sidecar ``target`` is: the name its TLS certificate must have (``goq.sidecar.adapters.peer_tls``)."""
        self.credentials = credentials
        self.slots = asyncio.Semaphore(window)
        self.outstanding = 0
        """Messages sent on this link and not answered yet (kept by the lane that owns the link)."""
        self.chosen = 0
        """When the lane last chose this link (a sequence number): ties go to the least recently chosen."""
        self._options = channel_options(max_message_bytes)
        self._channel: grpc.aio.Channel | None = None
        self._call: grpc.aio.StreamStreamCall[peer_pb2.DeliverBatch, peer_pb2.DeliverAck] | None = None
        self._pending: dict[int, asyncio.Future[Results]] = {}
        self._seq = 0
        self._heard_at = -math.inf
        """When the current stream last answered a batch, or opened (monotonic clock)."""
        self._reader: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Task[None]] = set()

    async def send(self, batch: peer_pb2.DeliverBatch) -> "asyncio.Future[Results]":
        """Write one batch (its ``seq`` is set here); the returned future completes with its results, or fails
        if the stream breaks."""
        call = self._open()
        self._seq += 1
        batch.seq = self._seq
        future: asyncio.Future[Results] = asyncio.get_running_loop().create_future()
        self._pending[self._seq] = future
        future.add_done_callback(functools.partial(self._forget, self._seq))
        # A write waits for the stream (its headers, flow control). gRPC does not end a write that waits for
        # the headers of a call cancelled meanwhile (``reset`` after a timeout): it would wait for ever, and
        # so would the lane. The write is given up once its batch failed.
        write = asyncio.ensure_future(call.write(batch))
        write.add_done_callback(_retrieve)
        try:
            await asyncio.wait((write, future), return_when=asyncio.FIRST_COMPLETED)
        finally:
            write.cancel()
        if not write.done() or write.cancelled():
            self._break(call, "write given up")
        elif (exc := write.exception()) is not None:
            if not isinstance(exc, (grpc.aio.AioRpcError, asyncio.InvalidStateError, grpc.RpcError)):
                raise exc
            self._break(call, f"write failed: {_describe(exc)}")
        return future

    def silent(self, seconds: float) -> bool:
        """Whether the stream has answered nothing for ``seconds`` (since it opened, if never): a stream that
        still answers other batches is alive, and one batch's late answer is no reason to break it (and fail
        every batch in flight on it with that one)."""
        return time.monotonic() - self._heard_at >= seconds

    def reset(self, reason: str) -> None:
        """Give up on the current stream (e.g. no answer in time): fail its batches, open anew next time."""
        if self._call is not None:
            self._break(self._call, reason)

    async def close(self) -> None:
        """Close the stream and the channel; batches still in flight fail."""
        self.reset("sidecar shutting down")
        if self._channel is not None:
            await self._channel.close()
            self._channel = None

    def _open(self) -> "grpc.aio.StreamStreamCall[peer_pb2.DeliverBatch, peer_pb2.DeliverAck]":
        if self._call is None:
            if self._channel is None:
                # A channel per stream (see ``_break``): each takes the TLS certificate in force when it opens.
                self._channel = self.credentials.channel(self.target, self.destination, self._options)
            call = peer_pb2_grpc.PeerStub(self._channel).Deliver()
            self._call = call
            self._heard_at = time.monotonic()
            self._reader = asyncio.get_running_loop().create_task(self._read(call))
        return self._call

    async def _read(self, call: "grpc.aio.StreamStreamCall[peer_pb2.DeliverBatch, peer_pb2.DeliverAck]") -> None:
        try:
            async for ack in call:
                if call is self._call:
                    self._heard_at = time.monotonic()
                future = self._pending.pop(ack.seq, None)
                if future is not None and not future.done():
                    future.set_result(list(ack.results))
            self._break(call, "the peer closed the stream")
        except asyncio.CancelledError:
            self._break(call, "stream cancelled")
        except grpc.aio.AioRpcError as exc:
            self._break(call, _describe(exc))

    def _forget(self, seq: int, future: "asyncio.Future[Results]") -> None:
        """A batch nobody waits for any more (its attempt timed out): its answer, if it comes, is dropped."""
        if self._pending.get(seq) is future:
            del self._pending[seq]

    def _break(self, call: object, reason: str) -> None:
        if call is not self._call:
            return
        self._call = None
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(PeerUnavailableError(f"{self.target}: {reason}"))
        if isinstance(call, grpc.aio.Call):
            call.cancel()
        # A fresh channel for the next attempt: it connects at once instead of in gRPC's backoff.
        channel, self._channel = self._channel, None
        if channel is not None:
            task = asyncio.get_running_loop().create_task(channel.close())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)


def _retrieve(write: "asyncio.Future[None]") -> None:
    """A write given up may still fail: its error is known (the batch failed), not worth a warning."""
    if not write.cancelled():
        write.exception()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, grpc.aio.AioRpcError):
        return f"{exc.code().name}: {exc.details()}"
    return str(exc) or type(exc).__name__
