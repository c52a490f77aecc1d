"""The REST API's operations: the one table the server routes with (``rest_api.rest_routes``) and the OpenAPI
document's paths are written from (``openapi``). Each names its parameters, bodies and answers by the types of
``rest_types``; a route the server has is in the document, and the other way round.
"""

from dataclasses import dataclass, field
from typing import Any, Final

from goq.sidecar.apis.rest_types import (
    Acknowledged,
    Acks,
    Error,
    MessagePath,
    Nack,
    PoisonedMessages,
    PoisonQuery,
    RawSendQuery,
    ReceivedMessages,
    ReceiveQuery,
    Redrive,
    Redriven,
    SendMessage,
    SendReceipt,
    Stats,
)

JSON: Final = "application/json"
BINARY: Final = "application/octet-stream"


@dataclass(frozen=True)
class Answer:
    """One documented answer: its description and body (a type of ``rest_types``, ``BINARY``, or none)."""

    description: str
    body: Any = None


@dataclass(frozen=True)
class Operation:
    """One route: ``operation_id`` names the handler that serves it."""

    method: str
    path: str
    operation_id: str
    summary: str
    answers: dict[int, Answer]
    description: str = ""
    query: Any = None
    """A ``TypedDict`` of its query parameters (none: it takes none)."""
    path_params: Any = None
    bodies: dict[str, Any] = field(default_factory=dict)
    """Media type -> the body's type (``BINARY``: raw bytes)."""
    body_required: bool = True


def _error(description: str) -> Answer:
    return Answer(description, Error)


BAD: Final = _error("The request is invalid; the message says what is wrong and what is allowed.")
NOT_LEASED: Final = _error("The message is not leased to the application.")
UNREADABLE: Final = _error("MongoDB could not be read.")
TOO_LARGE: Final = _error("The body is over its size limit; nothing was done.")
"""Every operation that takes a body may answer it (``rest_api.read_body``)."""

OPERATIONS: Final = (
    Operation(
        "POST",
        "/v1/messages",
        "send",
        "Send a message (gRPC: Send).",
        description=(
            "A JSON body, or the raw payload as application/octet-stream with to, persistent and id in "
            "the query string (only then). A persistent message is durable in MongoDB before the answer. "
            "A raw body over 1 MiB (GOQ_LARGE_CHUNK_BYTES), or sent chunked without Content-Length, is a "
            "large message: it streams into GridFS (persistent) or the spill area (transient) as it "
            "arrives, up to the GoQueue's maxMessageSize (at most 4 GiB); a Content-Length over that "
            "limit is refused with 413 before any of the body is read."
        ),
        query=RawSendQuery,
        bodies={JSON: SendMessage, BINARY: BINARY},
        answers={
            202: Answer("Accepted: queued for delivery, or poisoned (send queue full).", SendReceipt),
            400: BAD,
            413: _error("The payload is over the size limit; nothing was stored."),
            429: _error(
                "The send queue is full and its overflow policy is reject, or the spill area for "
                "transient large messages is full; retry later."
            ),
            503: _error("A persistent message could not be made durable; nothing was accepted."),
        },
    ),
    Operation(
        "GET",
        "/v1/messages",
        "receive",
        "Receive (lease) messages, waiting up to wait seconds for one (gRPC: Receive).",
        description=(
            "Each message handed out is leased: acknowledge it, or it is handed out again when the lease "
            "(GOQ_LEASE) runs out. One answer carries at most 16 MiB of payload, counting each message "
            "as large as the payload limit allows, so fewer than max may come back; ask again."
        ),
        query=ReceiveQuery,
        answers={200: Answer("The messages leased, maybe none.", ReceivedMessages), 400: BAD},
    ),
    Operation(
        "POST",
        "/v1/messages/ack",
        "ackMany",
        "Done with many messages at once (gRPC: Ack).",
        bodies={JSON: Acks},
        answers={
            200: Answer("Acknowledged; the ids that were not leased are listed.", Acknowledged),
            400: BAD,
            413: TOO_LARGE,
        },
    ),
    Operation(
        "POST",
        "/v1/messages/{id}/ack",
        "ack",
        "Done with a message (gRPC: Ack).",
        path_params=MessagePath,
        answers={204: Answer("Acknowledged."), 404: NOT_LEASED},
    ),
    Operation(
        "POST",
        "/v1/messages/{id}/nack",
        "nack",
        "Give a message back, or send it to the poison queue (gRPC: Nack).",
        path_params=MessagePath,
        bodies={JSON: Nack},
        body_required=False,
        answers={204: Answer("Given back or poisoned."), 400: BAD, 404: NOT_LEASED, 413: TOO_LARGE},
    ),
    Operation(
        "GET",
        "/v1/messages/{id}/payload",
        "readPayload",
        "A leased large message's payload, streamed (gRPC: ReadPayload).",
        description="For a received message with large true, while leased; Content-Length is its size.",
        path_params=MessagePath,
        answers={
            200: Answer("The payload.", BINARY),
            404: _error("The message is not leased to the application, or not a large message."),
            503: UNREADABLE,
        },
    ),
    Operation(
        "GET",
        "/v1/stats",
        "stats",
        "Queue depths and counters since start (gRPC: Stats).",
        answers={200: Answer("The figures.", Stats)},
    ),
    Operation(
        "GET",
        "/v1/poison",
        "listPoisoned",
        "The newest messages of this identity's poison queue (gRPC: ListPoisoned).",
        query=PoisonQuery,
        answers={
            200: Answer("Poisoned messages, newest first.", PoisonedMessages),
            400: _error("A bad limit, or a poison sink that keeps nothing to list (use type: mongodb)."),
            503: UNREADABLE,
        },
    ),
    Operation(
        "POST",
        "/v1/poison/redrive",
        "redrive",
        "Hand poisoned messages back for delivery or consumption (gRPC: Redrive).",
        bodies={JSON: Redrive},
        answers={
            200: Answer("The ids handed back; ids not in the poison queue are left out.", Redriven),
            400: BAD,
            413: TOO_LARGE,
            503: _error("MongoDB could not be read or written."),
        },
    ),
    Operation(
        "GET",
        "/openapi.json",
        "openapi",
        "This document.",
        answers={200: Answer("The OpenAPI document.", JSON)},
    ),
)
