"""The REST API's request and response schemas (``components.schemas`` of ``/openapi.json``).

Written from the limits and patterns the handlers enforce (``rest_limits``) and the error codes both APIs answer
with (``statuses``); ``openapi`` puts them into the document beside the paths.
"""

from typing import Any

from goq.messages import MAX_HEADER_VALUE, MAX_HEADERS
from goq.sidecar.apis.rest_limits import (
    ADDRESS_PATTERN,
    BASE64_PATTERN,
    HEADER_NAME_PATTERN,
    ID_PATTERN,
    MAX_ACK,
    MAX_DELAY,
    MAX_REDRIVE,
)
from goq.sidecar.apis.statuses import ERROR_CODES


def schemas(max_payload: int) -> dict[str, Any]:
    base64_length = 4 * -(-max_payload // 3)
    headers = {
        "type": "object",
        "maxProperties": MAX_HEADERS,
        "propertyNames": {"pattern": HEADER_NAME_PATTERN},
        "additionalProperties": {"type": "string", "maxLength": MAX_HEADER_VALUE},
        "description": f"At most {MAX_HEADERS} headers; names of letters, digits and '._:/-'.",
    }
    return {
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {
                        "code": {
                            "type": "string",
                            "enum": sorted(set(ERROR_CODES.values())),
                        },
                        "message": {"type": "string"},
                    },
                }
            },
        },
        "SendMessage": {
            "type": "object",
            "required": ["to", "payload"],
            "additionalProperties": False,
            "properties": {
                "to": {"type": "string", "pattern": ADDRESS_PATTERN, "description": "The destination identity."},
                "payload": {
                    "type": "string",
                    "pattern": BASE64_PATTERN,
                    "maxLength": base64_length,
                    "description": f"The message bytes, standard base64; at most {max_payload} bytes decoded.",
                },
                "persistent": {"type": "boolean", "default": True, "description": "Kept in MongoDB until delivered."},
                "headers": headers,
                "id": {"type": "string", "pattern": ID_PATTERN, "description": "An idempotency key."},
            },
        },
        "SendReceipt": {
            "type": "object",
            "required": ["id", "state"],
            "properties": {
                "id": {"type": "string"},
                "state": {
                    "type": "string",
                    "enum": ["queued", "poisoned"],
                    "description": "poisoned: the send queue was full and its overflow policy is poison.",
                },
            },
        },
        "ReceivedMessage": {
            "type": "object",
            "required": ["id", "from", "to", "payload", "headers", "persistent", "attempt", "sentAt"],
            "properties": {
                "id": {"type": "string"},
                "from": {"type": "string", "description": "<identity>.<namespace> of the sender."},
                "to": {"type": "string"},
                "payload": {"type": "string", "contentEncoding": "base64"},
                "headers": {"type": "object", "additionalProperties": {"type": "string"}},
                "persistent": {"type": "boolean"},
                "attempt": {"type": "integer", "minimum": 1, "description": "Hand-overs so far, this one included."},
                "sentAt": {"type": "string", "format": "date-time"},
                "large": {
                    "type": "boolean",
                    "description": "A large message: payload is empty; GET /v1/messages/{id}/payload streams it.",
                },
                "payloadSize": {"type": "integer", "minimum": 0, "description": "The payload's length in bytes."},
            },
        },
        "ReceivedMessages": {
            "type": "object",
            "required": ["messages"],
            "properties": {"messages": {"type": "array", "items": {"$ref": "#/components/schemas/ReceivedMessage"}}},
        },
        "Nack": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "requeue": {
                    "type": "boolean",
                    "default": True,
                    "description": "true: give it back (after delay); false: to the poison queue now.",
                },
                "delay": {"type": "number", "minimum": 0, "maximum": MAX_DELAY, "default": 0},
                "reason": {"type": "string", "default": "", "description": "Kept with a poisoned message."},
            },
        },
        "Stats": {
            "type": "object",
            "required": [
                "identity",
                "sendQueue",
                "receiveQueue",
                "inFlight",
                "sent",
                "delivered",
                "received",
                "acknowledged",
                "poisoned",
                "duplicates",
                "refused",
            ],
            "properties": {
                "identity": {"type": "string"},
                **{
                    name: {"type": "integer", "minimum": 0}
                    for name in (
                        "sendQueue",
                        "receiveQueue",
                        "inFlight",
                        "sent",
                        "delivered",
                        "received",
                        "acknowledged",
                        "poisoned",
                        "duplicates",
                        "refused",
                        "largeBytesUploaded",
                        "largeBytesReceived",
                        "largeBytesInProgress",
                        "largeTransfersResumed",
                    )
                },
            },
            "description": (
                "largeBytesUploaded and largeBytesReceived: payload bytes of large messages taken from the "
                "application and from peers; largeBytesInProgress: bytes of bodies being received now; "
                "largeTransfersResumed: transfers from peers that continued after a break."
            ),
        },
        "PoisonedMessage": {
            "type": "object",
            "required": ["id", "direction", "peer", "reason", "detail", "attempts", "poisonedAt", "persistent"],
            "properties": {
                "id": {"type": "string"},
                "direction": {"type": "string", "enum": ["outbound", "inbound"]},
                "peer": {"type": "string", "description": "The destination (outbound) or the source (inbound)."},
                "reason": {
                    "type": "string",
                    "description": "max-attempts, max-age, overflow, rejected, max-deliveries or nack.",
                },
                "detail": {"type": "string"},
                "attempts": {"type": "integer", "minimum": 0},
                "poisonedAt": {"type": "string", "format": "date-time"},
                "persistent": {"type": "boolean"},
                "payload": {"type": "string", "contentEncoding": "base64"},
                "headers": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        },
        "PoisonedMessages": {
            "type": "object",
            "required": ["messages"],
            "properties": {"messages": {"type": "array", "items": {"$ref": "#/components/schemas/PoisonedMessage"}}},
        },
        "Acks": {
            "type": "object",
            "required": ["ids"],
            "additionalProperties": False,
            "properties": {"ids": {"type": "array", "maxItems": MAX_ACK, "items": {"type": "string"}}},
        },
        "Acknowledged": {
            "type": "object",
            "required": ["unknown"],
            "properties": {"unknown": {"type": "array", "items": {"type": "string"}}},
        },
        "Redrive": {
            "type": "object",
            "required": ["ids"],
            "additionalProperties": False,
            "properties": {"ids": {"type": "array", "maxItems": MAX_REDRIVE, "items": {"type": "string"}}},
        },
        "Redriven": {
            "type": "object",
            "required": ["ids"],
            "properties": {"ids": {"type": "array", "items": {"type": "string"}}},
        },
    }
