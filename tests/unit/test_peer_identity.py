"""The identity a peer's certificate names, and the check of an envelope's ``from`` against it."""

import pytest

from goq.identity import Address
from goq.sidecar.domain.peer_identity import SENDER, PeerIdentity, identity_mismatch, identity_of
from goq.spiffe import IdentityError, parse_spiffe_id, spiffe_id

ORDERS = Address("orders", "shop")


def test_a_spiffe_id_names_namespace_and_identity_and_reads_back() -> None:
    uri = spiffe_id("cluster.local", ORDERS)
    assert uri == "spiffe://cluster.local/ns/shop/goq/orders"
    assert parse_spiffe_id(uri) == ORDERS


@pytest.mark.parametrize(
    "uri",
    [
        "https://cluster.local/ns/shop/goq/orders",
        "spiffe://cluster.local/ns/shop/sa/orders",
        "spiffe://cluster.local/ns//goq/orders",
        "spiffe:///ns/shop/goq/orders",
        "spiffe://cluster.local/ns/shop/goq/orders/extra",
        "spiffe://cluster.local/ns/Shop!/goq/orders",
    ],
)
def test_a_uri_that_is_not_a_goq_identity_is_refused_saying_the_form(uri: str) -> None:
    with pytest.raises(IdentityError, match=r"ns/<namespace>/goq/<identity>|does not name a GoQ identity"):
        parse_spiffe_id(uri)


def test_a_plaintext_call_has_no_identity_to_check() -> None:
    assert identity_of({"transport_security_type": [b"insecure"]}) is None
    assert identity_of({}) is None


def test_a_tls_call_names_the_identity_of_its_certificate_uri() -> None:
    context = {
        "transport_security_type": [b"ssl"],
        "peer_uri": [b"spiffe://cluster.local/ns/shop/goq/orders"],
        "peer_dns": [b"goq-orders.shop.svc"],
    }
    assert identity_of(context) == PeerIdentity(ORDERS)


def test_a_certificate_without_one_goq_identity_names_none_and_says_why() -> None:
    none = identity_of({"transport_security_type": [b"ssl"], "peer_dns": [b"x.svc"]})
    assert none is not None
    assert (none.address, "0 SPIFFE IDs" in none.problem) == (None, True)
    other = identity_of({"transport_security_type": [b"ssl"], "peer_uri": [b"spiffe://td/ns/shop/sa/orders"]})
    assert other is not None
    assert (other.address, "expected spiffe://" in other.problem) == (None, True)


def test_an_envelope_from_another_identity_than_the_certificate_is_a_mismatch() -> None:
    token = SENDER.set(PeerIdentity(ORDERS))
    try:
        assert identity_mismatch(ORDERS) is None
        assert identity_mismatch(Address("billing", "shop")) == (
            "the envelope is from billing.shop, but the sender's certificate is orders.shop's"
        )
        assert identity_mismatch(Address("orders", "other")) is not None
    finally:
        SENDER.reset(token)
    assert identity_mismatch(Address("billing", "shop")) is None  # plaintext: nothing to compare


def test_a_certificate_naming_no_identity_refuses_every_envelope() -> None:
    token = SENDER.set(PeerIdentity(None, "the peer's certificate names 0 SPIFFE IDs, not one: []"))
    try:
        assert identity_mismatch(ORDERS) == (
            "the envelope is from orders.shop, but the peer's certificate names 0 SPIFFE IDs, not one: []"
        )
    finally:
        SENDER.reset(token)
