"""The application's REST API (127.0.0.1:7700): a thin JSON layer over the engine, as gRPC is.

Each handler decodes the request, calls one ``QueueManager`` method and encodes its answer; engine
errors become HTTP statuses through the table gRPC reads too (``goq.sidecar.statuses``), so both APIs
refuse the same things for the same reasons. Bad input is always a 4xx with
``{"error": {"code", "message"}}``; request bodies are read only up to a bound derived from the
payload limit, so an oversized upload is refused without being held in memory.
"""

import asyncio
import base64
import binascii
import json
import logging
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

from goq.errors import ConfigError, GoQError
from goq.messages import MAX_HEADER_NAME, MAX_HEADER_VALUE, MAX_HEADERS, Message, validate_message_id
from goq.sidecar.app_service import large_stats
from goq.sidecar.engine import QueueManager, SendRequest
from goq.sidecar.errors import NotFoundError, PayloadTooLargeError
from goq.sidecar.http_server import HttpError, Request, Response, Router
from goq.sidecar.large.service import LargeMessages
from goq.sidecar.large.uploading import LargeSend
from goq.sidecar.openapi import (
    BASE64_PATTERN,
    DEFAULT_POISON_LIST,
    DEFAULT_RECEIVE,
    MAX_ACK,
    MAX_DELAY,
    MAX_POISON_LIST,
    MAX_RECEIVE,
    MAX_REDRIVE,
    MAX_WAIT,
    SECONDS_PATTERN,
    openapi_document,
)
from goq.sidecar.records import Incoming, PoisonRecord
from goq.sidecar.statuses import code_of_http, status_of

log = logging.getLogger("goq.sidecar.rest")

RESPONSE_BUDGET: Final = 16 * 1024 * 1024
"""Most payload bytes one receive answers with (at least one message, whatever its size)."""
OFF_LOOP: Final = 256 * 1024
"""JSON bodies larger than this are parsed and encoded in a worker thread, not on the event loop."""
SMALL_BODY: Final = 1024 * 1024
"""Bodies other than sends (nack, redrive, acknowledgements) are small; more than this is refused unread."""
JSON_OVERHEAD: Final = MAX_HEADERS * (MAX_HEADER_NAME + MAX_HEADER_VALUE) * 6 + 64 * 1024
"""Room in a JSON send beyond the base64 payload: every header at its longest, each character
``\\uXXXX``-escaped, plus the other fields."""
SEND_FIELDS: Final = ("to", "payload", "persistent", "headers", "id")
NACK_FIELDS: Final = ("requeue", "delay", "reason")
_INTEGER: Final = re.compile(r"[0-9]{1,9}")
_SECONDS: Final = re.compile(SECONDS_PATTERN)
_BASE64: Final = re.compile(BASE64_PATTERN)
_SURROGATE_ESCAPE: Final = re.compile(r"\\u[dD][89a-fA-F]")


def json_response(value: Any, status: int = 200) -> Response:
    return Response(status, json.dumps(value).encode(), "application/json")


def error_response(status: int, message: str) -> Response:
    """``{"error": {"code", "message"}}`` with ``status``."""
    return json_response({"error": {"code": code_of_http(status), "message": message}}, status=status)


def refusal(error: GoQError) -> Response:
    """``error`` as the REST API says it (``goq.sidecar.statuses``)."""
    status = status_of(error)
    return json_response({"error": {"code": status.code, "message": str(error)}}, status=status.http)


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
        value = json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_unique_keys)
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


def _only(body: dict[str, Any], allowed: tuple[str, ...], what: str) -> None:
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise ConfigError(f"{what} has unknown field(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(allowed)}")


def send_request_of_json(body: dict[str, Any]) -> SendRequest:
    """``{"to", "payload" (base64), "persistent", "headers", "id"}`` as the engine's request."""
    _only(body, SEND_FIELDS, "the message")
    to, payload, persistent = body.get("to"), body.get("payload"), body.get("persistent", True)
    if not isinstance(to, str):
        raise ConfigError('"to" is required: "<identity>" or "<identity>.<namespace>"')
    if not isinstance(payload, str):
        raise ConfigError('"payload" is required: the message bytes in standard base64 ("" for none)')
    if not isinstance(persistent, bool):
        raise ConfigError(f'"persistent" must be true or false, got {persistent!r}')
    headers = body.get("headers", {})
    if not isinstance(headers, dict):
        raise ConfigError(f'"headers" must be an object of strings, got {type(headers).__name__}')
    message_id = validate_message_id(body["id"]) if "id" in body else None
    return SendRequest(to=to, payload=decode_base64(payload), persistent=persistent, headers=headers, id=message_id)


