"""Each way a message is given up on makes its poison record in one place, every field filled as the table
"Poison reasons" in docs/sidecar.md says: the same record whichever path (small, large, engine, lanes) gives up."""

from goq.identity import Address
from goq.messages import LargeRef, Message
from goq.retry import GiveUp, RetryPolicy, after_failure
from goq.sidecar.domain import poison_reasons as poisons
from goq.sidecar.domain.attempts import attempt_failed
from goq.sidecar.domain.records import INBOUND, OUTBOUND, Incoming, Outgoing, PoisonRecord, inbound_key
from goq.signing import Keyring

ORDERS = Address.parse("orders.shop")
BILLING = Address.parse("billing.shop")
KEYRING = Keyring({"k1": b"k" * 32}, "k1")
NOW = 1_800_000_000.5
HEADERS = {"kind": "invoice"}


def outgoing(*, failed_attempts: int = 0, persistent: bool = True, large: LargeRef | None = None) -> Outgoing:
    body = Message("order-1", ORDERS, BILLING, 1_799_999_000_000, b"", persistent, HEADERS, large).encode()
    key_id, signature = KEYRING.sign(body)
    return Outgoing(
        id="order-1",
        destination=BILLING,
        body=body,
        key_id=key_id,
        signature=signature,
        persistent=persistent,
        created_at=NOW - 60,
        failed_attempts=failed_attempts,
    )


def incoming(*, deliveries: int = 0, persistent: bool = False) -> Incoming:
    message = Message("order-2", ORDERS, BILLING, 1_799_999_000_000, b"charge 42", persistent, HEADERS)
    body = message.encode()
    key_id, signature = KEYRING.sign(body)
    return Incoming(inbound_key(ORDERS, "order-2"), message, body, key_id, signature, NOW - 5, deliveries)


def large_ref() -> LargeRef:
    return LargeRef(size=4 << 30, mac=b"m" * 32, key_id="k1", chunk_size=1 << 20)


def outbound_record(m: Outgoing, reason: str, detail: str) -> PoisonRecord:
    return PoisonRecord(
        id=m.id,
        owner=str(ORDERS),
        direction=OUTBOUND,
        peer=str(BILLING),
        reason=reason,
        detail=detail,
        attempts=m.failed_attempts,
        poisoned_at=NOW,
        persistent=m.persistent,
        body=m.body,
        key_id=m.key_id,
        signature=m.signature,
    )


def inbound_record(item: Incoming, reason: str, detail: str) -> PoisonRecord:
    return PoisonRecord(
        id=item.id,
        owner=str(BILLING),
        direction=INBOUND,
        peer=str(ORDERS),
        reason=reason,
        detail=detail,
        attempts=item.deliveries,
        poisoned_at=NOW,
        persistent=item.message.persistent,
        body=item.body,
        key_id=item.key_id,
        signature=item.signature,
    )


def test_a_message_out_of_attempts_is_poisoned_max_attempts_with_the_policy_words_and_the_last_error() -> None:
    m = outgoing(failed_attempts=3)
    decision = after_failure(RetryPolicy(max_attempts=3), 3, m.created_at, NOW, 0.5)
    assert isinstance(decision, GiveUp)

    record = poisons.retries_exhausted(str(ORDERS), m, decision, "billing.shop: connection refused", NOW)

    detail = "3 attempts failed (maxAttempts 3); last error: billing.shop: connection refused"
    assert record == outbound_record(m, "max-attempts", detail)
    assert record.extra == {}


def test_a_message_past_its_max_age_is_poisoned_max_age_with_the_policy_words_and_the_last_error() -> None:
    m = outgoing(failed_attempts=2)
    decision = after_failure(RetryPolicy(max_age=30.0), 2, m.created_at, NOW, 0.5)
    assert isinstance(decision, GiveUp)

    record = poisons.retries_exhausted(str(ORDERS), m, decision, "no answer within attemptTimeout", NOW)

    detail = "next attempt would pass maxAge 30s (age 1m); last error: no answer within attemptTimeout"
    assert record == outbound_record(m, "max-age", detail)


def test_a_refused_message_is_poisoned_with_the_receivers_kind_naming_the_receiver_and_no_failed_attempt() -> None:
    m = outgoing()
    refusal = "forbidden: orders.shop may not send to billing.shop"

    record = poisons.refused(str(ORDERS), m, refusal, NOW)

    assert record == outbound_record(m, "forbidden", f"refused by billing.shop: {refusal}")
    assert record.attempts == 0


