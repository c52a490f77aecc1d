"""The REST API's request and response types: what ``rest_json`` decodes and encodes, and what the OpenAPI
document's schemas are written from (``typed_json``). A field added here is in the document by construction.

Limits and patterns come from ``rest_limits`` and the domain (``goq.messages``, ``goq.identity``); the figures of
``Stats`` from ``goq.stats_fields``.
"""

from typing import Annotated, Any, NotRequired, TypedDict

from goq.messages import MAX_HEADER_VALUE, MAX_HEADERS, validate_message_id
from goq.sidecar.apis.rest_limits import (
    ADDRESS_PATTERN,
    BASE64_PATTERN,
    DEFAULT_POISON_LIST,
    DEFAULT_RECEIVE,
    HEADER_NAME_PATTERN,
    ID_PATTERN,
    MAX_ACK,
    MAX_DELAY,
    MAX_POISON_LIST,
    MAX_RECEIVE,
    MAX_REDRIVE,
    MAX_WAIT,
)
from goq.sidecar.apis.statuses import ERROR_CODES
from goq.sidecar.apis.typed_json import Check, Component, Doc, PayloadRules, Rules
from goq.stats_fields import STATS

Headers = Annotated[
    dict[str, Annotated[str, Rules(maxLength=MAX_HEADER_VALUE)]],
    Doc(f"At most {MAX_HEADERS} headers; names of letters, digits and '._:/-'."),
    Rules(maxProperties=MAX_HEADERS, propertyNames={"pattern": HEADER_NAME_PATTERN}, examples=[{"kind": "invoice"}]),
]
MessageId = Annotated[str, Rules(pattern=ID_PATTERN), Check(validate_message_id)]


