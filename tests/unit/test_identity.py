"""Identities and addresses are validated with messages that say what is wrong and what is allowed."""

import pickle
import subprocess
import sys

import pytest

from goq.errors import ConfigError
from goq.identity import IDENTITY_PATTERN, Address, validate_identity


@pytest.mark.parametrize("good", ["orders", "a", "billing-v2", "0day", "x" * 59])
def test_valid_identities_are_accepted(good: str) -> None:
    assert validate_identity(good) == good


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("", "must not be empty"),
        ("x" * 60, "is 60 characters long; at most 59 are allowed"),
        ("Orders", "must be lower case"),
        ("orders_v2", "may contain only lower-case letters, digits and '-'"),
        ("-orders", "must start and end with a letter or digit"),
        ("orders-", "must start and end with a letter or digit"),
        ("or.ders", "may contain only"),
    ],
)
def test_invalid_identities_are_refused_with_the_reason(bad: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as refused:
        validate_identity(bad)
    assert "DNS-1123 label of at most 59 characters" in str(refused.value)


def test_non_string_identity_is_refused() -> None:
    with pytest.raises(ConfigError, match="identity must be a string, got int"):
        validate_identity(42)


@pytest.mark.parametrize("value", ["orders", "a", "x" * 59, "", "x" * 60, "Orders", "-a", "a-", "a_b"])
def test_schema_pattern_agrees_with_the_validator(value: str) -> None:
    import re

    try:
        validate_identity(value)
        valid = True
    except ConfigError:
        valid = False
    assert bool(re.fullmatch(IDENTITY_PATTERN, value)) == valid


def test_address_in_the_same_namespace() -> None:
    address = Address.parse("orders")
    assert address == Address("orders", None)
    assert address.resolved("shop") == Address("orders", "shop")
    assert str(address) == "orders"


def test_address_in_another_namespace() -> None:
    address = Address.parse("orders.shop")
    assert address == Address("orders", "shop")
    assert address.resolved("elsewhere") == address
    assert str(address) == "orders.shop"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "got nothing"),
        (None, "got nothing"),
        ("a.b.c", 'more than one "."'),
        ("Bad.shop", "destination identity 'Bad' must be lower case"),
        ("orders.", "destination namespace '' must not be empty"),
    ],
)
def test_bad_addresses_are_refused_with_the_reason(text: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Address.parse(text)


def test_equal_addresses_hash_alike_and_print_the_same() -> None:
    one, other = Address("billing", "shop"), Address.parse("billing.shop")
    assert one == other
    assert hash(one) == hash(other)
    assert {one: 1}[other] == 1
    assert str(one) == "billing.shop"
    assert str(Address("billing")) == "billing"
    assert repr(one) == "Address(identity='billing', namespace='shop')"  # the cached text is not shown


def test_resolving_into_a_namespace_hands_out_one_shared_address() -> None:
    assert Address.parse("billing").resolved("shop") is Address.parse("billing").resolved("shop")
    assert Address.parse("billing").resolved("shop") == Address("billing", "shop")


def test_an_address_survives_pickling_into_a_fresh_process() -> None:
    data = pickle.dumps(Address("billing", "shop"))
    code = (
        "import pickle, sys; from goq.identity import Address; a = pickle.loads(sys.stdin.buffer.read()); "
        "print({Address('billing', 'shop'): 'found'}.get(a, 'lost'))"
    )
    done = subprocess.run([sys.executable, "-c", code], input=data, capture_output=True, check=True)
    assert done.stdout.strip() == b"found"
