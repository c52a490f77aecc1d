"""The blocking client: the same calls as ``AsyncClient``, for code without asyncio."""

import contextlib
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import grpc

from goq.api.v1 import queue_manager_pb2 as pb
from goq.api.v1 import queue_manager_pb2_grpc
from goq.client import models
from goq.client.asynchronous import BATCH, default_target
from goq.client.errors import ClientError, UnavailableError, translate
from goq.client.models import Outgoing, Poisoned, Receipt, Received, Stats


class Client:
    """Talks to the sidecar at ``target`` (its application gRPC port; default as ``AsyncClient``), blocking."""

    def __init__(self, target: str | None = None, *, timeout: float = 30.0) -> None:
        self.target = target or default_target()
        self.timeout = timeout
        self._channel = grpc.insecure_channel(self.target)
        self._stub = queue_manager_pb2_grpc.QueueManagerStub(self._channel)

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def send(
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
            response = self._stub.Send(request, timeout=self.timeout)
        except grpc.RpcError as exc:
            raise translate(exc) from exc
        return Receipt(response.id, response.state)

    def send_many(self, messages: Iterable[Outgoing]) -> list[Receipt | ClientError]:
        """Send many messages on one stream, in batches; per message a receipt or the error that refused it."""
        pending = list(messages)
        batches = (
            pb.SendBatch(messages=[models.send_request(m) for m in pending[start : start + BATCH]])
            for start in range(0, len(pending), BATCH)
        )
        try:
            return [models.receipt_or_error(r) for answer in self._stub.SendStream(batches) for r in answer.results]
        except grpc.RpcError as exc:
            raise translate(exc) from exc

    def send_large(
        self,
        to: str,
        chunks: Iterable[bytes],
        *,
        size: int | None = None,
        persistent: bool = True,
        headers: dict[str, str] | None = None,
        id: str | None = None,
    ) -> Receipt:
        """Send one large message, its payload streamed from ``chunks``; returns once it is all stored.
        Give ``size`` when known: over the limit, the sidecar refuses before any byte is stored."""
        first = models.large_header(to, size=size, persistent=persistent, headers=headers, id=id)
        calls: list[Any] = []
        started = threading.Event()

        def parts() -> Iterator[pb.LargeSendPart]:
            yield first
            started.wait()
            # The sidecar checked the header: it says "accepted", or the call ends with the reason.
            if models.ACCEPTED not in tuple(calls[0].initial_metadata() or ()):
                return
            for chunk in chunks:
                yield pb.LargeSendPart(data=chunk)

        calls.append(self._stub.SendLarge.future(parts()))
        started.set()
        try:
            response = calls[0].result()
        except grpc.RpcError as exc:
            raise translate(exc) from exc
        return Receipt(response.id, response.state)

    def send_file(
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
        size = path.stat().st_size
        return self.send_large(to, chunks, size=size, persistent=persistent, headers=headers, id=id)

    def read_payload(self, id: str, offset: int = 0) -> Iterator[bytes]:
        """A leased large message's payload (from ``offset``), a chunk at a time."""
        try:
            for chunk in self._stub.ReadPayload(pb.ReadPayloadRequest(id=id, offset=offset)):
                yield chunk.data
        except grpc.RpcError as exc:
            raise translate(exc) from exc

    def receive(self, *, max_in_flight: int = 100, within: float | None = None) -> Iterator[Received]:
        """Messages as they arrive, for ``within`` seconds (None: until the loop is left); at most
        ``max_in_flight`` unacknowledged at a time."""
        request = pb.ReceiveRequest(max_in_flight=max_in_flight, max_batch=max_in_flight)
        call = self._stub.Receive(request, timeout=within)
        try:
            for batch in call:
                yield from (models.received(m) for m in batch.messages)
        except grpc.RpcError as exc:
            error = translate(exc)
            if error.code not in models.RECEIVE_ENDS:
                raise error from exc
        finally:
            call.cancel()

    def ack(self, *ids: str) -> list[str]:
        """Done with these messages; returns the ids the sidecar did not hold."""
        try:
            return list(self._stub.Ack(pb.AckRequest(ids=ids), timeout=self.timeout).unknown)
        except grpc.RpcError as exc:
            raise translate(exc) from exc

    def acknowledger(self) -> "Acknowledger":
        """Acknowledgements on one stream, for a consumer that acknowledges often (see ``Acknowledger``)."""
        return Acknowledger(self._stub)

    def nack(self, id: str, *, requeue: bool = True, delay: float = 0.0, reason: str = "") -> None:
        """Give a message back (after ``delay`` seconds), or send it to the poison queue (``requeue=False``)."""
        try:
            self._stub.Nack(
                pb.NackRequest(id=id, requeue=requeue, delay_seconds=delay, reason=reason), timeout=self.timeout
            )
        except grpc.RpcError as exc:
            raise translate(exc) from exc

    def stats(self) -> Stats:
        """Queue depths and totals since the sidecar started."""
        try:
            return models.stats(self._stub.Stats(pb.StatsRequest(), timeout=self.timeout))
        except grpc.RpcError as exc:
            raise translate(exc) from exc

    def poisoned(self, limit: int = 100) -> list[Poisoned]:
        """The newest messages in this identity's poison queue."""
        try:
            response = self._stub.ListPoisoned(pb.ListPoisonedRequest(limit=limit), timeout=self.timeout)
        except grpc.RpcError as exc:
            raise translate(exc) from exc
        return [models.poisoned(m) for m in response.messages]

    def redrive(self, ids: Iterable[str]) -> list[str]:
        """Hand poisoned messages back; returns the ids handed back."""
        try:
            return list(self._stub.Redrive(pb.RedriveRequest(ids=list(ids)), timeout=self.timeout).ids)
        except grpc.RpcError as exc:
            raise translate(exc) from exc


class Acknowledger:
    """The blocking ``AsyncAcknowledger``: ``with client.acknowledger() as acks: acks.ack(*ids)``."""

    def __init__(self, stub: queue_manager_pb2_grpc.QueueManagerStub) -> None:
        self._requests: queue.SimpleQueue[pb.AckRequest | None] = queue.SimpleQueue()
        self._answers = stub.AckStream(iter(self._requests.get, None))
        self._turn = threading.Lock()  # answers come in order: one request and its answer at a time

    def __enter__(self) -> "Acknowledger":
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def ack(self, *ids: str) -> list[str]:
        """Done with these messages; returns the ids the sidecar did not hold."""
        with self._turn:
            self._requests.put(pb.AckRequest(ids=ids))
            try:
                response = next(self._answers)
            except StopIteration:
                raise UnavailableError("the sidecar closed the acknowledgement stream", "UNAVAILABLE") from None
            except grpc.RpcError as exc:
                raise translate(exc) from exc
        return list(response.unknown)

    def close(self) -> None:
        """End the stream (acknowledgements already answered are done)."""
        with self._turn:
            self._requests.put(None)
            with contextlib.suppress(grpc.RpcError):
                for _ in self._answers:  # the sidecar answers what is left and closes
                    pass
