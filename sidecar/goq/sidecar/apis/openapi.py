"""The REST API's OpenAPI 3.1 document, served at ``/openapi.json``.

It is built from the same limits and patterns the handlers enforce (``rest_limits``), so that what the
document allows is what the server accepts; the schema-driven fuzz test holds the two together. The paths
are here, the request and response schemas in ``openapi_schemas``.
"""

from typing import Any

from goq.sidecar.apis.http_server import BODY_TIMEOUT, HEAD_TIMEOUT
from goq.sidecar.apis.openapi_schemas import schemas
from goq.sidecar.apis.rest_limits import (
    ADDRESS_PATTERN,
    DEFAULT_POISON_LIST,
    DEFAULT_RECEIVE,
    ID_PATTERN,
    MAX_POISON_LIST,
    MAX_RECEIVE,
    MAX_WAIT,
)


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _json(description: str, schema: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


_BAD = _error("The request is invalid; the message says what is wrong and what is allowed.")
_NOT_FOUND = _error("The message is not leased to the application.")
_MESSAGE_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "description": "A message id, as received.",
    "schema": {"type": "string", "pattern": ID_PATTERN},
}


def _paths() -> dict[str, Any]:
    return {
        "/v1/messages": {
            "post": {
                "operationId": "send",
                "summary": "Send a message (gRPC: Send).",
                "description": (
                    "A JSON body, or the raw payload as application/octet-stream with to, persistent and id in "
                    "the query string (only then). A persistent message is durable in MongoDB before the answer. "
                    "A raw body over 1 MiB (GOQ_LARGE_CHUNK_BYTES), or sent chunked without Content-Length, is a "
                    "large message: it streams into GridFS (persistent) or the spill area (transient) as it "
                    "arrives, up to the GoQueue's maxMessageSize (at most 4 GiB); a Content-Length over that "
                    "limit is refused with 413 before any of the body is read."
                ),
                "parameters": [
                    {
                        "name": "to",
                        "in": "query",
                        "description": "With application/octet-stream only, and then required: the destination.",
                        "schema": {"type": "string", "pattern": ADDRESS_PATTERN},
                    },
                    {
                        "name": "persistent",
                        "in": "query",
                        "description": "With application/octet-stream only: true (default) or false.",
                        "schema": {"type": "boolean", "default": True},
                    },
                    {
                        "name": "id",
                        "in": "query",
                        "description": "With application/octet-stream only: an idempotency key.",
                        "schema": {"type": "string", "pattern": ID_PATTERN},
                    },
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/SendMessage"}},
                        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                    },
                },
                "responses": {
                    "202": _json("Accepted: queued for delivery, or poisoned (send queue full).", "SendReceipt"),
                    "400": _BAD,
                    "413": _error("The payload is over the size limit; nothing was stored."),
                    "429": _error(
                        "The send queue is full and its overflow policy is reject, or the spill area for "
                        "transient large messages is full; retry later."
                    ),
                    "503": _error("A persistent message could not be made durable; nothing was accepted."),
                },
            },
            "get": {
                "operationId": "receive",
                "summary": "Receive (lease) messages, waiting up to wait seconds for one (gRPC: Receive).",
                "description": (
                    "Each message handed out is leased: acknowledge it, or it is handed out again when the lease "
                    "(GOQ_LEASE) runs out. One answer carries at most 16 MiB of payload, counting each message "
                    "as large as the payload limit allows, so fewer than max may come back; ask again."
                ),
                "parameters": [
                    {
                        "name": "max",
                        "in": "query",
                        "description": f"Most messages to return (default {DEFAULT_RECEIVE}).",
                        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_RECEIVE, "default": DEFAULT_RECEIVE},
                    },
                    {
                        "name": "wait",
                        "in": "query",
                        "description": "Seconds to wait for a first message (default 0: answer at once).",
                        "schema": {"type": "number", "minimum": 0, "maximum": MAX_WAIT, "default": 0},
                    },
                ],
                "responses": {"200": _json("The messages leased, maybe none.", "ReceivedMessages"), "400": _BAD},
            },
        },
        "/v1/messages/ack": {
            "post": {
                "operationId": "ackMany",
                "summary": "Done with many messages at once (gRPC: Ack).",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Acks"}}},
                },
                "responses": {
                    "200": _json("Acknowledged; the ids that were not leased are listed.", "Acknowledged"),
                    "400": _BAD,
                },
            }
        },
        "/v1/messages/{id}/ack": {
            "post": {
                "operationId": "ack",
                "summary": "Done with a message (gRPC: Ack).",
                "parameters": [_MESSAGE_ID],
                "responses": {"204": {"description": "Acknowledged."}, "404": _NOT_FOUND},
            }
        },
        "/v1/messages/{id}/nack": {
            "post": {
                "operationId": "nack",
                "summary": "Give a message back, or send it to the poison queue (gRPC: Nack).",
                "parameters": [_MESSAGE_ID],
                "requestBody": {
                    "required": False,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Nack"}}},
                },
                "responses": {"204": {"description": "Given back or poisoned."}, "400": _BAD, "404": _NOT_FOUND},
            }
        },
        "/v1/messages/{id}/payload": {
            "get": {
                "operationId": "readPayload",
                "summary": "A leased large message's payload, streamed (gRPC: ReadPayload).",
                "description": "For a received message with large true, while leased; Content-Length is its size.",
                "parameters": [_MESSAGE_ID],
                "responses": {
                    "200": {
                        "description": "The payload.",
                        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
                    },
                    "404": _error("The message is not leased to the application, or not a large message."),
                    "503": _error("MongoDB could not be read."),
                },
            }
        },
        "/v1/stats": {
            "get": {
                "operationId": "stats",
                "summary": "Queue depths and counters since start (gRPC: Stats).",
                "responses": {"200": _json("The figures.", "Stats")},
            }
        },
        "/v1/poison": {
            "get": {
                "operationId": "listPoisoned",
                "summary": "The newest messages of this identity's poison queue (gRPC: ListPoisoned).",
                "parameters": [
                    {
                        "name": "limit",
                        "in": "query",
                        "description": f"Most messages to list (default {DEFAULT_POISON_LIST}).",
                        "schema": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": MAX_POISON_LIST,
                            "default": DEFAULT_POISON_LIST,
                        },
                    }
                ],
                "responses": {
                    "200": _json("Poisoned messages, newest first.", "PoisonedMessages"),
                    "400": _error("A bad limit, or a poison sink that keeps nothing to list (use type: mongodb)."),
                    "503": _error("MongoDB could not be read."),
                },
            }
        },
        "/v1/poison/redrive": {
            "post": {
                "operationId": "redrive",
                "summary": "Hand poisoned messages back for delivery or consumption (gRPC: Redrive).",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Redrive"}}},
                },
                "responses": {
                    "200": _json("The ids handed back; ids not in the poison queue are left out.", "Redriven"),
                    "400": _BAD,
                    "503": _error("MongoDB could not be read or written."),
                },
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document.",
                "responses": {"200": {"description": "The OpenAPI document.", "content": {"application/json": {}}}},
            }
        },
    }


def openapi_document(max_payload: int) -> dict[str, Any]:
    """The document for a sidecar whose payload limit is ``max_payload`` bytes."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "GoQ sidecar application API",
            "version": "v1",
            "description": (
                "What an application asks of its GoQ sidecar on 127.0.0.1:7700. The same calls exist over "
                'gRPC (goq.v1.QueueManager on 127.0.0.1:7701). Errors are {"error": {"code", "message"}}. '
                "JSON bodies are UTF-8 without a byte-order mark, with no key twice in one object; others "
                f"are refused (400). A request head must arrive within {HEAD_TIMEOUT:g} s and a body may not "
                f"pause for {BODY_TIMEOUT:g} s (408, then the connection closes)."
            ),
        },
        "paths": _paths(),
        "components": {"schemas": schemas(max_payload)},
    }
