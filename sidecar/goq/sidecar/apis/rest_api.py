"""The application's REST API (127.0.0.1:7700): a thin JSON layer over the engine, as gRPC is.

Each handler decodes the request, calls one ``QueueManager`` method and encodes its answer; engine
errors become HTTP statuses through the table gRPC reads too (``goq.sidecar.apis.statuses``), so both APIs
refuse the same things for the same reasons. Bad input is always a 4xx with
``{"error": {"code", "message"}}``; request bodies are read only up to a bound derived from the
payload limit, so an oversized upload is refused without being held in memory.
"""

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any, Final, TypeVar

from goq.errors import ConfigError, GoQError
from goq.messages import MAX_HEADER_NAME, MAX_HEADER_VALUE, MAX_HEADERS
from goq.sidecar.apis.http_protocol import HttpError, Request, Response
from goq.sidecar.apis.http_routing import Handler, Router
from goq.sidecar.apis.openapi import openapi_document
from goq.sidecar.apis.rest_json import (
    message_ids,
    nack_arguments,
    parse_json_object,
    poisoned_json,
    query_of,
    received_json,
    send_request_of_json,
)
from goq.sidecar.apis.rest_operations import OPERATIONS
from goq.sidecar.apis.rest_types import (
    Acknowledged,
    Acks,
    PoisonedMessages,
    PoisonQuery,
    RawSendQuery,
    ReceivedMessages,
    ReceiveQuery,
    Redrive,
    Redriven,
    SendReceipt,
)
from goq.sidecar.apis.stats_values import stats_json
from goq.sidecar.apis.statuses import code_of_http, status_of
from goq.sidecar.core.engine import QueueManager, SendRequest
from goq.sidecar.domain.errors import NotFoundError, PayloadTooLargeError
from goq.sidecar.domain.records import Incoming
from goq.sidecar.large.service import LargeMessages
from goq.sidecar.large.uploading import LargeSend

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


def json_response(value: Any, status: int = 200) -> Response:
    return Response(status, json.dumps(value).encode(), "application/json")


def error_response(status: int, message: str) -> Response:
    """``{"error": {"code", "message"}}`` with ``status``."""
    return json_response({"error": {"code": code_of_http(status), "message": message}}, status=status)


def refusal(error: GoQError) -> Response:
    """``error`` as the REST API says it (``goq.sidecar.apis.statuses``)."""
    status = status_of(error)
    return json_response({"error": {"code": status.code, "message": str(error)}}, status=status.http)


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
    answer: ReceivedMessages = {"messages": [received_json(i) for i in items]}
    return json.dumps(answer, separators=(",", ":"))


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
        answer: SendReceipt = {"id": outcome.id, "state": outcome.state}
        return json_response(answer, status=202)

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
        answer: SendReceipt = {"id": receipt.id, "state": receipt.state}
        return json_response(answer, status=202)

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
        query = query_of(request, RawSendQuery)
        to = query.get("to")
        if to is None:
            raise ConfigError('query parameter "to" is required: "<identity>" or "<identity>.<namespace>"')
        return SendRequest(to=to, payload=payload, persistent=query["persistent"], id=query.get("id"))

    async def receive(self, request: Request) -> Response:
        query = query_of(request, ReceiveQuery)
        items = await self._lease(query["max"], query["wait"])
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
        answer: Acknowledged = {"unknown": self.engine.acknowledge(message_ids(Acks, body, "the acknowledgement"))}
        return json_response(answer)

    async def nack(self, request: Request) -> Response:
        query_of(request)
        body = await read_body(request, SMALL_BODY, "the nack body")
        requeue, delay, reason = nack_arguments(parse_json_object(body, "the nack body") if body.strip() else {})
        await self.engine.reject(request.params["id"], requeue=requeue, delay=delay, reason=reason)
        return Response(status=204)

    async def stats(self, request: Request) -> Response:
        query_of(request)
        return json_response(stats_json(self.engine, self.large))

    async def poisoned(self, request: Request) -> Response:
        records = await self.engine.poisoned(query_of(request, PoisonQuery)["limit"])
        answer: PoisonedMessages = {"messages": [poisoned_json(r) for r in records]}
        return json_response(answer)

    async def redrive(self, request: Request) -> Response:
        query_of(request)
        body = parse_json_object(await read_body(request, SMALL_BODY, "the redrive body"), "the body")
        ids = message_ids(Redrive, body, "the redrive request")
        answer: Redriven = {"ids": await asyncio.shield(self.engine.redrive(ids))}
        return json_response(answer)

    async def openapi(self, request: Request) -> Response:
        return json_response(openapi_document(self.engine.max_payload))


def rest_routes(engine: QueueManager, large: LargeMessages | None = None) -> Router:
    """The REST API's routes for ``engine``: one per operation of ``rest_operations`` (``/openapi.json``'s
    paths), served by the handler of its ``operation_id``."""
    api = RestApi(engine, large)
    handlers: dict[str, Handler] = {
        "send": api.send,
        "receive": api.receive,
        "ackMany": api.ack_many,
        "ack": api.ack,
        "nack": api.nack,
        "readPayload": api.payload,
        "stats": api.stats,
        "listPoisoned": api.poisoned,
        "redrive": api.redrive,
        "openapi": api.openapi,
    }
    expects = {"send": api.expect_send}
    unserved = {op.operation_id for op in OPERATIONS} ^ set(handlers)
    if unserved:
        raise AssertionError(f"operations and handlers differ: {sorted(unserved)}")
    routes = Router(json_errors)
    for op in OPERATIONS:
        routes.add(op.method, op.path, handlers[op.operation_id], expect=expects.get(op.operation_id))
    return routes
