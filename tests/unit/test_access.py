"""``allowFrom``: who may send to an identity. Absent lets anyone send, an empty list nobody; ``*`` matches any
namespace or identity; a bad entry is refused with its path and what is allowed; a refused sender is
poisoned with ``forbidden``; a receiver follows a changed spec at once."""

import re
import time

import pytest

from goq.access import Sender, access_refusal, describe, is_allowed, parse_allow_from
from goq.api.v1 import envelope_pb2, peer_pb2
from goq.errors import ConfigError
from goq.identity import Address
from goq.messages import Message
from goq.queue_spec import GoQueueSpec
from goq.sidecar.core.inbound import Inbound, InboundConfig
from goq.sidecar.domain.counting import Counters
from goq.sidecar.domain.poisoning import Poisoner
from goq.sidecar.domain.refusing import poison_reason
from goq.webhook.validation import validate_custom_object

from .test_crds_schema import GQ_SPEC
from .test_inbound_answers import KEYRING, GatedInbox, KeepingSink

ORDERS_SHOP = Address("orders", "shop")
AUDIT_SHOP = Address("audit", "shop")
ORDERS_LAB = Address("orders", "lab")
MONITOR_OPS = Address("monitor", "ops")
BILLING_SHOP = Address("billing", "shop")
SENDERS = [ORDERS_SHOP, AUDIT_SHOP, ORDERS_LAB, MONITOR_OPS]


def allowed(rules: object) -> list[Address]:
    allow_from = GoQueueSpec.from_spec({"allowFrom": rules}).allow_from
    return [s for s in SENDERS if is_allowed(allow_from, s)]


def test_absent_lets_anyone_send_and_an_empty_list_lets_nobody() -> None:
    assert GoQueueSpec.from_spec({}).allow_from is None
    assert allowed(None) == SENDERS
    assert GoQueueSpec.from_spec({"allowFrom": []}).allow_from == ()
    assert allowed([]) == []


def test_an_exact_entry_allows_that_identity_of_that_namespace_only() -> None:
    assert allowed([{"namespace": "shop", "identity": "orders"}]) == [ORDERS_SHOP]


def test_a_wildcard_identity_allows_every_identity_of_the_namespace() -> None:
    assert allowed([{"namespace": "shop", "identity": "*"}]) == [ORDERS_SHOP, AUDIT_SHOP]


def test_a_wildcard_namespace_allows_the_identity_of_every_namespace() -> None:
    assert allowed([{"namespace": "*", "identity": "orders"}]) == [ORDERS_SHOP, ORDERS_LAB]


def test_entries_add_up_and_two_wildcards_allow_everyone() -> None:
    rules = [{"namespace": "shop", "identity": "audit"}, {"namespace": "*", "identity": "monitor"}]
    assert allowed(rules) == [AUDIT_SHOP, MONITOR_OPS]
    assert allowed([{"namespace": "*", "identity": "*"}]) == SENDERS