def _payload(max_payload: int) -> dict[str, Any]:
    return {
        "pattern": BASE64_PATTERN,
        "maxLength": 4 * -(-max_payload // 3),
        "description": f"The message bytes, standard base64; at most {max_payload} bytes decoded.",
    }


# Requests: bodies (no other fields allowed), query strings and paths.


class SendMessage(TypedDict):
    """A message to send."""

    to: Annotated[
        str,
        Doc("The destination identity.", expect='"<identity>" or "<identity>.<namespace>"'),
        Rules(pattern=ADDRESS_PATTERN, examples=["billing", "billing.shop"]),
    ]
    payload: Annotated[
        str,
        Doc("The message bytes.", expect='the message bytes in standard base64 ("" for none)'),
        PayloadRules(_payload),
    ]
    persistent: NotRequired[Annotated[bool, Doc("Kept in MongoDB until delivered."), Rules(default=True)]]
    headers: NotRequired[Headers]
    id: NotRequired[Annotated[MessageId, Doc("An idempotency key."), Rules(examples=["order-42"])]]


class Nack(TypedDict, total=False):
    """How to give a leased message back."""

    requeue: Annotated[
        bool, Doc("true: give it back (after delay); false: to the poison queue now."), Rules(default=True)
    ]
    delay: Annotated[
        float,
        Doc("Seconds before it is handed out again.", expect=f"a number of seconds from 0 to {MAX_DELAY}"),
        Rules(minimum=0, maximum=MAX_DELAY, default=0),
    ]
    reason: Annotated[str, Doc("Kept with a poisoned message."), Rules(default="")]


class Acks(TypedDict):
    """The leased messages the application is done with."""

    ids: Annotated[
        list[str],
        Doc("Message ids, as received.", expect=f"a list of at most {MAX_ACK} message ids"),
        Rules(maxItems=MAX_ACK),
    ]


class Redrive(TypedDict):
    """Poisoned messages to hand back."""

    ids: Annotated[
        list[str],
        Doc("Poisoned messages' ids.", expect=f"a list of at most {MAX_REDRIVE} message ids"),
        Rules(maxItems=MAX_REDRIVE),
    ]


class RawSendQuery(TypedDict, total=False):
    to: Annotated[
        str,
        Doc("With application/octet-stream only, and then required: the destination."),
        Rules(pattern=ADDRESS_PATTERN),
    ]
    persistent: Annotated[
        bool, Doc("With application/octet-stream only: true (default) or false."), Rules(default=True)
    ]
    id: Annotated[MessageId, Doc("With application/octet-stream only: an idempotency key.")]


class ReceiveQuery(TypedDict, total=False):
    max: Annotated[
        int,
        Doc(f"Most messages to return (default {DEFAULT_RECEIVE})."),
        Rules(minimum=1, maximum=MAX_RECEIVE, default=DEFAULT_RECEIVE),
    ]
    wait: Annotated[
        float,
        Doc("Seconds to wait for a first message (default 0: answer at once)."),
        Rules(minimum=0, maximum=MAX_WAIT, default=0),
    ]


class PoisonQuery(TypedDict, total=False):
    limit: Annotated[
        int,
        Doc(f"Most messages to list (default {DEFAULT_POISON_LIST})."),
        Rules(minimum=1, maximum=MAX_POISON_LIST, default=DEFAULT_POISON_LIST),
    ]


class MessagePath(TypedDict):
    id: Annotated[MessageId, Doc("A message id, as received.")]


# Answers.


class _ErrorDetail(TypedDict):
    code: Annotated[str, Rules(enum=sorted(set(ERROR_CODES.values())))]
    message: Annotated[str, Doc("What was wrong and what is allowed.")]


class Error(TypedDict):
    """A refusal: every answer of 400 or more."""

    error: _ErrorDetail


class SendReceipt(TypedDict):
    """The sidecar took the message."""

    id: str
    state: Annotated[
        str,
        Doc("poisoned: the send queue was full and its overflow policy is poison."),
        Rules(enum=["queued", "poisoned"]),
    ]


Timestamp = Annotated[str, Rules(format="date-time")]
Base64 = Annotated[str, Rules(contentEncoding="base64")]
PlainHeaders = dict[str, str]

ReceivedMessage = TypedDict(
    "ReceivedMessage",
    {
        "id": str,
        "from": Annotated[str, Doc("<identity>.<namespace> of the sender.")],
        "to": str,
        "payload": Base64,
        "headers": PlainHeaders,
        "persistent": bool,
        "attempt": Annotated[int, Doc("Hand-overs so far, this one included."), Rules(minimum=1)],
        "sentAt": Timestamp,
        "large": NotRequired[
            Annotated[bool, Doc("A large message: payload is empty; GET /v1/messages/{id}/payload streams it.")]
        ],
        "payloadSize": NotRequired[Annotated[int, Doc("The payload's length in bytes."), Rules(minimum=0)]],
    },
)
ReceivedMessage.__doc__ = "A message leased to the application: acknowledge it, or it is handed out again."


class ReceivedMessages(TypedDict):
    """The messages leased, maybe none."""

    messages: list[ReceivedMessage]


class PoisonedMessage(TypedDict):
    """A message in the poison queue, with why it is there."""

    id: str
    direction: Annotated[str, Rules(enum=["outbound", "inbound"])]
    peer: Annotated[str, Doc("The destination (outbound) or the source (inbound).")]
    reason: Annotated[str, Doc("max-attempts, max-age, overflow, rejected, max-deliveries or nack.")]
    detail: str
    attempts: Annotated[int, Rules(minimum=0)]
    poisonedAt: Timestamp
    persistent: bool
    payload: NotRequired[Base64]
    headers: NotRequired[PlainHeaders]


class PoisonedMessages(TypedDict):
    """Poisoned messages, newest first."""

    messages: list[PoisonedMessage]


class Acknowledged(TypedDict):
    """What an acknowledgement of many did."""

    unknown: Annotated[list[str], Doc("The ids that were not leased (not an error).")]


class Redriven(TypedDict):
    """What a redrive did."""

    ids: Annotated[list[str], Doc("The ids handed back; ids not in the poison queue are left out.")]


def _stats(max_payload: int) -> dict[str, Any]:
    def figure(kind: str, description: str) -> dict[str, Any]:
        if kind == "text":
            return {"type": "string", "description": description}
        return {"type": "integer", "minimum": 0, "description": description}

    return {
        "type": "object",
        "required": [f.json_name for f in STATS],
        "properties": {f.json_name: figure(f.kind, f.description) for f in STATS},
        "description": "Queue depths now and totals since the sidecar started (gRPC: Stats).",
    }


Stats = Component("Stats", _stats)
"""``GET /v1/stats``: written from ``goq.stats_fields``, the figures' one table."""

REQUESTS = (SendMessage, Nack, Acks, Redrive)
"""The JSON bodies the API decodes: closed to other fields."""
