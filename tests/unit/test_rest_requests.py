"""The REST layer's request decoding, without a server (its error answers: test_statuses.py); and its
OpenAPI patterns, checked against the validators the engine uses, so that the document says what the
server does."""

import base64
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from goq.errors import ConfigError
from goq.identity import Address
from goq.messages import validate_headers, validate_message_id
from goq.sidecar.apis.openapi import openapi_document
from goq.sidecar.apis.rest_json import (
    decode_base64,
    message_ids,
    nack_arguments,
    parse_int,
    parse_json_object,
    parse_seconds,
    send_request_of_json,
)
from goq.sidecar.apis.rest_limits import ADDRESS_PATTERN, BASE64_PATTERN, HEADER_NAME_PATTERN, ID_PATTERN
from goq.sidecar.apis.rest_types import Acks, Redrive


def test_a_json_send_becomes_the_engines_request_with_defaults() -> None:
    request = send_request_of_json({"to": "billing.shop", "payload": base64.b64encode(b"\x00\xff").decode()})
    assert (request.to, request.payload, request.persistent, request.headers, request.id) == (
        "billing.shop",
        b"\x00\xff",
        True,
        {},
        None,
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"to": 5, "payload": ""}, '"to" is required'),
        ({"to": "b", "payload": None}, '"payload" is required'),
        ({"to": "b", "payload": "YQ"}, "not standard base64"),
        ({"to": "b", "payload": "YWJj="}, "not standard base64"),
        ({"to": "b", "payload": "YW Jj"}, "not standard base64"),
        ({"to": "b", "payload": "", "persistent": 1}, '"persistent" must be true or false, got 1'),
        ({"to": "b", "payload": "", "headers": None}, '"headers" must be an object of strings, got NoneType'),
        ({"to": "b", "payload": "", "id": ""}, "message id must be 1 to 128"),
        ({"to": "b", "payload": "", "extra": 1}, "unknown field(s) 'extra'"),
    ],
)
def test_a_bad_json_send_says_what_is_wrong(body: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        send_request_of_json(body)
    assert message in str(refused.value)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "not valid JSON"),
        (b"\xff", "is not valid UTF-8 (byte 0)"),
        (b"[" * 50_000, "not valid JSON"),
        (b'{"a": Infinity}', "Infinity is not a JSON number"),
        (b"3", "must be a JSON object, got int"),
    ],
)
def test_a_body_that_is_not_a_json_object_is_refused(body: bytes, message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_json_object(body, "the body")
    assert message in str(refused.value)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('{"to": "b"}'.encode("utf-16"), "starts with a UTF-16 or UTF-32 byte-order mark"),
        ('{"to": "b"}'.encode("utf-16-be"), "looks like UTF-16 or UTF-32"),
        ('{"to": "b"}'.encode("utf-32-le"), "looks like UTF-16 or UTF-32"),
        ('{"to": "b"}'.encode("utf-8-sig"), "starts with a UTF-8 byte-order mark"),
        ('{"to": "é"}'.encode("latin-1"), "is not valid UTF-8 (byte 8)"),
    ],
)
def test_a_json_body_must_be_utf8_without_a_byte_order_mark(body: bytes, message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_json_object(body, "the body")
    assert message in str(refused.value)
    assert "JSON bodies must be UTF-8 without a byte-order mark" in str(refused.value)


@pytest.mark.parametrize(
    ("body", "key"),
    [
        (b'{"to": "a", "to": "b"}', "to"),
        (b'{"to": "a", "payload": "", "headers": {"k": "1", "k": "2"}}', "k"),
        (b'{"ids": [{"x": 1, "y": 2, "x": 3}]}', "x"),
    ],
)
def test_a_json_body_with_a_key_twice_in_one_object_is_refused_naming_it(body: bytes, key: str) -> None:
    with pytest.raises(ConfigError, match=f"the key '{key}' appears more than once in one object; give each key once"):
        parse_json_object(body, "the body")


@pytest.mark.parametrize("body", [b'{"to": "\\ud800"}', b'{"headers": {"k": ["\\uDC00"]}}'])
def test_a_json_body_with_half_a_surrogate_pair_is_refused(body: bytes) -> None:
    with pytest.raises(ConfigError, match="half a surrogate pair"):
        parse_json_object(body, "the body")


def test_strict_json_still_takes_utf8_text_escapes_and_the_same_key_in_different_objects() -> None:
    body = '{"to": "b", "payload": "", "headers": {"to": "ü\\u00fc\\ud83d\\ude00"}}'.encode()
    assert parse_json_object(body, "the body") == {"to": "b", "payload": "", "headers": {"to": "üü😀"}}


@pytest.mark.parametrize(("text", "value"), [(None, 10), ("1", 1), ("1000", 1000), ("007", 7)])
def test_integer_parameters_within_bounds_are_read(text: str | None, value: int) -> None:
    assert parse_int(text, "max", 10, 1, 1000) == value


@pytest.mark.parametrize("text", ["0", "1001", "-1", "1.0", "", " 1", "\u0661", "9" * 20])
def test_integer_parameters_out_of_bounds_or_not_integers_are_refused(text: str) -> None:
    with pytest.raises(ConfigError, match="max must be an integer from 1 to 1000"):
        parse_int(text, "max", 10, 1, 1000)


@pytest.mark.parametrize(("text", "value"), [(None, 0.0), ("0", 0.0), ("2.5", 2.5), ("6e1", 60.0), ("60", 60.0)])
def test_seconds_within_bounds_are_read(text: str | None, value: float) -> None:
    assert parse_seconds(text, "wait", 60) == value


@pytest.mark.parametrize("text", ["60.5", "-0", "nan", "inf", "1e999", " 1", "", "1s"])
def test_seconds_out_of_bounds_or_not_numbers_are_refused(text: str) -> None:
    with pytest.raises(ConfigError, match="wait must be a number of seconds from 0 to 60"):
        parse_seconds(text, "wait", 60)


def test_a_nack_defaults_to_giving_the_message_back_at_once() -> None:
    assert nack_arguments({}) == (True, 0.0, "")
    assert nack_arguments({"requeue": False, "delay": 3, "reason": "no"}) == (False, 3.0, "no")


@pytest.mark.parametrize("delay", [True, "1", -0.5, 86401, 10**400])
def test_a_nack_delay_must_be_seconds_within_a_day(delay: object) -> None:
    with pytest.raises(ConfigError, match='"delay" must be a number of seconds from 0 to 86400'):
        nack_arguments({"delay": delay})


@pytest.mark.parametrize("body", [{}, {"ids": "a"}, {"ids": [1]}, {"ids": ["a"] * 1001}])
def test_redrive_needs_a_list_of_ids(body: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match='"ids" is required: a list of at most 1000 message ids'):
        message_ids(Redrive, body, "the redrive request")


def test_a_request_with_ids_names_the_field_it_does_not_know() -> None:
    with pytest.raises(ConfigError, match="the acknowledgement"):
        message_ids(Acks, {"ids": [], "id": "x"}, "the acknowledgement")


def _accepts(check: object, value: str) -> bool:
    try:
        check(value)  # type: ignore[operator]
    except ConfigError:
        return False
    return True


def _matches(pattern: str, value: str) -> bool:
    # JSON Schema patterns are ECMA regular expressions, where "$" never matches before a final newline.
    return not value.endswith("\n") and re.search(pattern, value) is not None


_ADDRESSISH = st.from_regex(r"\A[-a-z0-9.A-Z_]{0,70}\Z") | st.text(max_size=70)


@settings(max_examples=500)
@given(_ADDRESSISH | st.from_regex(ADDRESS_PATTERN))
def test_the_documents_destination_pattern_accepts_exactly_what_the_engine_does(value: str) -> None:
    assert _matches(ADDRESS_PATTERN, value) == _accepts(Address.parse, value)


@settings(max_examples=500)
@given(st.text(max_size=140) | st.from_regex(ID_PATTERN))
def test_the_documents_id_pattern_accepts_exactly_what_the_engine_does(value: str) -> None:
    assert _matches(ID_PATTERN, value) == _accepts(validate_message_id, value)


@settings(max_examples=500)
@given(st.text(max_size=40) | st.from_regex(HEADER_NAME_PATTERN))
def test_the_documents_header_name_pattern_accepts_exactly_what_the_engine_does(name: str) -> None:
    assert _matches(HEADER_NAME_PATTERN, name) == _accepts(lambda n: validate_headers({n: ""}), name)


@settings(max_examples=500)
@given(st.binary(max_size=64).map(lambda b: base64.b64encode(b).decode()) | st.text(max_size=12))
def test_the_documents_base64_pattern_accepts_exactly_what_the_server_decodes(text: str) -> None:
    assert _matches(BASE64_PATTERN, text) == _accepts(decode_base64, text)


def test_the_documents_payload_limit_follows_the_sidecars() -> None:
    payload = openapi_document(3000)["components"]["schemas"]["SendMessage"]["properties"]["payload"]
    assert payload["maxLength"] == 4000
    assert "at most 3000 bytes" in payload["description"]