def test_a_source_without_a_namespace_matches_only_the_namespace_wildcard() -> None:
    bare = Address("orders")
    assert not is_allowed((Sender("shop", "orders"),), bare)
    assert is_allowed((Sender("*", "orders"),), bare)


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ("orders.shop", "spec.allowFrom must be a list of senders"),
        ({"namespace": "shop"}, "spec.allowFrom must be a list of senders"),
        (["orders.shop"], "spec.allowFrom[0] must be an object {namespace, identity}, got the string"),
        ([{"namespace": "shop"}], "spec.allowFrom[0] needs identity: both are required, '*' meaning any"),
        ([{"identity": "orders"}], "spec.allowFrom[0] needs namespace: both are required"),
        ([{}], "spec.allowFrom[0] needs namespace and identity"),
        ([{"namespace": "Shop", "identity": "orders"}], "spec.allowFrom[0].namespace (a namespace, or '*')"),
        ([{"namespace": "shop", "identity": "ord*"}], "spec.allowFrom[0].identity (an identity, or '*')"),
        ([{"namespace": "shop", "identity": "orders", "identiy": "x"}], "unknown field(s) identiy"),
        ([{"namespace": "shop", "identity": ""}], "spec.allowFrom[0].identity must be a non-empty string"),
        ([{"namespace": "*", "identity": "*"}] * 257, "has 257 entries; at most 256 are allowed"),
    ],
)
def test_a_bad_allow_from_is_refused_saying_what_is_allowed(rules: object, message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        GoQueueSpec.from_spec({"allowFrom": rules})
    assert message in str(refused.value)


def test_the_compact_string_form_is_refused_with_the_object_to_write() -> None:
    with pytest.raises(ConfigError) as refused:
        parse_allow_from(["orders.shop"], "spec.allowFrom")
    assert 'write {namespace: "shop", identity: "orders"}' in str(refused.value)


def test_the_refusal_names_the_sender_the_receiver_and_the_rule() -> None:
    rules = parse_allow_from([{"namespace": "shop", "identity": "orders"}], "spec.allowFrom")
    assert access_refusal(rules, ORDERS_SHOP, BILLING_SHOP) is None
    assert access_refusal(rules, AUDIT_SHOP, BILLING_SHOP) == (
        "forbidden",
        "audit.shop may not send to billing.shop (allowFrom orders.shop)",
    )
    assert describe(()) == "nobody"
    assert describe(None) == "anyone"


@pytest.mark.parametrize(
    ("refusal", "reason"),
    [
        ("forbidden: audit.shop may not send to billing.shop (allowFrom orders.shop)", "forbidden"),
        ("expired: created 3h ago", "expired"),
        ("bad-signature: does not match", "bad-signature"),
        ("too-large: payload is 9 bytes", "too-large"),
        ("identity-mismatch: the certificate names audit.shop", "identity-mismatch"),
        ("made-up-kind: a receiver cannot invent poison reasons", "rejected"),
        ("no colon at all", "rejected"),
        ("", "rejected"),
    ],
)
def test_a_refused_message_is_poisoned_with_the_receivers_kind_when_known(refusal: str, reason: str) -> None:
    assert poison_reason(refusal) == reason


def signed_from(source: Address) -> envelope_pb2.SignedEnvelope:
    body = Message(f"m-{source.identity}-{time.time_ns()}", source, BILLING_SHOP, int(time.time() * 1000), b"x")
    key_id, signature = KEYRING.sign(body.encode())
    return envelope_pb2.SignedEnvelope(body=body.encode(), key_id=key_id, signature=signature)


async def test_the_receiver_refuses_a_forbidden_sender_counts_it_and_follows_a_changed_spec_at_once() -> None:
    inbox = GatedInbox()
    inbox.gate.set()
    counters = Counters()
    spec = [GoQueueSpec.from_spec({"allowFrom": [{"namespace": "shop", "identity": "orders"}]})]
    inbound = Inbound(
        BILLING_SHOP,
        lambda: KEYRING,
        lambda: spec[0],
        {True: inbox, False: GatedInbox()},
        Poisoner(KeepingSink(), counters),
        counters,
        InboundConfig(),
    )

    allowed_result, forbidden_result = await inbound.accept([signed_from(ORDERS_SHOP), signed_from(AUDIT_SHOP)])

    assert allowed_result.outcome == peer_pb2.OUTCOME_ACCEPTED
    assert forbidden_result.outcome == peer_pb2.OUTCOME_REJECTED
    assert forbidden_result.reason == "forbidden: audit.shop may not send to billing.shop (allowFrom orders.shop)"
    assert counters.refused == {"forbidden": 1}
    assert inbound.depth == 1  # the forbidden message is held nowhere

    spec[0] = GoQueueSpec.from_spec({"allowFrom": [{"namespace": "shop", "identity": "*"}]})
    (now_allowed,) = await inbound.accept([signed_from(AUDIT_SHOP)])
    assert now_allowed.outcome == peer_pb2.OUTCOME_ACCEPTED
    spec[0] = GoQueueSpec.from_spec({"allowFrom": []})
    (nobody,) = await inbound.accept([signed_from(ORDERS_SHOP)])
    assert (nobody.outcome, nobody.reason.endswith("(allowFrom nobody)")) == (peer_pb2.OUTCOME_REJECTED, True)
    assert counters.refused == {"forbidden": 2}
    inbound.refusals.close()  # its summary now, not from a timer during a later test on the shared loop


NAMES = ["*", "shop", "a", "a-1", "n" * 59, "n" * 60, "n" * 63, "n" * 64, "**", "sh*p", "Shop", "-a", "a.b", ""]


@pytest.mark.parametrize("value", NAMES)
def test_the_crd_accepts_exactly_the_entries_the_validator_accepts(value: str) -> None:
    """The API server and the webhook (and a sidecar given the spec) agree on every entry."""
    schema = GQ_SPEC["allowFrom"]
    assert schema["items"]["required"] == ["namespace", "identity"]
    for field, other in (("namespace", {"identity": "*"}), ("identity", {"namespace": "*"})):
        rule = schema["items"]["properties"][field]
        by_schema = bool(re.search(rule["pattern"], value)) and len(value) <= rule["maxLength"]
        try:
            parse_allow_from([{field: value, **other}], "spec.allowFrom")
            by_python = True
        except ConfigError:
            by_python = False
        assert by_schema == by_python, (field, value)
    assert schema["maxItems"] == 256


def test_the_webhook_refuses_a_goqueue_whose_allow_from_is_bad_and_admits_a_good_one() -> None:
    goqueue = {"apiVersion": "goq.io/v1alpha1", "kind": "GoQueue", "metadata": {"name": "billing"}}
    good = {"allowFrom": [{"namespace": "shop", "identity": "orders"}, {"namespace": "*", "identity": "monitor"}]}
    assert validate_custom_object({**goqueue, "spec": good}) == []
    with pytest.raises(ConfigError) as refused:
        validate_custom_object({**goqueue, "spec": {"allowFrom": [{"namespace": "shop"}]}})
    assert str(refused.value).startswith("GoQueue 'billing' is invalid: spec.allowFrom[0] needs identity")
