"""The client's values, and their conversion to and from the wire (one place for both clients)."""

from collections.abc import Callable, Iterator, Mapping
from dataclasses import FrozenInstanceError, dataclass, field
from pathlib import Path
from typing import Final

from goq.api.v1 import queue_manager_pb2 as pb
from goq.client.errors import ClientError, error_for
from goq.errors import ConfigError
from goq.stats_fields import FIGURES, STAT_NAMES, STATS

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


class Stats:
    """A sidecar's queue depths and totals since it started (the ``Stats`` answer of the gRPC API).

    Its figures are the rows of ``goq.stats_fields.STATS``, read as attributes: ``identity`` (text) and the
    counts and byte figures (``send_queue``, ``in_flight``, ``sent``, ``large_bytes_received``...). Why not
    one dataclass field per figure: the table is the one place a figure is defined. Immutable, like the
    client's other values.
    """

    __slots__ = ("_values",)
    _values: dict[str, int | str]

    def __init__(self, values: Mapping[str, int | str]) -> None:
        if list(values) != list(STAT_NAMES):
            raise ConfigError(
                f"stats need exactly the figures {', '.join(STAT_NAMES)} in that order, got {list(values)}"
            )
        object.__setattr__(self, "_values", dict(values))

    @property
    def identity(self) -> str:
        """The sidecar's identity, ``<name>.<namespace>``."""
        return str(self._values["identity"])

    def __getattr__(self, name: str) -> int:
        """A figure by its name: ``stats.send_queue``."""
        if name.startswith("_") or name not in _FIGURES:
            raise AttributeError(f"Stats has no figure {name!r}; it has {', '.join(STAT_NAMES)}")
        return int(self._values[name])

    def __setattr__(self, name: str, value: object) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}: Stats are read-only")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}: Stats are read-only")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Stats) and self._values == other._values

    def __hash__(self) -> int:
        return hash(tuple(self._values.values()))

    def __repr__(self) -> str:
        return f"Stats({', '.join(f'{name}={value!r}' for name, value in self._values.items())})"

    def __dir__(self) -> list[str]:
        return [*super().__dir__(), *STAT_NAMES]

    def __reduce__(self) -> tuple[type["Stats"], tuple[dict[str, int | str]]]:
        return (Stats, (self._values,))

    def to_dict(self) -> dict[str, int | str]:
        """The figures by the REST API's names (``GET /v1/stats``: ``sendQueue``, ``inFlight``...)."""
        return {f.json_name: self._values[f.name] for f in STATS}


_FIGURES: Final = frozenset(f.name for f in FIGURES)


def stats(response: pb.StatsResponse) -> Stats:
    return Stats({name: getattr(response, name) for name in STAT_NAMES})
