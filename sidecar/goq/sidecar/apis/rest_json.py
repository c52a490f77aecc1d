"""The REST API's JSON: requests decoded strictly, answers encoded with the fields gRPC's messages have.

Decoding is pure functions that raise ``ConfigError`` (400) saying what is wrong and what is allowed. Bodies and
query strings are checked against the types of ``rest_types`` (``typed_json.decode``), those the OpenAPI
document is written from; answers are built as those types, so mypy holds the encoders to the document.
"""

import base64
import binascii
import json
import math
import re
from datetime import UTC, datetime
from typing import Any, Final, cast

from goq.errors import ConfigError
from goq.messages import Message
from goq.sidecar.apis.http_protocol import Request
from goq.sidecar.apis.rest_limits import SECONDS_PATTERN
from goq.sidecar.apis.rest_types import Nack, PoisonedMessage, ReceivedMessage, SendMessage
from goq.sidecar.apis.typed_json import Parameter, decode, parameters
from goq.sidecar.core.engine import SendRequest
from goq.sidecar.domain.records import Incoming, PoisonRecord

_INTEGER: Final = re.compile(r"[0-9]{1,9}")
_SECONDS: Final = re.compile(SECONDS_PATTERN)
_NOT_BASE64: Final = '"payload" is not standard base64 (A-Z, a-z, 0-9, + and /, padded with =)'
_SURROGATE_ESCAPE: Final = re.compile(r"\\u[dD][89a-fA-F]")


# Request decoding: pure functions that raise ConfigError (400) with what is wrong and what is allowed.