def test_a_refusal_of_a_kind_this_sidecar_does_not_know_is_poisoned_rejected() -> None:
    m = outgoing(failed_attempts=1)

    record = poisons.refused(str(ORDERS), m, "quota: try next month", NOW)

    assert record == outbound_record(m, "rejected", "refused by billing.shop: quota: try next month")


def test_a_large_message_is_poisoned_like_a_small_one_keeping_its_envelope_and_headers_not_its_body() -> None:
    large = outgoing(failed_attempts=8, large=large_ref())
    small = outgoing(failed_attempts=8)
    decision = GiveUp("max-attempts", "8 attempts failed (maxAttempts 8)")

    made = [poisons.retries_exhausted(str(ORDERS), m, decision, "UNAVAILABLE: gone", NOW) for m in (large, small)]

    detail = "8 attempts failed (maxAttempts 8); last error: UNAVAILABLE: gone"
    assert made == [outbound_record(large, "max-attempts", detail), outbound_record(small, "max-attempts", detail)]
    kept = Message.decode(made[0].body)  # the signed envelope: what a redrive sends again
    assert (kept.headers, kept.large, kept.payload) == (HEADERS, large_ref(), b"")


def test_a_send_over_the_send_queue_bound_is_poisoned_overflow_never_attempted() -> None:
    m = outgoing(persistent=False)

    record = poisons.send_overflow(str(ORDERS), m, 5, NOW)

    assert record == outbound_record(m, "overflow", "send queue full (sendQueueLimit 5)")
    assert poisons.send_queue_full(5) == record.detail  # the same words as the refusal under ``reject``
    assert (record.attempts, record.persistent) == (0, False)


def test_a_delivery_over_the_receive_queue_bound_is_poisoned_overflow_inbound() -> None:
    item = incoming()

    record = poisons.receive_overflow(str(BILLING), item, 100, NOW)

    assert record == inbound_record(item, "overflow", "receive queue full (receiveQueueLimit 100)")
    assert poisons.receive_queue_full(100) == record.detail  # the same words as "retry later" under ``reject``


def test_a_nack_without_requeue_is_poisoned_nack_with_the_applications_reason_when_it_gave_one() -> None:
    item = incoming(deliveries=1, persistent=True)

    with_reason = poisons.nacked(str(BILLING), item, "bad JSON", NOW)
    without = poisons.nacked(str(BILLING), item, "", NOW)

    assert with_reason == inbound_record(item, "nack", "rejected by the application: bad JSON")
    assert without == inbound_record(item, "nack", "rejected by the application")
    assert with_reason.attempts == 1


def test_a_message_handed_out_too_often_is_poisoned_max_deliveries_counting_the_hand_overs() -> None:
    item = incoming(deliveries=10)

    record = poisons.never_acknowledged(str(BILLING), item, 10, NOW)

    assert record == inbound_record(
        item, "max-deliveries", "handed to the application 10 times without an acknowledgement"
    )
    assert Message.decode(record.body).headers == HEADERS


def test_a_failed_attempt_within_the_policy_is_scheduled_again_and_poisons_nothing() -> None:
    m = outgoing(failed_attempts=1)

    record = attempt_failed(str(ORDERS), m, RetryPolicy(max_attempts=3, jitter=0.0), "connection refused", NOW, 0.5)

    assert record is None
    assert (m.failed_attempts, m.last_error, m.next_at) == (2, "connection refused", NOW + 0.4)


def test_the_attempt_that_exhausts_the_policy_counts_and_returns_the_record_small_and_large_alike() -> None:
    for m in (outgoing(failed_attempts=2), outgoing(failed_attempts=2, large=large_ref())):
        record = attempt_failed(str(ORDERS), m, RetryPolicy(max_attempts=3), "UNAVAILABLE: gone", NOW, 0.5)

        detail = "3 attempts failed (maxAttempts 3); last error: UNAVAILABLE: gone"
        assert record == outbound_record(m, "max-attempts", detail)
        assert (m.failed_attempts, m.last_error, m.next_at) == (3, "UNAVAILABLE: gone", 0.0)