def decode_base64(text: str) -> bytes:
    """Standard base64 with its padding; nothing else (no whitespace, no URL-safe alphabet)."""
    if not _BASE64.fullmatch(text):
        raise ConfigError('"payload" is not standard base64 (A-Z, a-z, 0-9, + and /, padded with =)')
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError('"payload" is not standard base64 (A-Z, a-z, 0-9, + and /, padded with =)') from None


def query_of(request: Request, *allowed: str) -> dict[str, str]:
    """The query parameters, refusing names the call does not take (a likely typo) and repeated ones."""
    names = [name for name, _ in request.query]
    unknown = sorted(set(names) - set(allowed))
    if unknown:
        takes = f"allowed: {', '.join(allowed)}" if allowed else "this call takes none"
        raise ConfigError(f"unknown query parameter(s) {', '.join(map(repr, unknown))}; {takes}")
    if len(names) != len(set(names)):
        raise ConfigError("a query parameter is given more than once")
    return dict(request.query)


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
    """``{"requeue" (default true), "delay" (seconds, default 0), "reason"}``."""
    _only(body, NACK_FIELDS, "the nack")
    requeue, delay, reason = body.get("requeue", True), body.get("delay", 0), body.get("reason", "")
    if not isinstance(requeue, bool):
        raise ConfigError(f'"requeue" must be true or false, got {requeue!r}')
    if isinstance(delay, bool) or not isinstance(delay, int | float) or not 0 <= delay <= MAX_DELAY:
        raise ConfigError(f'"delay" must be a number of seconds from 0 to {MAX_DELAY}, got {delay!r}')
    if not isinstance(reason, str):
        raise ConfigError(f'"reason" must be a string, got {type(reason).__name__}')
    return requeue, float(delay), reason


def message_ids(body: dict[str, Any], what: str, limit: int) -> list[str]:
    """The ``ids`` of a redrive or acknowledgement request."""
    _only(body, ("ids",), what)
    ids = body.get("ids")
    if not isinstance(ids, list) or len(ids) > limit or not all(isinstance(i, str) for i in ids):
        raise ConfigError(f'"ids" is required: a list of at most {limit} message ids')
    return ids


# Response encoding.


def _timestamp(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def received_json(item: Incoming) -> dict[str, Any]:
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


def poisoned_json(record: PoisonRecord) -> dict[str, Any]:
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


# Bodies, read with a bound.


async def read_body(request: Request, limit: int, what: str) -> bytes:
    """The body, or 413 as soon as it is known to exceed ``limit`` bytes (before it is all read)."""
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLargeError(f"{what} is {request.content_length} bytes; at most {limit} are accepted")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.chunks():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"{what} is over {limit} bytes; at most {limit} are accepted")
        chunks.append(chunk)
    return b"".join(chunks)


T = TypeVar("T")


async def _off_loop(size: int, work: Callable[..., T], *args: Any) -> T:
    """``work(*args)``, in a worker thread when ``size`` bytes make it long enough to stall the loop."""
    if size > OFF_LOOP:
        return await asyncio.to_thread(work, *args)
    return work(*args)


def _json_send(body: bytes) -> SendRequest:
    return send_request_of_json(parse_json_object(body, "the body"))


def _received_text(items: list[Incoming]) -> str:
    return json.dumps({"messages": [received_json(i) for i in items]}, separators=(",", ":"))


def json_errors(request: Request, error: Exception) -> Response:
    """Every refusal as ``{"error": {"code", "message"}}``; an unexpected failure is logged and a 500."""
    if isinstance(error, GoQError):
        return refusal(error)
    if isinstance(error, HttpError) and error.status == 404:
        return error_response(404, f"no such endpoint: {request.path} (see /openapi.json)")
    if isinstance(error, HttpError):
        return error_response(error.status, str(error))
    log.error("REST %s %s failed", request.method, request.path, exc_info=error)
    return error_response(500, "internal error; see the sidecar's log")


