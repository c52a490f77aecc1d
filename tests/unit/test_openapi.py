"""The OpenAPI document is written from the REST API's operations and types (``rest_operations``,
``rest_types``): it parses as OpenAPI, the decoder enforces every range it publishes, and the encoders'
answers match its schemas. That a request field in a type shows in the document needs no test: the schemas
are written from the types' fields, so it cannot be otherwise."""

import base64
import time
from typing import Annotated, Any, TypedDict

import jsonschema_rs
import pytest
import schemathesis

from goq.errors import ConfigError
from goq.identity import Address
from goq.messages import Message
from goq.sidecar.apis.http_protocol import Request
from goq.sidecar.apis.openapi import openapi_document
from goq.sidecar.apis.rest_json import poisoned_json, query_of, received_json
from goq.sidecar.apis.rest_operations import OPERATIONS
from goq.sidecar.apis.rest_types import REQUESTS, Nack, PoisonQuery, RawSendQuery, ReceiveQuery, SendMessage
from goq.sidecar.apis.typed_json import Doc, Rules, Schemas, decode, fields
from goq.sidecar.domain.records import Incoming, PoisonRecord

DOCUMENT = openapi_document(4096)


def _valid(name: str, value: object) -> bool:
    schema = {"$ref": f"#/components/schemas/{name}", "components": DOCUMENT["components"]}
    return bool(jsonschema_rs.validator_for(schema).is_valid(value))


def test_the_document_parses_as_openapi_with_one_operation_per_route() -> None:
    schema = schemathesis.openapi.from_dict(DOCUMENT)
    for op in OPERATIONS:
        assert schema[op.path][op.method].definition.raw["operationId"] == op.operation_id
    assert sum(len(item) for item in DOCUMENT["paths"].values()) == len(OPERATIONS)


def test_every_operation_that_takes_a_body_documents_the_413_its_size_limit_answers() -> None:
    """Any body is read with a bound (``rest_api.read_body``): over it the answer is 413, so the document says so
    (the REST fuzz found an acknowledgement of 1.2 MB answered with an undocumented 413)."""
    document = openapi_document(4096)
    with_body = [(op.method.lower(), op.path) for op in OPERATIONS if op.bodies]
    assert len(with_body) >= 4
    missing = [f"{m.upper()} {p}" for m, p in with_body if "413" not in document["paths"][p][m]["responses"]]
    assert missing == []


def test_request_bodies_are_closed_and_answers_are_not() -> None:
    schemas = DOCUMENT["components"]["schemas"]
    assert {name for name, s in schemas.items() if s.get("additionalProperties") is False} == {
        t.__name__ for t in REQUESTS
    }


def _ranged() -> list[tuple[Any, str, str, Any]]:
    """Every (request type, field, keyword, limit) of a range the document publishes."""
    found = []
    for tp in REQUESTS:
        for name, (_, metadata) in fields(tp).items():
            rules = {k: v for m in metadata if isinstance(m, Rules) for k, v in m.keywords.items()}
            found += [(tp, name, k, rules[k]) for k in ("minimum", "maximum", "maxItems") if k in rules]
    return found


@pytest.mark.parametrize(("tp", "name", "keyword", "limit"), _ranged())
def test_the_decoder_enforces_every_range_the_document_publishes(tp: Any, name: str, keyword: str, limit: Any) -> None:
    base = {"to": "billing", "payload": ""} if tp is SendMessage else {}
    at, beyond = {
        "minimum": (limit, limit - 1),
        "maximum": (limit, limit + 1),
        "maxItems": (["x"] * limit, ["x"] * (limit + 1)),
    }[keyword]
    assert DOCUMENT["components"]["schemas"][tp.__name__]["properties"][name][keyword] == limit
    decode(tp, {**base, name: at}, "the request")
    with pytest.raises(ConfigError, match=f'"{name}"'):
        decode(tp, {**base, name: beyond}, "the request")


def test_decoding_fills_the_documents_defaults() -> None:
    nack = DOCUMENT["components"]["schemas"]["Nack"]["properties"]
    assert decode(Nack, {}, "the nack") == {name: nack[name]["default"] for name in ("requeue", "delay", "reason")}
    request = Request("GET", "/v1/messages", [("wait", "2.5")], {})
    assert query_of(request, ReceiveQuery) == {"max": 10, "wait": 2.5}


def test_query_parameters_take_their_types_defaults_and_the_domains_checks() -> None:
    raw = Request("POST", "/v1/messages", [("to", "billing"), ("id", "k-1")], {})
    assert query_of(raw, RawSendQuery) == {"to": "billing", "persistent": True, "id": "k-1"}
    with pytest.raises(ConfigError, match="message id must be 1 to 128 printable ASCII"):
        query_of(Request("POST", "/v1/messages", [("to", "b"), ("id", "has space")], {}), RawSendQuery)
    with pytest.raises(ConfigError, match="limit must be an integer from 1 to 1000"):
        query_of(Request("GET", "/v1/poison", [("limit", "1001")], {}), PoisonQuery)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"to": "b", "payload": "", "headers": {"k": 5}}, '"headers" must be an object of strings, got int in it'),
        ({"to": "b", "payload": "", "zz": 1, "aa": 2}, "unknown field(s) 'aa', 'zz'; allowed: to, payload, persistent"),
        ({"payload": ""}, '"to" is required: "<identity>" or "<identity>.<namespace>"'),
    ],
)
def test_the_decoder_says_what_the_type_allows(body: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        decode(SendMessage, body, "the message")
    assert message in str(refused.value)


def test_answers_match_the_documents_schemas() -> None:
    source, destination = Address.parse("orders.shop"), Address.parse("billing.shop")
    message = Message("m-1", source, destination, int(time.time() * 1000), b"\x00hi", headers={"kind": "x"})
    item = Incoming("orders.shop|m-1", message, message.encode(), "k", b"s", received_at=time.time(), deliveries=1)
    received = received_json(item)
    assert _valid("ReceivedMessage", received)
    assert not _valid("ReceivedMessage", {**received, "attempt": 0})
    record = PoisonRecord(
        "m-1", "billing.shop", "inbound", "orders.shop", "nack", "", 1, time.time(), True, item.body, "k", b"s"
    )
    poisoned = poisoned_json(record)
    assert _valid("PoisonedMessage", poisoned)
    assert base64.b64decode(poisoned["payload"]) == b"\x00hi"


class _Inner(TypedDict):
    n: int


class _Outer(TypedDict):
    """An outer object."""

    inner: _Inner
    many: Annotated[list[_Inner], Doc("Several.")]


def test_a_private_type_is_written_in_place_and_a_public_one_once_by_reference() -> None:
    schemas = Schemas(1024)
    assert schemas.of(_Outer)["properties"]["inner"] == {
        "type": "object",
        "required": ["n"],
        "properties": {"n": {"type": "integer"}},
    }

    class Public(TypedDict):
        n: int

    class Holder(TypedDict):
        a: Public
        b: list[Public]

    written = schemas.of(Holder)
    assert written == {"$ref": "#/components/schemas/Holder"}
    holder = schemas.components["Holder"]["properties"]
    assert holder["a"] == holder["b"]["items"] == {"$ref": "#/components/schemas/Public"}


def test_a_type_without_a_json_schema_is_refused_by_name() -> None:
    class Odd(TypedDict):
        when: bytes

    with pytest.raises(TypeError, match="no JSON Schema for <class 'bytes'>"):
        Schemas(1024).of(Odd)
