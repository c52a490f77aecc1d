"""The message model: ids, headers and payload limits, and the envelope's wire encoding.

A message is encoded once, when its sidecar accepts it, into ``Envelope`` bytes; those bytes are
signed, stored and sent as they are (see ``goq/api/v1/envelope.proto``).
"""

import random
import re
import time
from dataclasses import dataclass, field
from typing import Final

from google.protobuf.message import DecodeError

from goq.api.v1 import envelope_pb2
from goq.errors import ConfigError, PermanentError
from goq.identity import Address

MAX_ID_LENGTH: Final = 128
MAX_HEADERS: Final = 64
MAX_HEADER_NAME: Final = 256
MAX_HEADER_VALUE: Final = 4096
DEFAULT_MAX_PAYLOAD: Final = 4 * 1024 * 1024
_HEADER_NAME: Final = re.compile(rf"[A-Za-z0-9._:/-]{{1,{MAX_HEADER_NAME}}}")


class MalformedMessageError(PermanentError):
    """Bytes that do not decode as an envelope, or an envelope that breaks the model's rules."""


def new_message_id() -> str:
    """A unique id that sorts by creation time: 12 hex digits of milliseconds, 16 random."""
    # random, not os.urandom: ids must be unique, not secret, and a system call per message costs more than the
    # rest of this function (the generator is seeded from os.urandom at start-up and again in a forked child).
    return f"{time.time_ns() // 1_000_000:012x}{random.getrandbits(64):016x}"


def validate_message_id(value: object) -> str:
    """An application's idempotency key: 1 to 128 printable ASCII characters, no spaces."""
    # The same rule as the pattern ``[\x21-\x7e]{1,128}``, in C-level string methods: this runs for every message.
    if not isinstance(value, str) or not (
        0 < len(value) <= MAX_ID_LENGTH and value.isascii() and value.isprintable() and " " not in value
    ):
        raise ConfigError(
            f"message id must be 1 to {MAX_ID_LENGTH} printable ASCII characters without spaces, got {value!r}"
        )
    return value


def validate_headers(headers: object) -> dict[str, str]:
    """At most 64 headers; names of letters, digits and ``._:/-``; values of at most 4096 characters."""
    if headers is None:
        return {}
    if not isinstance(headers, dict):
        raise ConfigError(f"headers must be an object of strings, got {type(headers).__name__}")
    if len(headers) > MAX_HEADERS:
        raise ConfigError(f"at most {MAX_HEADERS} headers are allowed, got {len(headers)}")
    for name, value in headers.items():
        if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
            raise ConfigError(
                f"header name {name!r} must be 1 to {MAX_HEADER_NAME} letters, digits or '._:/-' characters"
            )
        if not isinstance(value, str) or len(value) > MAX_HEADER_VALUE:
            raise ConfigError(f"header {name!r} must be a string of at most {MAX_HEADER_VALUE} characters")
    return dict(headers)


@dataclass(frozen=True, slots=True)
class LargeRef:
    """A large message's body, as its envelope describes and authenticates it; the body travels beside."""

    size: int
    mac: bytes
    """HMAC-SHA256 of the body under ``key_id``."""
    key_id: str
    chunk_size: int


@dataclass(slots=True)
class Message:
    """A decoded envelope: what the application sent, with where it comes from and goes to."""

    id: str
    source: Address
    destination: Address
    created_at_ms: int
    payload: bytes
    persistent: bool = True
    headers: dict[str, str] = field(default_factory=dict)
    large: LargeRef | None = None
    """Set for a large message: ``payload`` is empty and the body is stored beside the envelope."""

    def encode(self) -> bytes:
        """The envelope bytes that are signed, stored and sent."""
        envelope = envelope_pb2.Envelope(
            id=self.id,
            source=str(self.source),
            destination=str(self.destination),
            created_at_ms=self.created_at_ms,
            persistent=self.persistent,
            payload=self.payload,
        )
        if self.headers:  # a map argument, even an empty one, costs a Python-level update per message
            envelope.headers.update(self.headers)
        large = self.large
        if large is not None:  # (small messages, the hot path, skip this)
            envelope.large.size, envelope.large.mac = large.size, large.mac
            envelope.large.key_id, envelope.large.chunk_size = large.key_id, large.chunk_size
        return envelope.SerializeToString()

    @classmethod
    def decode(cls, body: bytes) -> "Message":
        """Decode envelope bytes received from a peer or read from a store."""
        envelope = envelope_pb2.Envelope()
        try:
            envelope.ParseFromString(body)
        except DecodeError as exc:
            raise MalformedMessageError(f"envelope does not decode: {exc}") from exc
        try:
            source = _qualified(envelope.source, "source")
            destination = _qualified(envelope.destination, "destination")
            validate_message_id(envelope.id)
        except ConfigError as exc:
            raise MalformedMessageError(str(exc)) from exc
        return cls(
            id=envelope.id,
            source=source,
            destination=destination,
            created_at_ms=envelope.created_at_ms,
            payload=envelope.payload,
            persistent=envelope.persistent,
            headers=dict(envelope.headers) if envelope.headers else {},  # a dict from an empty map costs 0.4 us
            large=_large(envelope),
        )


def _large(envelope: envelope_pb2.Envelope) -> LargeRef | None:
    if not envelope.HasField("large"):
        return None
    body = envelope.large
    if body.chunk_size < 1 or envelope.payload:
        raise MalformedMessageError("a large message's envelope needs a chunk size and no inline payload")
    return LargeRef(size=body.size, mac=body.mac, key_id=body.key_id, chunk_size=body.chunk_size)


def _qualified(text: str, what: str) -> Address:
    address = Address.parse(text)
    if address.namespace is None:
        raise MalformedMessageError(f"envelope {what} {text!r} has no namespace")
    return address