class RestApi:
    """The handlers, over one engine."""

    def __init__(self, engine: QueueManager, large: LargeMessages | None = None) -> None:
        self.engine = engine
        self.large = large
        self.json_limit = 4 * -(-engine.max_payload // 3) + JSON_OVERHEAD

    async def send(self, request: Request) -> Response:
        if request.content_type == "application/json":
            body = await read_body(request, self.json_limit, "the JSON body")
            if request.query:
                raise ConfigError("a JSON send takes its fields from the body, not from the query string")
            send = await _off_loop(len(body), _json_send, body)
        elif request.content_type == "application/octet-stream" and self._is_large(request):
            return await self._large_send(request)
        elif request.content_type == "application/octet-stream":
            send = self._raw_send(request, await read_body(request, self.engine.max_payload, "the payload"))
        else:
            raise ConfigError(
                f"Content-Type must be application/json or application/octet-stream, got {request.content_type!r}"
            )
        (outcome,) = await self.engine.send_one(send)  # goes on if the application hangs up
        if isinstance(outcome, GoQError):
            raise outcome
        return json_response({"id": outcome.id, "state": outcome.state}, status=202)

    def _is_large(self, request: Request) -> bool:
        """A raw body over the chunk size, or of unknown length (chunked), streams: a large message."""
        length = request.content_length
        return self.large is not None and (length is None or length > self.large.threshold)

    async def _large_send(self, request: Request) -> Response:
        """The body streams into the store as it arrives; a declared length over the limit is refused
        (413) before any of it is read."""
        assert self.large is not None
        raw = self._raw_send(request, b"")
        send = LargeSend(to=raw.to, persistent=raw.persistent, id=raw.id, size=request.content_length)
        self.large.check(send)
        receipt = await self.large.send(send, request.chunks())
        return json_response({"id": receipt.id, "state": receipt.state}, status=202)

    async def expect_send(self, request: Request) -> Response | None:
        """``Expect: 100-continue`` (curl asks so for bodies over 1 MiB): a large send that will be
        refused anyway (over the limit, bad destination) is answered now, so the body is never sent."""
        if request.content_type == "application/octet-stream" and self._is_large(request):
            try:
                assert self.large is not None
                raw = self._raw_send(request, b"")
                self.large.check(
                    LargeSend(to=raw.to, persistent=raw.persistent, id=raw.id, size=request.content_length)
                )
            except GoQError as exc:
                return refusal(exc)
        return None

    async def payload(self, request: Request) -> Response:
        """A leased large message's payload, streamed (``Content-Length`` is its size)."""
        query_of(request)
        if self.large is None:
            raise NotFoundError("this sidecar holds no large messages")
        item = self.large.leased(request.params["id"])
        chunks = await self.large.payload(item)
        size = item.message.large.size if item.message.large is not None else 0
        return Response(content_type="application/octet-stream", stream=chunks, length=size)

    @staticmethod
    def _raw_send(request: Request, payload: bytes) -> SendRequest:
        query = query_of(request, "to", "persistent", "id")
        to = query.get("to")
        if to is None:
            raise ConfigError('query parameter "to" is required: "<identity>" or "<identity>.<namespace>"')
        persistent = parse_bool(query.get("persistent", "true"), "persistent")
        message_id = validate_message_id(query["id"]) if "id" in query else None
        return SendRequest(to=to, payload=payload, persistent=persistent, id=message_id)

    async def receive(self, request: Request) -> Response:
        query = query_of(request, "max", "wait")
        limit = parse_int(query.get("max"), "max", DEFAULT_RECEIVE, 1, MAX_RECEIVE)
        wait = parse_seconds(query.get("wait"), "wait", MAX_WAIT)
        items = await self._lease(limit, wait)
        size = sum(len(i.message.payload) for i in items)
        text = await _off_loop(size, _received_text, items)
        return Response(body=text.encode(), content_type="application/json")

    async def _lease(self, limit: int, wait: float) -> list[Incoming]:
        """Up to ``limit`` messages whose payloads add up to at most ``RESPONSE_BUDGET`` bytes: each
        call to the engine leases no more than would fit if every one were as large as allowed."""
        largest = self.engine.max_payload
        items = await self.engine.receive(max(1, min(limit, RESPONSE_BUDGET // largest)), wait)
        room = RESPONSE_BUDGET - sum(len(i.message.payload) for i in items)
        while items and (count := min(limit - len(items), room // largest)) > 0:
            more = await self.engine.receive(count, 0)
            if not more:
                break
            items += more
            room -= sum(len(i.message.payload) for i in more)
        return items

    async def ack(self, request: Request) -> Response:
        query_of(request)
        message_id = request.params["id"]
        if self.engine.acknowledge([message_id]):
            raise NotFoundError(
                f"message {message_id!r} is not leased to the application "
                "(never received, already acknowledged, or its lease ran out)"
            )
        return Response(status=204)

    async def ack_many(self, request: Request) -> Response:
        """Why: a consumer of a batch paid one request per message to acknowledge it."""
        query_of(request)
        body = parse_json_object(await read_body(request, SMALL_BODY, "the acknowledgement body"), "the body")
        return json_response({"unknown": self.engine.acknowledge(message_ids(body, "the acknowledgement", MAX_ACK))})

    async def nack(self, request: Request) -> Response:
        query_of(request)
        body = await read_body(request, SMALL_BODY, "the nack body")
        requeue, delay, reason = nack_arguments(parse_json_object(body, "the nack body") if body.strip() else {})
        await self.engine.reject(request.params["id"], requeue=requeue, delay=delay, reason=reason)
        return Response(status=204)

    async def stats(self, request: Request) -> Response:
        query_of(request)
        stats = self.engine.stats()
        c = stats.counters
        return json_response(
            {
                "identity": stats.identity,
                "sendQueue": stats.send_queue,
                "receiveQueue": stats.receive_queue,
                "inFlight": stats.in_flight,
                "sent": c.sent,
                "delivered": c.delivered,
                "received": c.received,
                "acknowledged": c.acknowledged,
                "poisoned": sum(c.poisoned.values()),
                "duplicates": c.duplicates,
                "refused": sum(c.refused.values()),
                **{_camel(k): v for k, v in large_stats(self.large).items()},
            }
        )

    async def poisoned(self, request: Request) -> Response:
        limit = parse_int(query_of(request, "limit").get("limit"), "limit", DEFAULT_POISON_LIST, 1, MAX_POISON_LIST)
        records = await self.engine.poisoned(limit)
        return json_response({"messages": [poisoned_json(r) for r in records]})

    async def redrive(self, request: Request) -> Response:
        query_of(request)
        body = parse_json_object(await read_body(request, SMALL_BODY, "the redrive body"), "the body")
        ids = message_ids(body, "the redrive request", MAX_REDRIVE)
        return json_response({"ids": await asyncio.shield(self.engine.redrive(ids))})

    async def openapi(self, request: Request) -> Response:
        return json_response(openapi_document(self.engine.max_payload))


def _camel(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(w.title() for w in rest)


def rest_routes(engine: QueueManager, large: LargeMessages | None = None) -> Router:
    """The REST API's routes for ``engine``: exactly those of ``/openapi.json``."""
    api = RestApi(engine, large)
    routes = Router(json_errors)
    routes.add("POST", "/v1/messages", api.send, expect=api.expect_send)
    routes.add("GET", "/v1/messages", api.receive)
    routes.add("POST", "/v1/messages/ack", api.ack_many)
    routes.add("POST", "/v1/messages/{id}/ack", api.ack)
    routes.add("POST", "/v1/messages/{id}/nack", api.nack)
    routes.add("GET", "/v1/messages/{id}/payload", api.payload)
    routes.add("GET", "/v1/stats", api.stats)
    routes.add("GET", "/v1/poison", api.poisoned)
    routes.add("POST", "/v1/poison/redrive", api.redrive)
    routes.add("GET", "/openapi.json", api.openapi)
    return routes
