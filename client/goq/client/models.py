"""The client's values, and their conversion to and from the wire (one place for both clients)."""

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from goq.api.v1 import queue_manager_pb2 as pb
from goq.client.errors import ClientError, error_for

ACCEPTED: Final = ("goq-large", "accepted")
"""The initial metadata with which a sidecar accepts a large send's header."""
CHUNK: Final = 1024 * 1024
"""Bytes per part of a streamed send."""
RECEIVE_ENDS: Final = frozenset({"CANCELLED", "DEADLINE_EXCEEDED"})
"""How a receive stream ends quietly: the loop was left, or ``within`` passed."""


@dataclass(frozen=True)
class Outgoing:
    """A message to send."""

    to: str
    payload: bytes
    persistent: bool = True
    headers: dict[str, str] = field(default_factory=dict)
    id: str | None = None


@dataclass(frozen=True)
class Receipt:
    """The sidecar took the message: its id, and ``queued`` or ``poisoned`` (send queue full)."""

    id: str
    state: str


@dataclass(frozen=True)
class Received:
    """A message leased to this application: acknowledge it, or it comes back."""

    id: str
    sender: str
    to: str
    payload: bytes
    headers: dict[str, str]
    persistent: bool
    attempt: int
    sent_at_ms: int
    large: bool = False
    """A large message: ``payload`` is empty; read it with ``read_payload(id)`` while leased."""
    payload_size: int = 0


@dataclass(frozen=True)
class Poisoned:
    """A message in the poison queue, with why it is there."""

    id: str
    direction: str
    peer: str
    reason: str
    detail: str
    attempts: int
    poisoned_at_ms: int
    persistent: bool
    payload: bytes
    headers: dict[str, str]


def send_request(message: Outgoing) -> pb.SendRequest:
    return pb.SendRequest(
        to=message.to,
        payload=message.payload,
        persistent=message.persistent,
        headers=message.headers,
        id=message.id or "",
    )


def receipt_or_error(result: pb.SendResult) -> Receipt | ClientError:
    if result.WhichOneof("result") == "accepted":
        return Receipt(result.accepted.id, result.accepted.state)
    return error_for(result.error.code, result.error.message)


def received(m: pb.ReceivedMessage) -> Received:
    return Received(
        id=m.id,
        sender=getattr(m, "from"),
        to=m.to,
        payload=m.payload,
        headers=dict(m.headers),
        persistent=m.persistent,
        attempt=m.attempt,
        sent_at_ms=m.sent_at_ms,
        large=m.large,
        payload_size=m.payload_size,
    )


def large_header(
    to: str, *, size: int | None, persistent: bool, headers: dict[str, str] | None, id: str | None
) -> pb.LargeSendPart:
    """The first part of a streamed send."""
    header = pb.LargeSendHeader(to=to, persistent=persistent, headers=headers or {}, id=id or "", size=size)
    return pb.LargeSendPart(header=header)


def file_chunks(path: Path, progress: Callable[[int, int], None] | None = None) -> Iterator[bytes]:
    """A file's bytes, a chunk at a time; ``progress(sent, total)`` after each."""
    total = path.stat().st_size
    sent = 0
    with path.open("rb") as file:
        while data := file.read(CHUNK):
            yield data
            sent += len(data)
            if progress is not None:
                progress(sent, total)


def poisoned(m: pb.PoisonedMessage) -> Poisoned:
    return Poisoned(
        id=m.id,
        direction=m.direction,
        peer=m.peer,
        reason=m.reason,
        detail=m.detail,
        attempts=m.attempts,
        poisoned_at_ms=m.poisoned_at_ms,
        persistent=m.persistent,
        payload=m.payload,
        headers=dict(m.headers),
    )


@dataclass(frozen=True)
class Stats:
    """A sidecar's queue depths and totals since it started (the ``Stats`` answer of the gRPC API)."""

    identity: str
    """The sidecar's identity, ``<name>.<namespace>``."""
    send_queue: int
    """Messages waiting to be delivered to their destinations."""
    receive_queue: int
    """Messages waiting for this application, leased ones included."""
    in_flight: int
    """Messages leased to this application and not yet acknowledged."""
    sent: int
    delivered: int
    received: int
    acknowledged: int
    poisoned: int
    """Messages sent to the poison queue, both directions."""
    duplicates: int
    """Repeats recognised and dropped by the de-duplication window."""
    refused: int
    """Messages from peers refused (bad signature, not allowed, too large...)."""
    large_bytes_uploaded: int
    """Large messages' payload bytes received from this application."""
    large_bytes_received: int
    """Large messages' payload bytes received from peers."""
    large_bytes_in_progress: int
    """Bytes of large bodies being received from peers right now."""
    large_transfers_resumed: int
    """Large transfers from peers resumed after a break."""

    def to_dict(self) -> dict[str, int | str]:
        """The figures by the REST API's names (``GET /v1/stats``: ``sendQueue``, ``inFlight``...)."""
        return {_CAMEL[name]: value for name, value in vars(self).items()}


def _camel(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(part.capitalize() for part in rest)


_CAMEL: Final = {name: _camel(name) for name in Stats.__dataclass_fields__}


def stats(response: pb.StatsResponse) -> Stats:
    return Stats(**{name: getattr(response, name) for name in Stats.__dataclass_fields__})
