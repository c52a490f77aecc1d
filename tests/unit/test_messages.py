"""Envelopes round-trip exactly; ids and headers are validated; malformed bytes are refused."""

import pytest

from goq.errors import ConfigError
from goq.identity import Address
from goq.messages import MalformedMessageError, Message, new_message_id, validate_headers, validate_message_id


def sample(**overrides: object) -> Message:
    fields: dict[str, object] = {
        "id": new_message_id(),
        "source": Address("orders", "shop"),
        "destination": Address("billing", "shop"),
        "created_at_ms": 1_700_000_000_000,
        "payload": bytes(range(256)),
        "persistent": True,
        "headers": {"traceparent": "00-abc-def-01"},
    }
    fields.update(overrides)
    return Message(**fields)  # type: ignore[arg-type]


def test_an_envelope_decodes_to_what_was_encoded() -> None:
    message = sample()
    assert Message.decode(message.encode()) == message


def test_generated_ids_are_unique_and_sort_by_time() -> None:
    ids = [new_message_id() for _ in range(1000)]
    assert len(set(ids)) == 1000
    assert all(validate_message_id(i) == i for i in ids)
    assert ids[0][:12] <= ids[-1][:12]


@pytest.mark.parametrize("bad", ["", "has space", "x" * 129, "tab\t", "ünï", 7])
def test_bad_idempotency_keys_are_refused(bad: object) -> None:
    with pytest.raises(ConfigError, match="message id must be 1 to 128 printable ASCII characters"):
        validate_message_id(bad)


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"bad name": "x"}, "header name 'bad name'"),
        ({"ok": 5}, "header 'ok' must be a string"),
        ({"ok": "v" * 4097}, "at most 4096 characters"),
        ({f"h{i}": "v" for i in range(65)}, "at most 64 headers"),
        ("x=1", "headers must be an object of strings"),
    ],
)
def test_bad_headers_are_refused(headers: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        validate_headers(headers)


def test_garbage_bytes_are_malformed() -> None:
    with pytest.raises(MalformedMessageError, match="does not decode"):
        Message.decode(b"\xff\xff\xff\xff")


def test_an_envelope_without_namespaces_is_malformed() -> None:
    unqualified = sample(destination=Address("billing"))
    with pytest.raises(MalformedMessageError, match="destination 'billing' has no namespace"):
        Message.decode(unqualified.encode())