def _reject_constant(name: str) -> float:
    raise ConfigError(f"{name} is not a JSON number; use a finite number")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object whose keys are all different: with a key twice, which one counts would be the parser's
    guess (Python's: the last; others: the first or an error), so the request is refused instead."""
    value = dict(pairs)
    if len(value) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ConfigError(f"the key {key!r} appears more than once in one object; give each key once")
            seen.add(key)
    return value


_DECODER: Final = json.JSONDecoder(parse_constant=_reject_constant, object_pairs_hook=_unique_keys)
"""One decoder for every body: ``json.loads`` with these options built a new one per request."""

_NOT_UTF8: Final = (
    (b"\xef\xbb\xbf", "starts with a UTF-8 byte-order mark"),
    (b"\xff\xfe", "starts with a UTF-16 or UTF-32 byte-order mark"),
    (b"\xfe\xff", "starts with a UTF-16 byte-order mark"),
    (b"\x00\x00\xfe\xff", "starts with a UTF-32 byte-order mark"),
)


def _json_text(body: bytes, what: str) -> str:
    """``body`` as text: UTF-8 without a byte-order mark, as JSON sent over a network must be (RFC 8259)."""
    allowed = "JSON bodies must be UTF-8 without a byte-order mark"
    for mark, found in _NOT_UTF8:
        if body.startswith(mark):
            raise ConfigError(f"{what} {found}; {allowed}")
    if b"\x00" in body[:4]:
        raise ConfigError(f"{what} looks like UTF-16 or UTF-32 (it has zero bytes); {allowed}")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{what} is not valid UTF-8 (byte {exc.start}); {allowed}") from None


def parse_json_object(body: bytes, what: str) -> dict[str, Any]:
    """A JSON object from ``body``, strictly: UTF-8 only, no key twice in any object, and no NaN or
    Infinity (JSON has no such numbers). Every REST body is parsed here."""
    text = _json_text(body, what)
    try:
        value = _DECODER.decode(text)
    except (ValueError, RecursionError) as exc:
        raise ConfigError(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{what} must be a JSON object, got {type(value).__name__}")
    if _SURROGATE_ESCAPE.search(text):  # rare: then check that every escape made a character
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except RecursionError:
            raise ConfigError(f"{what} is nested too deeply") from None
        except UnicodeEncodeError:
            raise ConfigError(
                f"{what} has a \\u escape of half a surrogate pair (\\ud800-\\udfff) that is not "
                "part of a whole pair; escape characters beyond U+FFFF as a pair, or send them as UTF-8"
            ) from None
    return value


def send_request_of_json(body: dict[str, Any]) -> SendRequest:
    """A ``SendMessage`` (payload in base64) as the engine's request."""
    send = cast(SendMessage, decode(SendMessage, body, "the message"))
    payload, headers = decode_base64(send["payload"]), send.get("headers", {})
    return SendRequest(
        to=send["to"], payload=payload, persistent=send["persistent"], headers=headers, id=send.get("id")
    )


def decode_base64(text: str) -> bytes:
    """Standard base64 with its padding; nothing else (no whitespace, no URL-safe alphabet): exactly what
    ``BASE64_PATTERN`` matches. Why not the pattern itself: matching it cost three times the decoding
    (a tenth of a REST send's CPU at 1 KiB). Strict decoding refuses other characters, misplaced padding
    and data after it; only whole quads, with at most the last two characters padding, remain to check."""
    if len(text) % 4 or text.find("=", 0, len(text) - 2) != -1:
        raise ConfigError(_NOT_BASE64)
    try:
        return binascii.a2b_base64(text, strict_mode=True)
    except (binascii.Error, ValueError):  # ValueError: a character outside ASCII
        raise ConfigError(_NOT_BASE64) from None


def query_of(request: Request, tp: Any = None) -> dict[str, Any]:
    """The query parameters of the ``TypedDict`` ``tp`` (none if ``None``), read and checked, with their
    defaults; names the call does not take (a likely typo) and repeated ones are refused."""
    taken = _parameters(tp)
    names = [name for name, _ in request.query]
    unknown = sorted(set(names) - set(taken))
    if unknown:
        takes = f"allowed: {', '.join(taken)}" if taken else "this call takes none"
        raise ConfigError(f"unknown query parameter(s) {', '.join(map(repr, unknown))}; {takes}")
    if len(names) != len(set(names)):
        raise ConfigError("a query parameter is given more than once")
    given = dict(request.query)
    values: dict[str, Any] = {}
    for name, p in taken.items():
        text = given.get(name)
        if p.tp is int:
            values[name] = parse_int(text, name, p.rules["default"], p.rules["minimum"], p.rules["maximum"])
        elif p.tp is float:
            values[name] = parse_seconds(text, name, p.rules["maximum"])
        elif p.tp is bool:
            values[name] = parse_bool(text, name) if text is not None else p.rules["default"]
        elif text is not None:
            values[name] = p.check(text) if p.check is not None else text
    return values


_PARAMETERS: dict[Any, dict[str, Parameter]] = {None: {}}


def _parameters(tp: Any) -> dict[str, Parameter]:
    found = _PARAMETERS.get(tp)
    if found is None:
        found = _PARAMETERS[tp] = parameters(tp)
    return found


def parse_bool(value: str, name: str) -> bool:
    if value == "true":
        return True
    if value == "false":
        return False
    raise ConfigError(f"{name} must be true or false, got {value!r}")


def parse_int(value: str | None, name: str, default: int, low: int, high: int) -> int:
    """An integer query parameter within ``low..high``."""
    if value is None:
        return default
    if not _INTEGER.fullmatch(value) or not low <= int(value) <= high:
        raise ConfigError(f"{name} must be an integer from {low} to {high}, got {value!r}")
    return int(value)


def parse_seconds(value: str | None, name: str, high: float) -> float:
    """Seconds as a query parameter (``0``, ``2.5``) within ``0..high``; 0 when absent."""
    if value is None:
        return 0.0
    seconds = float(value) if _SECONDS.fullmatch(value) else math.nan
    if not math.isfinite(seconds) or not 0 <= seconds <= high:
        raise ConfigError(f"{name} must be a number of seconds from 0 to {high:g}, got {value!r}")
    return seconds


def nack_arguments(body: dict[str, Any]) -> tuple[bool, float, str]:
    """A ``Nack``: requeue (default true), delay (seconds, default 0) and reason."""
    nack = cast(Nack, decode(Nack, body, "the nack"))
    return nack["requeue"], float(nack["delay"]), nack["reason"]


def message_ids(tp: Any, body: dict[str, Any], what: str) -> list[str]:
    """The ``ids`` of a redrive or acknowledgement request (``Redrive``, ``Acks``)."""
    ids: list[str] = decode(tp, body, what)["ids"]
    return ids


# Response encoding.


def _timestamp(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def received_json(item: Incoming) -> ReceivedMessage:
    """A leased message as the application sees it (the same fields as gRPC ``ReceivedMessage``)."""
    m = item.message
    return {
        "id": m.id,
        "from": str(m.source),
        "to": str(m.destination),
        "payload": base64.b64encode(m.payload).decode("ascii"),
        "headers": m.headers,
        "persistent": m.persistent,
        "attempt": item.deliveries,
        "sentAt": _timestamp(m.created_at_ms),
        "large": m.large is not None,
        "payloadSize": m.large.size if m.large is not None else len(m.payload),
    }


def poisoned_json(record: PoisonRecord) -> PoisonedMessage:
    """A poison-queue entry (the same fields as gRPC ``PoisonedMessage``)."""
    message = Message.decode(record.body)
    return {
        "id": record.id,
        "direction": record.direction,
        "peer": record.peer,
        "reason": record.reason,
        "detail": record.detail,
        "attempts": record.attempts,
        "poisonedAt": _timestamp(int(record.poisoned_at * 1000)),
        "persistent": record.persistent,
        "payload": base64.b64encode(message.payload).decode("ascii"),
        "headers": message.headers,
    }
